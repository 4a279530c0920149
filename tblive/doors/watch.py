"""The live door: follow a log directory while training writes it, judge, alert, report.

Contract:

* :class:`~tblive.doors.options.WatchOptions` (importable from here too) holds what ``tblive
  watch`` parses (plus a few knobs for tests and embedding: ``stop_event``,
  ``shutdown_timeout``, ``rescan_interval``, ``min_judge_gap``, ``finish_settle``, ``host``).
  :func:`watch` runs until stopped and returns the exit code (0); it raises ValueError (one
  line) for a bad set-up: LOGDIR is a file, Slack half configured, a ``--prometheus`` address
  it cannot serve on.
* :class:`Watcher` is the daemon itself: :meth:`Watcher.run` blocks, :meth:`Watcher.start` runs
  it on a thread named ``tblive-watch``; :meth:`Watcher.stop` ends it cleanly (pending alerts
  flushed within ``shutdown_timeout`` -- what is still undelivered stays in the alert outbox --,
  final report written, every thread it started joined).  ``clock`` (default
  ``time.monotonic``) is the one clock of every lifecycle and scheduling decision, so tests
  can drive the daemon with an injected clock instead of real seconds.
* One loop thread does all the work: reading (``Run.poll``), judging and lifecycle, through
  :class:`~tblive.alert.engine.AlertEngine`.  Watchdog's thread only enqueues paths
  (:mod:`tblive.read.tail`); the sinks and the Prometheus server (:mod:`tblive.doors.exporter`)
  run on their own threads.
* Reading: :class:`~tblive.doors.follow.TreeFollower` says which runs exist and which files
  changed; every change means "read that run's files from their saved offsets".  The tree is
  also rescanned every ``rescan_interval`` seconds (and on directory events) as a backstop; a
  LOGDIR created later is followed within about a second.
* Judging: a run is judged right after a read that added points, at most once per
  ``max(min_judge_gap, 10 x its last judgement's duration)`` seconds, and when its lifecycle
  changes (the verdict gets the run's state: :class:`~tblive.judge.context.RunContext`).  A run
  without new data is judged again only while it has announced problems and has not ended
  (every ``interval``, so reminders fire after ``cooldown``); finished runs and quiet healthy
  runs cost nothing while idle.  What the daemon keeps per run, and that rule, are
  :class:`~tblive.doors.followed.FollowedRun`'s.
* Lifecycle: :class:`~tblive.doors.lifecycle.RunLifecycle` per run (live / stalled / finished /
  crashed / resumed; the rules are in :mod:`tblive.doors.lifecycle`).  The final report is
  written (atomically) each time a run ends and at shutdown.
* Signals (installed by :func:`watch` on the main thread): SIGINT / SIGTERM stop cleanly;
  SIGHUP reloads the ``--config`` file (as Prometheus and most daemons do) and re-judges every
  run with it; a config that does not load is logged and the previous one kept.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from tblive.alert.engine import AlertEngine
from tblive.alert.settings import build_sinks
from tblive.alert.state import StateStore, default_state_path
from tblive.alert.tracker import FINISHED, LIFECYCLE_KINDS, RESUMED, AlertPolicy
from tblive.doors.exporter import MetricsServer, RunSnapshot
from tblive.doors.follow import TreeFollower
from tblive.doors.followed import FollowedRun
from tblive.doors.lifecycle import CRASHED, LifecyclePolicy, RunLifecycle, Transition
from tblive.doors.options import WatchOptions
from tblive.judge.config import Config
from tblive.judge.findings import Verdict
from tblive.read.runs import Run
from tblive.read.tail import Change, ChangeQueue
from tblive.run import RunRecord, find_siblings

__all__ = ["EXIT_OK", "WatchOptions", "Watcher", "watch"]

logger = logging.getLogger(__name__)

EXIT_OK = 0

#: the loop wakes at least this often (to notice ``WatchOptions.stop_event`` and signals)
MAX_SLEEP = 1.0
#: and sleeps at least this long between timer-driven passes (file changes wake it at once)
MIN_SLEEP = 0.02


class Watcher:
    """The daemon; see the module docstring.  ``sinks`` overrides the options' sinks."""

    def __init__(
        self,
        options: WatchOptions,
        sinks: Optional[List[Any]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.clock = clock
        # alert times (seconds since the epoch) move with ``clock``: an injected clock drives
        # the cooldowns too
        self._wall_offset = None if clock is time.monotonic else time.time() - clock()
        options.validate()  # ValueError: one line, before anything starts
        self.path = os.path.abspath(options.logdir)
        self.config = options.config or Config.default()
        self.exporter: Optional[MetricsServer] = None
        if options.prometheus:
            self.exporter = MetricsServer(options.prometheus, self.snapshots)
        if sinks is None:
            options.alerts.validate()  # SettingsError (a ValueError): one line, before starting
        self._sinks = sinks if sinks is not None else build_sinks(options.alerts)
        self.state_path = options.alerts.state_file or default_state_path(self.path)
        self.rescan_interval = options.rescan_every()
        self.follower = TreeFollower(
            self.path, options.poll_interval, options.verify_payload, self.rescan_interval
        )
        self.engine: Optional[AlertEngine] = None
        self.states: Dict[str, FollowedRun] = {}
        self._snapshots: Dict[str, RunSnapshot] = {}  # replaced, never mutated (server thread)
        self._siblings: Dict[str, Dict[str, RunRecord]] = {}
        self._siblings_key: Tuple[Tuple[str, int], ...] = ()
        self._stop = threading.Event()
        self.signalled = 0  # set by the signal handler of watch() (see there)
        self.reload_requested = False  # set by the SIGHUP handler of watch()
        self.reloads = 0
        self._started = threading.Event()  # the loop is following the directory
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._wakeup = 0.0
        self.exit_code = EXIT_OK
        self.reports_written = 0
        self.judgements = 0

    # -- control --------------------------------------------------------------------------

    def start(self) -> Watcher:
        """Run the daemon on a thread (``tblive-watch``); returns once it follows the tree.

        Raises ValueError when the ``--prometheus`` address cannot be served.
        """
        if self._thread is not None:
            return self
        self.open_exporter()
        self._thread = threading.Thread(target=self.run, name="tblive-watch", daemon=True)
        self._thread.start()
        while not self._started.wait(0.05):
            if self._done.is_set():
                break
        return self

    def open_exporter(self) -> None:
        """Start the Prometheus server (if asked for); ValueError when it cannot bind."""
        if self.exporter is not None:
            self.exporter.start()

    @property
    def changes(self) -> ChangeQueue:
        """The queue the file observer fills (``changes.wake()`` wakes the loop)."""
        return self.follower.changes

    def request_stop(self) -> None:
        """Ask the loop to stop soon (safe from other threads)."""
        self._stop.set()
        self.changes.wake()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop, flush alerts, write the final report, join threads; True if all ended."""
        self.request_stop()
        if self._thread is not None:
            limit = self.options.shutdown_timeout + 10.0 if timeout is None else timeout
            self._thread.join(limit)
            return not self._thread.is_alive()
        return self._done.wait(0 if timeout is None else timeout) or not self._started.is_set()

    @property
    def stopping(self) -> bool:
        stop_event = self.options.stop_event
        if self.signalled and not self._stop.is_set():
            logger.info("signal %d received: stopping", self.signalled)
            self._stop.set()
        return self._stop.is_set() or (stop_event is not None and stop_event.is_set())

    @property
    def verdicts(self) -> Dict[str, Verdict]:
        return dict(self.engine.verdicts) if self.engine is not None else {}

    def lifecycle_of(self, run: str) -> Optional[str]:
        """``"live"``, ``"stalled"``, ``"finished"``, ``"crashed"``, or None (unknown run)."""
        state = self.states.get(run)
        return None if state is None else state.life.state

    def wall(self) -> float:
        """Seconds since the epoch, on the daemon's clock."""
        if self._wall_offset is None:
            return time.time()
        return self.clock() + self._wall_offset

    def snapshots(self) -> List[RunSnapshot]:
        """What ``/metrics`` shows (any thread)."""
        return list(self._snapshots.values())

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Follow the directory until stopped (or, with ``exit_when_finished``, all ended)."""
        self.engine = AlertEngine(
            self.config,
            self._sinks,
            AlertPolicy(cooldown_seconds=self.options.cooldown),
            self.options.host,
            settings=self.options.alerts,
            state=StateStore(self.state_path, self.path),
        )
        logger.info(
            "alerts go to: %s; alert state in %s",
            ", ".join(self.options.alerts.channels()),
            self.state_path,
        )
        try:
            self.open_exporter()
            if not self.follower.start():
                logger.info("%s does not exist yet; waiting for it", self.path)
            self.engine.begin_startup()  # runs already bad at start: one start-up digest
            try:
                self._step([])
            finally:
                self.engine.end_startup(self.path)
            logger.info("first pass done: %d runs read and judged", len(self.states))
            self._started.set()
            while not self.stopping:
                if self.reload_requested:
                    self.reload_requested = False
                    self.reload()
                timeout = min(max(self._wakeup - self.clock(), MIN_SLEEP), MAX_SLEEP)
                changes = self.changes.drain(timeout)
                if self.stopping:
                    break
                if changes or self.follower.need_rescan or self.clock() >= self._wakeup:
                    self._step(changes)
                if self.options.exit_when_finished and self._all_ended():
                    logger.info("every run has finished; exiting (--exit-when-finished)")
                    break
        except Exception:
            logger.exception("tblive watch: unexpected error; shutting down")
        finally:
            self._started.set()
            self._shutdown()
            self._done.set()
        return self.exit_code

    def _step(self, changes: List[Change]) -> None:
        """One pass: apply changes, rescan if due, read, judge, lifecycle.  Never raises."""
        try:
            now = self.clock()
            follower = self.follower
            follower.check_existence(now)
            unresolved: List[Change] = []
            dirty = self._apply_changes(follower.route(changes, unresolved), now)
            if follower.rescan_wanted(now):
                dirty.update(self._rescan(now))
                # events of runs the rescan just found (created, written and closed before it)
                dirty.update(self._apply_changes(follower.route(unresolved), now))
            for name in sorted(dirty):
                self._read(name)
            now = self.clock()
            wakeup = follower.wakeup()
            for state in list(self.states.values()):
                if now >= self._due(state):
                    self._maybe_judge(state, now)
                    self._tick_lifecycle(state, now)
                wakeup = min(wakeup, self._due(state))
            self._wakeup = wakeup
        except Exception:
            self._wakeup = self.clock() + MAX_SLEEP
            logger.exception("tblive watch: error while following %s (will retry)", self.path)

    def _due(self, state: FollowedRun) -> float:
        return min(self._judge_due(state), state.life.due())

    # -- changes and discovery ------------------------------------------------------------

    def _apply_changes(self, routed: List[Tuple[str, Change]], now: float) -> Set[str]:
        """Feed what happened to each run's files to its lifecycle; returns the runs to read."""
        dirty: Set[str] = set()
        closes_visible = self.follower.closes_visible
        for run_name, change in routed:
            state = self.states.get(run_name)
            if state is None:
                continue
            dirty.add(run_name)
            state.observe(change, now, closes_visible)
        return dirty

    def _policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(
            stall_after=self.options.stall_after,
            settle=self.options.finish_settle,
            closes_visible=self.follower.closes_visible,
        )

    def _rescan(self, now: float) -> Set[str]:
        """Backstop: re-discover runs and read every run; returns the runs to read."""
        added, gone = self.follower.rescan(now)
        for name in gone:
            logger.warning(
                "run '%s' is gone (its directory was removed, or it is now part of another "
                "run); no longer followed",
                name,
            )
            self.states.pop(name, None)
            self._forget_snapshot(name)
            if self.engine is not None:
                self.engine.forget(name)
        for run in added:
            self.states[run.name] = self._new_state(run, now)
            logger.info("following run '%s' (%s)", run.name, run.path)
        new_names = {run.name for run in added}
        for run in added:
            self._read(run.name, initial=True)
        return set(self.states) - new_names

    def _new_state(self, run: Run, now: float) -> FollowedRun:
        age = self.follower.files_age(run)
        record = RunRecord.from_reader(run)
        return FollowedRun(
            run=run,
            record=record,
            life=RunLifecycle(self._policy(), now - (age or 0.0)),
            last_data_wall=self.wall() - (age or 0.0),
        )

    # -- reading --------------------------------------------------------------------------

    def _read(self, name: str, initial: bool = False) -> None:
        state = self.states.get(name)
        if state is None:
            return
        try:
            added = state.run.poll()
            pending = any(f.has_new_data() for f in state.run.files)
        except Exception as error:  # a bug or an odd file: keep the daemon alive, retry later
            logger.warning("run '%s': reading failed: %s (will retry)", name, error)
            return
        now = self.clock()
        state.life.tail(pending, now)
        if initial:
            self._infer_planned(state)
            self._apply(state, state.life.adopt(now), now)
            self._publish(state)
            return
        if added <= 0:
            return
        state.last_data_wall = self.wall()
        self._apply(state, state.life.data(now), now)
        state.life.progress(state.run.total_steps, state.record.planned_steps)

    def _infer_planned(self, state: FollowedRun) -> None:
        """The planned length: ``--expected-steps``, else what the trainer saved beside it."""
        expected = self.options.expected_steps or self.config.grace.expected_steps
        state.record.infer(expected_steps=expected or None, assume=state.life.state)
        state.record.state, state.record.state_reason = state.life.context()
        state.life.progress(state.run.total_steps, state.record.planned_steps)

    # -- judging --------------------------------------------------------------------------

    def _judge_due(self, state: FollowedRun) -> float:
        engine = self.engine
        return state.judge_due(
            self.options.min_judge_gap,
            self.options.interval,
            lambda: engine is not None and bool(engine.tracker.active_problems(state.run.name)),
        )

    def _maybe_judge(self, state: FollowedRun, now: float) -> None:
        if now >= self._judge_due(state):
            self._judge(state, now)

    def _judge(self, state: FollowedRun, now: float) -> Optional[Verdict]:
        if self.engine is None or state.run.points == 0:
            return None
        record = state.record
        record.state, record.state_reason = state.life.context()
        context = record.context(self._siblings_of(state.run.name))
        started = time.perf_counter()
        verdict = self.engine.judge(
            state.run.name, state.run.sinks, now=self.wall(), context=context
        )  # type: ignore[arg-type]
        state.judge_cost = time.perf_counter() - started
        self.judgements += 1
        state.judged_points = state.run.points
        state.judged_state = state.life.state
        state.last_judge = now
        state.stale = False
        record.verdict = verdict
        record.roles = self.engine.roles.get(state.run.name)
        self._publish(state)
        return verdict

    def _siblings_of(self, name: str) -> Dict[str, RunRecord]:
        """Other seeds of the same configuration (regrouped when runs or their tags change)."""
        key = tuple((n, len(s.run.feeds)) for n, s in self.states.items())
        if key != self._siblings_key:
            self._siblings_key = key
            records = [s.record for s in self.states.values()]
            self._siblings = find_siblings(records, self.path) if len(records) > 1 else {}
        return self._siblings.get(name) or {}

    # -- lifecycle ------------------------------------------------------------------------

    def stall_threshold(self, state: FollowedRun) -> float:
        """Seconds without data after which ``state``'s run is stalled."""
        return state.life.threshold()

    def _tick_lifecycle(self, state: FollowedRun, now: float) -> None:
        self._apply(state, state.life.tick(now), now)

    def _apply(self, state: FollowedRun, transition: Optional[Transition], now: float) -> None:
        """Act on a lifecycle transition: judge with the new state, announce, report."""
        if transition is None:
            return
        state.record.state, state.record.state_reason = state.life.context()
        name = state.run.name
        if transition.kind == RESUMED:
            if transition.announce:
                self._announce(state, RESUMED, transition.reason)
            else:
                logger.info("run '%s' resumed: %s", name, transition.reason)
            return
        verdict = self._judge(state, now)
        if transition.announce:
            self._announce(state, transition.kind, transition.reason)
        else:
            logger.info("run '%s' %s: %s", name, transition.kind, transition.reason)
            if transition.kind in (FINISHED, CRASHED) and self.engine is not None:
                # state only (not announced): a later restart is announced as "resumed"
                self.engine.tracker.lifecycle(name, FINISHED, self.wall(), verdict=verdict)
        if transition.kind in (FINISHED, CRASHED) and transition.announce:
            self.write_final_report()
        self._publish(state)

    def _announce(self, state: FollowedRun, kind: str, message: str) -> None:
        logger.info("run '%s' %s: %s", state.run.name, kind, message)
        if kind == CRASHED and CRASHED not in LIFECYCLE_KINDS:
            kind = FINISHED  # the tracker announces it as an end; the message says crash
        if self.engine is not None:
            self.engine.lifecycle(
                state.run.name, kind, message, now=self.wall(), step=state.run.total_steps or None
            )

    def _all_ended(self) -> bool:
        return bool(self.states) and all(s.life.ended for s in self.states.values())

    # -- Prometheus -----------------------------------------------------------------------

    def _publish(self, state: FollowedRun) -> None:
        if self.exporter is None:
            return
        snapshots = dict(self._snapshots)
        snapshots[state.run.name] = state.snapshot()
        self._snapshots = snapshots

    def _forget_snapshot(self, name: str) -> None:
        if name in self._snapshots:
            snapshots = dict(self._snapshots)
            del snapshots[name]
            self._snapshots = snapshots

    # -- configuration --------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the ``--config`` file (SIGHUP) and re-judge every run; False if not done."""
        path = self.options.config_path
        if not path:
            logger.info("SIGHUP: no --config file to reload; nothing changed")
            return False
        try:
            from tblive.judge.config_file import load_config

            config = load_config(path)
            if self.options.expected_steps:
                config.grace.expected_steps = int(self.options.expected_steps)
        except Exception as error:
            logger.error(
                "SIGHUP: cannot reload %s: %s; keeping the previous configuration", path, error
            )
            return False
        self.config = config
        if self.engine is not None:
            self.engine.config = config
        for state in self.states.values():
            state.stale = True
        self._wakeup = self.clock()
        self.reloads += 1
        logger.info(
            "SIGHUP: configuration reloaded from %s; re-judging %d runs", path, len(self.states)
        )
        return True

    # -- report and shutdown --------------------------------------------------------------

    def write_final_report(self) -> Optional[str]:
        """Write the JSON report of every run to ``final_report`` atomically; never raises."""
        target = self.options.final_report
        if not target:
            return None
        try:
            from tblive.atomic import write_atomically
            from tblive.render.report import render_json

            results = []
            for _, state in sorted(self.states.items()):
                record = state.record
                if record.verdict is None or state.judged_points != state.run.points:
                    record.state, record.state_reason = state.life.context()
                    record.judge(self.config, self._siblings_of(state.run.name))
                results.append(record)
            text = json.dumps(render_json(self.options.logdir, results), indent=2) + "\n"
            write_atomically(target, text)
        except Exception as error:
            logger.warning("cannot write the final report %s: %s", target, error)
            return None
        self.reports_written += 1
        logger.info("final report written to %s (%d runs)", target, len(results))
        return target

    def _shutdown(self) -> None:
        """Stop following, read and judge what is left, report, flush alerts."""
        self.follower.stop(timeout=5.0)
        try:
            for name, state in list(self.states.items()):
                self._read(name)
                if state.run.points != state.judged_points:
                    self._judge(state, self.clock())
        except Exception:
            logger.exception("error while reading the last data at shutdown")
        self.write_final_report()
        if self.exporter is not None:
            self.exporter.stop()
        if self.engine is not None:
            if not self.engine.close(self.options.shutdown_timeout):
                logger.warning("some alerts could not be delivered before shutdown")


def watch(options: WatchOptions) -> int:
    """Run the daemon until SIGINT/SIGTERM (or ``options.stop_event``); returns the exit code.

    SIGHUP reloads the ``--config`` file.  Signal handlers are installed only when called from
    the main thread (and restored after).  Raises ValueError for a bad set-up.
    """
    watcher = Watcher(options)
    watcher.open_exporter()
    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def handle(signum: int, frame: Any) -> None:
            # Only a plain attribute write: a handler runs between two bytecodes of the main
            # thread, which may hold an Event's lock right then (Event.set would deadlock,
            # and so could logging). The loop looks at the flags at least once a second.
            if signum == getattr(signal, "SIGHUP", None):
                watcher.reload_requested = True
            else:
                watcher.signalled = signum

        wanted = [signal.SIGINT, signal.SIGTERM]
        if hasattr(signal, "SIGHUP"):
            wanted.append(signal.SIGHUP)
        for signum in wanted:
            try:
                previous[signum] = signal.signal(signum, handle)
            except (ValueError, OSError):  # pragma: no cover - exotic platforms
                pass
    try:
        return watcher.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
