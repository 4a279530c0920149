"""What the judge knows about a run beyond its series: its planned length, its state, its peers.

A :class:`RunContext` is filled by whichever door drives the evaluation (the post-hoc report
infers the planned length from files the trainer saved and the state from file ages; the daemon
knows the lifecycle; the monitor takes ``expected_steps``) and handed to
:func:`tblive.judge.verdict.evaluate`.  The rules read it; they never look at files or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from tblive.series.stats import MetricStats

__all__ = ["RunContext", "RunState", "LIVE", "FINISHED", "STALLED", "CRASHED", "UNKNOWN"]

RunState = str
#: Still being written (or assumed so): the in-progress judgement applies.
LIVE: RunState = "live"
#: Training ended (writer closed its files, a final summary, or files unchanged for long).
FINISHED: RunState = "finished"
#: No new data for much longer than the run's usual gap, but not known to have ended.
STALLED: RunState = "stalled"
#: The writer stopped mid-record.
CRASHED: RunState = "crashed"
UNKNOWN: RunState = "unknown"


@dataclass(frozen=True)
class RunContext:
    """Run-level facts for one evaluation.

    ``planned_steps``: the run's planned length in steps, when known (> 0), and
    ``planned_source`` where that came from (``"--expected-steps"``, ``"config.json
    num_env_steps"`` ...).  ``state``: one of the states above and ``state_reason`` why.
    ``siblings``: other runs of the same configuration (same parent, same tag set) as
    run name -> tag -> statistics, for the peer comparison; empty when there are none.
    """

    planned_steps: Optional[int] = None
    planned_source: str = ""
    state: RunState = UNKNOWN
    state_reason: str = ""
    siblings: Mapping[str, Mapping[str, MetricStats]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in (FINISHED, CRASHED)
