"""Which runs a log directory holds and what happens to their files: the live daemon's eyes.

Contract:

* :class:`TreeFollower` wraps the reader's :class:`~tblive.read.runs.LogDir` (discovery of runs,
  incremental reading) and :class:`~tblive.read.tail.Tail` (change notification: inotify, or
  polling).  It knows files and runs, nothing of statistics, verdicts or alerts; the daemon
  (:mod:`tblive.doors.watch`) asks it what changed and decides what that means.
* :meth:`TreeFollower.route` turns raw changes into ``(run name, change)`` pairs for the event
  files and ``summary.json`` of known runs; a change in a folder no run has yet (a new run, a
  new nested ``add_scalars`` folder) or on a directory asks for a rescan, and the change is
  kept in ``unresolved`` so it can be routed again once the rescan knows its run.
* :meth:`TreeFollower.rescan` re-discovers the runs (the backstop for missed events, due every
  ``rescan_interval`` seconds and on demand) and returns the runs added and gone.
* While LOGDIR does not exist, :meth:`TreeFollower.check_existence` looks for it every
  :data:`EXISTENCE_CHECK` seconds (the tail also watches its nearest existing parent), so a
  LOGDIR created later is followed within about a second.
* Times are on the caller's clock (the daemon's, injectable in tests).  One thread uses it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Dict, List, Optional, Tuple

from tblive.read.runs import SUMMARY_JSON, LogDir, Run, is_event_file
from tblive.read.tail import DELETED, Change, ChangeQueue, Tail
from tblive.run import new_stats

logger = logging.getLogger(__name__)

#: while LOGDIR does not exist, look for it this often (seconds)
EXISTENCE_CHECK = 1.0


class TreeFollower:
    """Follows the runs under ``path``; see the module docstring."""

    def __init__(
        self,
        path: str,
        poll_interval: Optional[float] = None,
        verify_payload: bool = False,
        rescan_interval: float = 30.0,
    ) -> None:
        self.path = os.path.abspath(path)
        self.poll_interval = poll_interval
        self.rescan_interval = float(rescan_interval)
        self.changes = ChangeQueue()
        self.logdir = LogDir(self.path, new_stats, verify_payload)
        self.tail: Optional[Tail] = None
        self.rescan_due = 0.0
        self.need_rescan = True
        self._existence_due = 0.0
        self._dirs: Dict[str, str] = {}  # source or run directory -> run name

    # -- the file observer ------------------------------------------------------------------

    def start(self) -> bool:
        """Start the file observer; returns whether LOGDIR exists (and is watched) now."""
        self.tail = Tail(self.path, self.changes, self.poll_interval)
        self.tail.start()
        return self.tail.watching

    def stop(self, timeout: float = 5.0) -> None:
        if self.tail is not None:
            self.tail.stop(timeout=timeout)

    @property
    def watching(self) -> bool:
        return self.tail is not None and self.tail.watching

    @property
    def closes_visible(self) -> bool:
        """Whether a writer's close is reported (inotify), so it can mean "finished"."""
        return self.tail is not None and self.tail.closes_visible

    def check_existence(self, now: float) -> None:
        """While LOGDIR is missing, look for it every :data:`EXISTENCE_CHECK` seconds."""
        tail = self.tail
        if tail is None or tail.watching or now < self._existence_due:
            return
        self._existence_due = now + EXISTENCE_CHECK
        if tail.ensure_watching():
            self.need_rescan = True

    def wakeup(self) -> float:
        """When the follower itself needs the next pass (rescan, existence check)."""
        if self.tail is not None and not self.tail.watching:
            return min(self.rescan_due, self._existence_due)
        return self.rescan_due

    # -- changes and discovery --------------------------------------------------------------

    def route(
        self, changes: List[Change], unresolved: Optional[List[Change]] = None
    ) -> List[Tuple[str, Change]]:
        """``(run name, change)`` for the changes of known runs' event files and summary.json
        (in order); the rest asks for a rescan (see the module docstring)."""
        routed: List[Tuple[str, Change]] = []
        for change in changes:
            if change.is_directory:
                self.need_rescan = True
                continue
            name = os.path.basename(change.path)
            if not (is_event_file(name) or name == SUMMARY_JSON):
                continue
            run_name = self._dirs.get(os.path.dirname(change.path))
            if run_name is None:
                if change.kind != DELETED:
                    self.need_rescan = True  # an event file in a folder no run has yet
                if unresolved is not None:
                    unresolved.append(change)
                continue
            routed.append((run_name, change))
        return routed

    def rescan_wanted(self, now: float) -> bool:
        return self.need_rescan or now >= self.rescan_due

    def rescan(self, now: float) -> Tuple[List[Run], List[str]]:
        """Re-discover the runs: ``(added runs, names of runs gone)``; never raises."""
        self.need_rescan = False
        self.rescan_due = now + self.rescan_interval
        if self.tail is not None:
            self.tail.ensure_watching()
        try:
            added, gone = self.logdir.rescan()
        except OSError as error:
            logger.warning("cannot scan %s: %s (will retry)", self.path, error)
            return [], []
        self._dirs = {}
        for name, run in self.logdir.runs.items():
            self._dirs[run.path] = name
            for source in run.layout.sources:
                self._dirs[source.path] = name
        return added, gone

    @staticmethod
    def files_age(run: Run) -> Optional[float]:
        """Seconds since the run's newest event file (or summary.json) was modified."""
        newest = None
        for source in run.layout.sources:
            try:
                with os.scandir(source.path) as entries:
                    for entry in entries:
                        if is_event_file(entry.name) or entry.name == SUMMARY_JSON:
                            mtime = entry.stat().st_mtime
                            newest = mtime if newest is None else max(newest, mtime)
            except OSError:
                continue
        return None if newest is None else max(time.time() - newest, 0.0)
