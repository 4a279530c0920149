"""One run the daemon follows: its reader, record and lifecycle, and when it is next due.

Contract:

* :class:`FollowedRun` bundles what the daemon (:mod:`tblive.doors.watch`) keeps per run: the
  reader's :class:`~tblive.read.runs.Run` (files, offsets, statistics), the shared
  :class:`~tblive.run.RunRecord` (state, provenance, last verdict and roles), the
  :class:`~tblive.doors.lifecycle.RunLifecycle`, and the bookkeeping of its last judgement.
* :meth:`FollowedRun.observe` turns one file change of the run (from
  :class:`~tblive.doors.follow.TreeFollower`) into lifecycle inputs: ``summary.json`` written,
  a writer closing / writing / deleting an event file.
* :meth:`FollowedRun.judge_due` is the judging rule: right after new points (at most once per
  ``max(min_gap, 10 x the last judgement's duration)``), at once after a configuration reload,
  every ``interval`` while the run has announced problems and has not ended (so reminders fire),
  otherwise never (``inf``: same data, same state, same verdict).
* :meth:`FollowedRun.snapshot` is what ``/metrics`` shows for the run
  (:mod:`tblive.doors.exporter`).
* No I/O but what the reader does in :attr:`run`, no clock: times come from the caller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from tblive.doors.exporter import RunSnapshot, snapshot
from tblive.doors.lifecycle import RunLifecycle
from tblive.read.runs import SUMMARY_JSON, Run
from tblive.read.tail import CLOSED, CREATED, DELETED, MODIFIED, REOPENED, Change
from tblive.run import RunRecord

__all__ = ["FollowedRun"]


@dataclass
class FollowedRun:
    """What the daemon tracks about one run besides its statistics."""

    run: Run
    record: RunRecord
    life: RunLifecycle
    last_data_wall: float  # seconds since the epoch of the last data (for /metrics)
    judged_points: int = -1
    judged_state: str = ""
    last_judge: float = float("-inf")
    judge_cost: float = 0.0
    stale: bool = False  # re-judge at the next pass (configuration reloaded)

    @property
    def lifecycle(self) -> str:
        return self.life.state

    def observe(self, change: Change, now: float, closes_visible: bool) -> None:
        """Feed one change of the run's files to its lifecycle."""
        life = self.life
        if os.path.basename(change.path) == SUMMARY_JSON:
            if change.kind != DELETED:
                life.summary(now)
        elif change.kind == CLOSED:
            life.closed(change.path, now)
        elif change.kind == REOPENED:  # closed and written again since the last drain
            life.closed(change.path, now)
            life.wrote(change.path)
        elif change.kind == DELETED:
            life.deleted(change.path)
        elif change.kind in (MODIFIED, CREATED) and closes_visible:
            life.wrote(change.path)  # only a close can take it out again

    def judge_due(self, min_gap: float, interval: float, has_problems: Callable[[], bool]) -> float:
        """When the run should next be judged (``inf``: not until something changes).

        ``has_problems()``: whether the run has announced problems still active (reminders
        are due); asked only when nothing else decides.
        """
        if self.run.points == 0:
            return float("inf")
        if self.stale:
            return self.last_judge
        if self.run.points != self.judged_points:
            return self.last_judge + max(min_gap, 10.0 * self.judge_cost)
        if self.life.ended:
            return float("inf")
        if has_problems():
            return self.last_judge + interval  # reminders after the cooldown
        return float("inf")  # same data, same state: the same verdict

    def snapshot(self) -> RunSnapshot:
        """The run as ``/metrics`` shows it now (an immutable snapshot)."""
        run = self.run
        return snapshot(
            run.name,
            self.record.verdict,
            self.record.roles,
            run.sinks,
            last_step=run.total_steps if run.points else None,
            last_data=self.last_data_wall,
            finished=self.life.ended,
        )
