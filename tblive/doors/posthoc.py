"""The post-hoc door: read a log directory to its current end once, and judge every run.

This is the same reader -> statistics -> verdict path the daemon and the in-process monitor use;
it only drives it once instead of forever.  No printing, no exit codes (that is the CLI's job).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from tblive.judge.findings import Verdict
from tblive.judge.metrics import Config, Roles
from tblive.judge.verdict import evaluate_with_roles
from tblive.read.runs import LogDir, Run
from tblive.series.stats import MetricStats

ProgressCallback = Callable[[int, int, str], None]


class NoEventFiles(ValueError):
    """The directory exists but holds no event files."""


@dataclass
class RunResult:
    """One run after reading: its statistics, what was skipped, and its verdict."""

    run: Run
    verdict: Verdict
    roles: Roles

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def stats(self) -> Dict[str, MetricStats]:
        return self.run.sinks  # type: ignore[return-value]


def new_stats(name: str = "") -> MetricStats:
    """The statistics every door keeps per series (one place to tune their size)."""
    return MetricStats()


def judge(run: Run, config: Optional[Config] = None) -> RunResult:
    """The verdict on a run's statistics as they are now."""
    verdict, roles = evaluate_with_roles(run.name, run.sinks, config)  # type: ignore[arg-type]
    return RunResult(run, verdict, roles)


def analyze(
    path: str,
    config: Optional[Config] = None,
    verify_payload: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> List[RunResult]:
    """Read every run under ``path`` and judge it.

    Raises ``FileNotFoundError`` / ``NotADirectoryError`` when ``path`` is not a directory and
    :class:`NoEventFiles` when nothing under it is an event file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError("%s: no such directory" % path)
    if not os.path.isdir(path):
        raise NotADirectoryError("%s: not a directory" % path)
    logdir = LogDir(path, new_stats, verify_payload)
    logdir.rescan()
    if not logdir.runs:
        raise NoEventFiles("%s: no TensorBoard event files (*tfevents*) found" % path)
    results = []
    runs = list(logdir.runs.values())
    for number, run in enumerate(runs):
        if progress is not None:
            progress(number, len(runs), run.name)
        run.poll()
        results.append(judge(run, config))
    if progress is not None:
        progress(len(runs), len(runs), "")
    return results
