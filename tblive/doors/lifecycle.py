"""The lifecycle of one followed run, as a pure state machine: live, stalled, finished, crashed.

No I/O, no clock, no threads: every input carries its time (seconds on one monotonic clock the
caller chooses), so the daemon feeds it real events and real time and the tests feed it made-up
events and an injected clock.  States are the judge's (:mod:`tblive.judge.context`): ``LIVE``,
``STALLED``, ``FINISHED``, ``CRASHED``; :meth:`RunLifecycle.context` gives the state and its
reason for a :class:`~tblive.judge.context.RunContext`.

Inputs (methods of :class:`RunLifecycle`):

* :meth:`~RunLifecycle.data` -- new points arrived (a read added points);
* :meth:`~RunLifecycle.wrote` / :meth:`~RunLifecycle.closed` / :meth:`~RunLifecycle.deleted` --
  the native observer saw a writer write to / close / delete one of the run's event files
  (only when closes are visible, i.e. inotify; polling sees no opens nor closes);
* :meth:`~RunLifecycle.summary` -- HARL's end-of-training ``summary.json`` was written;
* :meth:`~RunLifecycle.tail` -- after a read: does a file end in a half-written record?
* :meth:`~RunLifecycle.progress` -- the run's last step and its planned length, when known.

:meth:`~RunLifecycle.tick` applies the time rules and returns the :class:`Transition` that
happened (or None); :meth:`~RunLifecycle.due` says when ``tick`` can next change anything
(``inf`` for a finished or crashed run: only new data can move it, so the daemon never looks
at it again until then).

The rules (``quiet`` = time since data last arrived; ``threshold`` = the stall threshold:
``stall_after`` if set, else ``stall_gaps`` x the median gap between arrivals, at least
``min_stall``; ``presumed`` = ``presumed_factor`` x threshold):

* **finished** when (a) closes are visible, the writer closed every file it was writing after
  its last data and nothing came for ``settle`` seconds ("its writer closed the event files");
  (b) ``summary.json`` was written after the last data and ``settle`` passed; (c) no writer is
  known to hold a file open and ``quiet >= presumed`` ("presumed finished").
* **crashed** ("stopped mid-write (crash?)") instead of finished in (a) and (c) when a file ends
  in a half-written record: a writer that ended normally completes its last record, one that
  died in the middle of ``write`` (killed, out of disk) leaves a tail that never completes.
* **stalled** (announced) when ``quiet >= threshold`` while live and the run is neither
  finished nor crashed.  Under polling the end of a run is invisible, so a quiet run is not
  called stalled when it may simply have ended: it is **finished** at the threshold when it
  reached its planned length, **crashed** when its tail is half-written, **stalled**
  (announced) when a planned length is known and not reached, and otherwise *stalled without
  an announcement* (the judge still sees STALLED) until it is presumed finished at ``presumed``
  -- a normally finished run gets no "stalled" first.
* **resumed** (back to live) on new data after stalled, finished or crashed; announced unless
  the pause itself was silent.
* :meth:`~RunLifecycle.adopt` (a run found when the daemon starts): one already quiet for
  ``presumed`` is finished (or crashed) without an announcement.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Optional, Set, Tuple

from tblive.judge.context import CRASHED, FINISHED, LIVE, STALLED

__all__ = [
    "CRASHED",
    "FINISHED",
    "LIVE",
    "RESUMED",
    "STALLED",
    "LifecyclePolicy",
    "RunLifecycle",
    "Transition",
    "duration",
]

#: the transition kind of a return to live (the other kinds are the new state's name)
RESUMED = "resumed"
#: how many recent arrival gaps the adaptive stall threshold takes the median of
GAP_HISTORY = 64
#: share of the planned length that counts as "reached it" (logging intervals end short of it)
PLANNED_REACHED = 0.99
#: a close or summary.json counts as "after the last data" with this much clock slack
ORDER_SLACK = 1.0
CRASH_REASON = "stopped mid-write (crash?)"


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2.5 h"``."""
    if seconds < 120:
        return "%.0f s" % seconds
    if seconds < 7200:
        return "%.0f min" % (seconds / 60.0)
    return "%.1f h" % (seconds / 3600.0)


@dataclass(frozen=True)
class LifecyclePolicy:
    """The knobs of the rules in the module docstring (seconds)."""

    stall_after: Optional[float] = None
    min_stall: float = 600.0
    stall_gaps: float = 10.0
    presumed_factor: float = 3.0
    settle: float = 2.0
    closes_visible: bool = True  # inotify reports a writer's close; polling does not


@dataclass(frozen=True)
class Transition:
    """One change of state: ``kind`` is ``"stalled"``, ``"finished"``, ``"crashed"`` or
    ``"resumed"``; ``reason`` the sentence an alert shows; ``announce`` False for the silent
    ones (adoption at start, a stall under polling that may be a normal end)."""

    kind: str
    previous: str
    state: str
    reason: str
    announce: bool = True


class RunLifecycle:
    """Lifecycle of one run; see the module docstring.  ``last_data``: when the run last got
    data before it was followed (e.g. from its files' modification times), on the caller's
    clock."""

    def __init__(self, policy: LifecyclePolicy, last_data: float) -> None:
        self.policy = policy
        self.state = LIVE
        self.reason = ""
        self.last_data = float(last_data)
        self.last_arrival: Optional[float] = None  # an arrival this machine saw (for gaps)
        self.gaps: Deque[float] = deque(maxlen=GAP_HISTORY)
        self.open_files: Set[str] = set()  # written to, not closed since
        self._closed_once: Set[str] = set()  # files a writer closed at least once
        self.reopening: Set[str] = set()  # files written again after a close (see closed())
        self._close_times: Dict[str, float] = {}  # last close per file that closes for good
        self.summary_at: Optional[float] = None
        self.tail_since: Optional[float] = None  # a half-written record at the end since then
        self.last_step = 0
        self.planned_steps = 0
        self.announced = True  # whether the current pause/end was announced (for "resumed")
        self._threshold: Optional[float] = None

    # -- inputs ---------------------------------------------------------------------------

    def data(self, now: float) -> Optional[Transition]:
        """New points arrived at ``now``; returns the "resumed" transition after a pause."""
        if self.last_arrival is not None:
            self.gaps.append(max(now - self.last_arrival, 0.0))
            self._threshold = None
        self.last_arrival = now
        quiet = now - self.last_data
        self.last_data = now
        if self.state == LIVE:
            return None
        previous = self.state
        announce = self.announced or previous != STALLED
        self._enter(LIVE, "")
        reason = "new data after %s of silence (it was %s)" % (duration(quiet), previous)
        return Transition(RESUMED, previous, LIVE, reason, announce)

    def wrote(self, path: str) -> None:
        """A writer wrote to ``path`` (native observer): it holds the file open until a close."""
        if self.policy.closes_visible:
            self.open_files.add(path)
            if path in self._closed_once:
                self.reopening.add(path)
                self._close_times.pop(path, None)

    def closed(self, path: str, now: float) -> None:
        """The writer closed ``path`` (inotify's IN_CLOSE_WRITE).

        Some writers close the file after every flush and open it again for the next one
        (tensorboard's ``EventFileWriter`` through its gfile layer, which torch's SummaryWriter
        uses): once a file was written again after a close, its closes no longer mean the end
        of the run (the quiet-time rules decide for it)."""
        self.open_files.discard(path)
        self._closed_once.add(path)
        if path not in self.reopening:
            self._close_times[path] = now

    def deleted(self, path: str) -> None:
        self.open_files.discard(path)
        self._close_times.pop(path, None)

    @property
    def closed_at(self) -> Optional[float]:
        """When a writer last closed one of the run's files for good (None: never seen)."""
        return max(self._close_times.values()) if self._close_times else None

    def summary(self, now: float) -> None:
        """An end-of-training ``summary.json`` was written."""
        self.summary_at = now

    def tail(self, pending: bool, now: float) -> None:
        """After a read: whether some file ends in a record that is not complete yet."""
        if not pending:
            self.tail_since = None
        elif self.tail_since is None:
            self.tail_since = now

    def progress(self, last_step: int, planned_steps: Optional[int] = None) -> None:
        """The run's last step, and its planned length in steps when known (> 0)."""
        self.last_step = int(last_step or 0)
        self.planned_steps = int(planned_steps or 0)

    # -- derived --------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state in (FINISHED, CRASHED)

    def threshold(self) -> float:
        """Seconds without data after which the run is stalled."""
        if self.policy.stall_after is not None:
            return float(self.policy.stall_after)
        if self._threshold is None:
            median = statistics.median(self.gaps) if self.gaps else 0.0
            self._threshold = max(self.policy.min_stall, self.policy.stall_gaps * median)
        return self._threshold

    def presumed(self) -> float:
        return self.policy.presumed_factor * self.threshold()

    def context(self) -> Tuple[str, str]:
        """``(state, reason)`` for the judge's :class:`~tblive.judge.context.RunContext`."""
        return self.state, self.reason

    def _half_written(self) -> bool:
        # the read after a close (or after a long silence) saw a record that is not complete:
        # a writer that is gone cannot complete it any more
        return self.tail_since is not None

    def _closed_after_data(self) -> bool:
        return (
            self.policy.closes_visible
            and not self.open_files
            and self.closed_at is not None
            and self.closed_at >= self.last_data - ORDER_SLACK
        )

    def _summary_after_data(self) -> bool:
        return self.summary_at is not None and self.summary_at >= self.last_data - ORDER_SLACK

    def _reached_plan(self) -> bool:
        return self.planned_steps > 0 and self.last_step >= PLANNED_REACHED * self.planned_steps

    # -- time rules -----------------------------------------------------------------------

    def due(self) -> float:
        """The earliest time :meth:`tick` can change the state (``inf``: only new data can)."""
        if self.ended:
            return float("inf")
        settle = self.policy.settle
        due = float("inf")
        if not self.open_files:
            due = self.last_data + self.presumed()
        if self._closed_after_data():
            due = min(due, max(self.closed_at or 0.0, self.last_data) + settle)
        if self._summary_after_data():
            due = min(due, max(self.summary_at or 0.0, self.last_data) + settle)
        if self.state == LIVE:
            due = min(due, self.last_data + self.threshold())
        return due

    def tick(self, now: float) -> Optional[Transition]:
        """Apply the time rules at ``now``; the transition that happened, if any."""
        if self.ended:
            return None
        quiet = now - self.last_data
        settle = self.policy.settle
        if quiet < settle:
            return None
        crashed = self._half_written()
        if self._closed_after_data() and now - (self.closed_at or now) >= settle:
            if crashed:
                return self._end(
                    CRASHED,
                    "%s: its writer closed the event files with a half-written last record"
                    % CRASH_REASON,
                )
            return self._end(FINISHED, "its writer closed the event files and nothing more came")
        if self._summary_after_data() and now - (self.summary_at or now) >= settle:
            return self._end(
                FINISHED, "summary.json was written (end of training) and nothing more came"
            )
        if not self.open_files and quiet >= self.presumed():
            if crashed:
                return self._end(
                    CRASHED,
                    "%s: no new data for %s and the last record is half-written"
                    % (CRASH_REASON, duration(quiet)),
                )
            if self.policy.closes_visible:
                how = "no writer was seen holding its files"
            else:
                how = (
                    "--poll cannot see a writer close its files; if it should still be "
                    "training, it has stopped"
                )
            return self._end(
                FINISHED,
                "no new data for %s: presumed finished (%s)" % (duration(quiet), how),
                announce=True,
            )
        if self.state != LIVE or quiet < self.threshold():
            return None
        threshold = self.threshold()
        said = "no new data for %s (threshold %s)" % (duration(quiet), duration(threshold))
        if self.policy.closes_visible:
            if self.tail_since is not None:
                said += "; its last record is half-written (the writer may have failed mid-write)"
            return self._pause(said, announce=True)
        # polling: the end of a run is invisible, so do not call a normal end "stalled"
        if crashed:
            return self._end(
                CRASHED,
                "%s: no new data for %s and the last record is half-written"
                % (CRASH_REASON, duration(quiet)),
            )
        if self._reached_plan():
            return self._end(
                FINISHED,
                "it reached its planned length (step %d of %d) and no new data came for %s"
                % (self.last_step, self.planned_steps, duration(quiet)),
            )
        if self.planned_steps > 0:
            return self._pause(
                "%s, at step %d of %d planned" % (said, self.last_step, self.planned_steps),
                announce=True,
            )
        return self._pause(said + " (not announced: with --poll it may have ended)", False)

    def adopt(self, now: float) -> Optional[Transition]:
        """A run found when following starts: quiet for ``presumed`` -> ended, silently."""
        quiet = now - self.last_data
        if self.ended or quiet < self.presumed():
            return None
        if self.tail_since is not None:
            reason = "%s: no new data for %s and the last record is half-written" % (
                CRASH_REASON,
                duration(quiet),
            )
            return self._end(CRASHED, reason, announce=False)
        reason = "no new data for %s when tblive started: treated as finished" % duration(quiet)
        return self._end(FINISHED, reason, announce=False)

    # -- transitions ----------------------------------------------------------------------

    def _enter(self, state: str, reason: str) -> None:
        self.state = state
        self.reason = reason

    def _end(self, state: str, reason: str, announce: bool = True) -> Transition:
        previous = self.state
        self._enter(state, reason)
        self.announced = announce
        return Transition(state, previous, state, reason, announce)

    def _pause(self, reason: str, announce: bool) -> Transition:
        previous = self.state
        self._enter(STALLED, reason)
        self.announced = announce
        return Transition(STALLED, previous, STALLED, reason, announce)
