"""The live door: follow a log directory while training writes it, judge, alert, report.

Contract:

* :class:`WatchOptions` holds what ``tblive watch`` parses (plus a few knobs for tests and
  embedding: ``stop_event``, ``shutdown_timeout``, ``rescan_interval``, ``min_judge_gap``,
  ``finish_settle``, ``host``).  :func:`watch` runs until stopped and returns the exit code (0);
  it raises ValueError (one line) for a bad set-up: LOGDIR is a file, Slack half configured.
* :class:`Watcher` is the daemon itself: :meth:`Watcher.run` blocks, :meth:`Watcher.start` runs
  it on a thread named ``tblive-watch``; :meth:`Watcher.stop` ends it cleanly (pending alerts
  flushed within ``shutdown_timeout``, final report written, every thread it started joined).
* One loop thread does all the work: reading (:class:`~tblive.read.runs.LogDir` / ``Run.poll``,
  which feeds the per-series :class:`~tblive.series.stats.MetricStats`), judging and lifecycle, through
  :class:`~tblive.alert.engine.AlertEngine`.  Watchdog's thread only enqueues paths
  (:mod:`tblive.read.tail`); Slack and the other sinks run on the dispatcher's threads.
* Reading: every change event means "read that run's files from their saved offsets".  The tree
  is also rescanned every ``rescan_interval`` seconds (and on directory events) as a backstop:
  new runs, new nested ``add_scalars`` folders, restarts' new event files, missed events,
  transient I/O errors (a failed read keeps its offset and is retried).  A run whose directory
  disappears is dropped with a log line.
* Judging: a run is judged right after a read that added points, at most once per
  ``max(min_judge_gap, 10 x its last judgement's duration)`` seconds (so judging never takes
  more than ~10% of a core however fast data comes), and every ``interval`` seconds regardless
  (unchanged problems are re-announced after ``cooldown``).  Alerts fire on transitions only
  (:class:`~tblive.alert.tracker.AlertTracker`).
* Lifecycle, per run (times measured on this machine's clock, from when data *arrived*):

  - *stalled* (WARNING): no new data for ``stall_after`` seconds (default: 10 x the run's median
    gap between data arrivals, at least 600 s);
  - *finished*: (a) the writer closed every event file it was writing (inotify's
    IN_CLOSE_WRITE; also what the kernel does when the trainer crashes) and nothing came for
    ``finish_settle`` seconds; or (b) HARL's ``summary.json`` was written and nothing came for
    ``finish_settle`` seconds (works with polling too); or (c) *presumed*: no data for 3 x the
    stall threshold while no open writer is known (always the case with ``--poll``, which has no
    close signal; with inotify a writer seen writing but not closed is never presumed gone).
    A run already quiet that long when the daemon starts is marked finished without an alert.
    The final report is written (atomically) each time a run finishes and at shutdown;
  - *resumed*: new data after stalled or finished.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Set

from tblive.alert.engine import AlertEngine, SinkSettings, build_sinks
from tblive.alert.tracker import FINISHED, RESUMED, STALLED, AlertPolicy
from tblive.doors.posthoc import judge as judge_run
from tblive.doors.posthoc import new_stats
from tblive.judge.findings import Verdict
from tblive.judge.metrics import Config
from tblive.read.runs import SUMMARY_JSON, LogDir, Run, is_event_file
from tblive.read.tail import CLOSED, CREATED, DELETED, MODIFIED, Change, ChangeQueue, Tail

logger = logging.getLogger(__name__)

EXIT_OK = 0

#: default floor of the stall threshold (seconds)
MIN_STALL_SECONDS = 600.0
#: the default stall threshold is this many median gaps between data arrivals
STALL_GAPS = 10.0
#: a run with no known open writer is presumed finished after this many stall thresholds
PRESUMED_FINISH_FACTOR = 3.0
#: how many recent arrival gaps the median is taken over
GAP_HISTORY = 64
#: the loop wakes at least this often (to notice ``WatchOptions.stop_event``)
MAX_SLEEP = 1.0
#: and sleeps at least this long between timer-driven passes (file changes wake it at once)
MIN_SLEEP = 0.02


@dataclass
class WatchOptions:
    """Everything ``tblive watch`` needs; see the module docstring for the semantics."""

    logdir: str
    config: Optional[Config] = None
    interval: float = 60.0
    poll_interval: Optional[float] = None  # None: native observer (inotify); seconds: polling
    slack_webhook: Optional[str] = field(default=None, repr=False)  # secrets: never in a repr
    slack_token: Optional[str] = field(default=None, repr=False)
    slack_channel: Optional[str] = None
    slack_base_url: Optional[str] = None
    on_critical: Optional[str] = None
    events_log: Optional[str] = None
    final_report: Optional[str] = None
    cooldown: float = 3600.0
    stall_after: Optional[float] = None
    verify_payload: bool = False
    exit_when_finished: bool = False
    # -- not on the command line: embedding, tests, benchmarks --
    stop_event: Optional[threading.Event] = None  # set it to stop (checked at least every 1 s)
    shutdown_timeout: float = 10.0  # bounded wait for pending alerts at shutdown
    rescan_interval: Optional[float] = None  # backstop rescan; default clamp(interval/2, 1, 30)
    min_judge_gap: float = 0.25  # judge a growing run at most this often
    finish_settle: float = 2.0  # quiet time after a close / summary.json before "finished"
    host: Optional[str] = None  # host name shown in alerts (default: this machine's)

    def sink_settings(self) -> SinkSettings:
        return SinkSettings(
            slack_webhook=self.slack_webhook,
            slack_token=self.slack_token,
            slack_channel=self.slack_channel,
            slack_base_url=self.slack_base_url,
            on_critical=self.on_critical,
            events_log=self.events_log,
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return "%.0f s" % seconds
    if seconds < 7200:
        return "%.0f min" % (seconds / 60.0)
    return "%.1f h" % (seconds / 3600.0)


@dataclass
class _RunState:
    """What the daemon tracks about one run besides its statistics."""

    run: Run
    last_data: float  # monotonic time of the last arrival of points (or the files' mtime)
    last_arrival: Optional[float] = None  # arrival seen by this daemon (for gaps)
    gaps: Deque[float] = field(default_factory=lambda: deque(maxlen=GAP_HISTORY))
    judged_points: int = -1
    last_judge: float = float("-inf")
    judge_cost: float = 0.0
    lifecycle: str = "active"  # active | stalled | finished
    open_files: Set[str] = field(default_factory=set)  # written to, not closed since
    closed_at: Optional[float] = None  # last close of one of its files
    summary_at: Optional[float] = None  # last write of summary.json


class Watcher:
    """The daemon; see the module docstring.  ``sinks`` overrides the options' sinks."""

    def __init__(self, options: WatchOptions, sinks: Optional[List[Any]] = None) -> None:
        self.options = options
        self.path = os.path.abspath(options.logdir)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError("%s: not a directory" % options.logdir)
        if options.interval <= 0:
            raise ValueError("--interval must be positive (got %g)" % options.interval)
        if options.poll_interval is not None and options.poll_interval <= 0:
            raise ValueError("--poll must be positive (got %g)" % options.poll_interval)
        if options.stall_after is not None and options.stall_after <= 0:
            raise ValueError("--stall-after must be positive (got %g)" % options.stall_after)
        self.config = options.config or Config.default()
        self._sinks = sinks if sinks is not None else build_sinks(options.sink_settings())
        rescan = options.rescan_interval
        if rescan is None:
            rescan = min(max(options.interval / 2.0, 1.0), 30.0)
        self.rescan_interval = float(rescan)
        self.changes = ChangeQueue()
        self.engine: Optional[AlertEngine] = None
        self.logdir = LogDir(self.path, new_stats, options.verify_payload)
        self.states: Dict[str, _RunState] = {}
        self._dirs: Dict[str, str] = {}  # source or run directory -> run name
        self._stop = threading.Event()
        self.signalled = 0  # set by the signal handler of watch() (see there)
        self._started = threading.Event()  # the loop is following the directory
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._tail: Optional[Tail] = None
        self._rescan_due = 0.0
        self._need_rescan = True
        self.exit_code = EXIT_OK
        self.reports_written = 0

    # -- control --------------------------------------------------------------------------

    def start(self) -> Watcher:
        """Run the daemon on a thread (``tblive-watch``); returns once it follows the tree."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self.run, name="tblive-watch", daemon=True)
        self._thread.start()
        while not self._started.wait(0.05):
            if self._done.is_set():
                break
        return self

    def request_stop(self) -> None:
        """Ask the loop to stop soon (safe from signal handlers and other threads)."""
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
        state = self.states.get(run)
        return None if state is None else state.lifecycle

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Follow the directory until stopped (or, with ``exit_when_finished``, all finished)."""
        self.engine = AlertEngine(
            self.config,
            self._sinks,
            AlertPolicy(cooldown_seconds=self.options.cooldown),
            self.options.host,
        )
        self._tail = Tail(self.path, self.changes, self.options.poll_interval)
        try:
            self._tail.start()
            if not self._tail.watching:
                logger.info("%s does not exist yet; waiting for it", self.path)
            self._step([])
            self._started.set()
            while not self.stopping:
                timeout = min(max(self._next_wakeup() - time.monotonic(), MIN_SLEEP), MAX_SLEEP)
                changes = self.changes.drain(timeout)
                if self.stopping:
                    break
                self._step(changes)
                if self.options.exit_when_finished and self._all_finished():
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
            now = time.monotonic()
            dirty = self._apply_changes(changes, now)
            if self._need_rescan or now >= self._rescan_due:
                dirty.update(self._rescan(now))
            for name in sorted(dirty):
                self._read(name)
            now = time.monotonic()
            for state in list(self.states.values()):
                self._maybe_judge(state, now)
                self._check_lifecycle(state, now)
        except Exception:
            logger.exception("tblive watch: error while following %s (will retry)", self.path)

    def _next_wakeup(self) -> float:
        deadline = self._rescan_due
        for state in self.states.values():
            deadline = min(deadline, self._judge_due(state), self._lifecycle_due(state))
        return deadline

    # -- changes and discovery ------------------------------------------------------------

    @property
    def _closes_visible(self) -> bool:
        return self._tail is not None and self._tail.closes_visible

    def _run_for_dir(self, directory: str) -> Optional[str]:
        return self._dirs.get(directory)

    def _apply_changes(self, changes: List[Change], now: float) -> Set[str]:
        dirty: Set[str] = set()
        for change in changes:
            if change.is_directory:
                self._need_rescan = True
                continue
            name = os.path.basename(change.path)
            if not (is_event_file(name) or name == SUMMARY_JSON):
                continue
            run_name = self._run_for_dir(os.path.dirname(change.path))
            if run_name is None:
                if change.kind != DELETED:
                    self._need_rescan = True  # an event file in a folder no run has yet
                continue
            state = self.states.get(run_name)
            if state is None:
                continue
            dirty.add(run_name)
            if name == SUMMARY_JSON:
                if change.kind != DELETED:
                    state.summary_at = now
            elif change.kind == CLOSED:
                state.open_files.discard(change.path)
                state.closed_at = now
            elif change.kind == DELETED:
                state.open_files.discard(change.path)
            elif change.kind in (MODIFIED, CREATED) and self._closes_visible:
                state.open_files.add(change.path)  # only a close can take it out again
        return dirty

    def _rescan(self, now: float) -> Set[str]:
        """Backstop: re-discover runs and read every run; returns the runs to read."""
        self._need_rescan = False
        self._rescan_due = now + self.rescan_interval
        if self._tail is not None:
            self._tail.ensure_watching()
        try:
            added, gone = self.logdir.rescan()
        except OSError as error:
            logger.warning("cannot scan %s: %s (will retry)", self.path, error)
            return set()
        for name in gone:
            logger.warning(
                "run '%s' is gone (its directory was removed, or it is now part of another "
                "run); no longer followed",
                name,
            )
            self.states.pop(name, None)
            if self.engine is not None:
                self.engine.forget(name)
        for run in added:
            self.states[run.name] = _RunState(run, last_data=self._initial_last_data(run, now))
            logger.info("following run '%s' (%s)", run.name, run.path)
        self._dirs = {}
        for name, run in self.logdir.runs.items():
            self._dirs[run.path] = name
            for source in run.layout.sources:
                self._dirs[source.path] = name
        new_names = {run.name for run in added}
        for run in added:
            self._read(run.name, initial=True)
        return set(self.states) - new_names

    def _initial_last_data(self, run: Run, now: float) -> float:
        """When the run last got data, from its files' modification times (monotonic)."""
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
        if newest is None:
            return now
        age = max(time.time() - newest, 0.0)
        return now - age

    # -- reading --------------------------------------------------------------------------

    def _read(self, name: str, initial: bool = False) -> None:
        state = self.states.get(name)
        if state is None:
            return
        try:
            added = state.run.poll()
        except Exception as error:  # a bug or an odd file: keep the daemon alive, retry later
            logger.warning("run '%s': reading failed: %s (will retry)", name, error)
            return
        if added <= 0 or initial:
            if initial:
                self._adopt(state, time.monotonic())
            return
        now = time.monotonic()
        if state.last_arrival is not None:
            state.gaps.append(now - state.last_arrival)
        state.last_arrival = now
        quiet = now - state.last_data
        state.last_data = now
        if state.lifecycle != "active":
            previous = state.lifecycle
            state.lifecycle = "active"
            self._announce(
                state,
                RESUMED,
                "new data after %s of silence (it was %s)" % (_duration(quiet), previous),
            )

    def _adopt(self, state: _RunState, now: float) -> None:
        """A run discovered now: one already quiet for long is finished (without an alert)."""
        quiet = now - state.last_data
        if quiet >= PRESUMED_FINISH_FACTOR * self.stall_threshold(state):
            state.lifecycle = "finished"
            verdict = self._judge(state, now)
            if self.engine is not None:
                self.engine.tracker.lifecycle(
                    state.run.name, FINISHED, time.time(), verdict=verdict
                )  # state only: not announced
            logger.info(
                "run '%s' has had no new data for %s: treated as finished",
                state.run.name,
                _duration(quiet),
            )

    # -- judging --------------------------------------------------------------------------

    def _judge_gap(self, state: _RunState) -> float:
        return max(self.options.min_judge_gap, 10.0 * state.judge_cost)

    def _judge_due(self, state: _RunState) -> float:
        if state.run.points == 0:
            return float("inf")
        if state.run.points != state.judged_points:
            return state.last_judge + self._judge_gap(state)
        return state.last_judge + self.options.interval

    def _maybe_judge(self, state: _RunState, now: float) -> None:
        if now >= self._judge_due(state):
            self._judge(state, now)

    def _judge(self, state: _RunState, now: float) -> Optional[Verdict]:
        if self.engine is None or state.run.points == 0:
            return None
        started = time.perf_counter()
        verdict = self.engine.judge(state.run.name, state.run.sinks, now=time.time())  # type: ignore[arg-type]
        state.judge_cost = time.perf_counter() - started
        state.judged_points = state.run.points
        state.last_judge = now
        return verdict

    # -- lifecycle ------------------------------------------------------------------------

    def stall_threshold(self, state: _RunState) -> float:
        """Seconds without data after which ``state``'s run is stalled."""
        if self.options.stall_after is not None:
            return float(self.options.stall_after)
        median = statistics.median(state.gaps) if state.gaps else 0.0
        return max(MIN_STALL_SECONDS, STALL_GAPS * median)

    def _finish_reason(self, state: _RunState, now: float) -> Optional[str]:
        quiet = now - state.last_data
        settle = self.options.finish_settle
        if (
            not state.open_files
            and state.closed_at is not None
            and state.closed_at >= state.last_data - 1.0
        ):
            if quiet >= settle and now - state.closed_at >= settle:
                return "its writer closed the event files and nothing more came"
        if state.summary_at is not None and state.summary_at >= state.last_data - 1.0:
            if quiet >= settle and now - state.summary_at >= settle:
                return "summary.json was written (end of training) and nothing more came"
        presumed = PRESUMED_FINISH_FACTOR * self.stall_threshold(state)
        if not state.open_files and quiet >= presumed:
            how = "no writer was seen" if self._closes_visible else "polling sees no close"
            return "no new data for %s (%s): presumed finished" % (_duration(quiet), how)
        return None

    def _lifecycle_due(self, state: _RunState) -> float:
        """When :meth:`_check_lifecycle` can next change something (mirrors its conditions)."""
        due = float("inf")
        if state.lifecycle == "finished":
            return due
        settle = self.options.finish_settle
        if not state.open_files:
            due = state.last_data + PRESUMED_FINISH_FACTOR * self.stall_threshold(state)
            if state.closed_at is not None and state.closed_at >= state.last_data - 1.0:
                due = min(due, max(state.closed_at, state.last_data) + settle)
        if state.summary_at is not None and state.summary_at >= state.last_data - 1.0:
            due = min(due, max(state.summary_at, state.last_data) + settle)
        if state.lifecycle == "active":
            due = min(due, state.last_data + self.stall_threshold(state))
        return due

    def _check_lifecycle(self, state: _RunState, now: float) -> None:
        if state.lifecycle == "finished":
            return
        reason = self._finish_reason(state, now)
        if reason is not None:
            state.lifecycle = "finished"
            self._judge(state, now)
            self._announce(state, FINISHED, reason)
            self.write_final_report()
            return
        if state.lifecycle == "active":
            quiet = now - state.last_data
            threshold = self.stall_threshold(state)
            if quiet >= threshold:
                state.lifecycle = "stalled"
                self._announce(
                    state,
                    STALLED,
                    "no new data for %s (threshold %s)" % (_duration(quiet), _duration(threshold)),
                )

    def _announce(self, state: _RunState, kind: str, message: str) -> None:
        logger.info("run '%s' %s: %s", state.run.name, kind, message)
        if self.engine is not None:
            self.engine.lifecycle(
                state.run.name, kind, message, now=time.time(), step=state.run.total_steps or None
            )

    def _all_finished(self) -> bool:
        return bool(self.states) and all(s.lifecycle == "finished" for s in self.states.values())

    # -- report and shutdown --------------------------------------------------------------

    def write_final_report(self) -> Optional[str]:
        """Write the JSON report of every run to ``final_report`` atomically; never raises."""
        target = self.options.final_report
        if not target:
            return None
        try:
            from tblive.doors.posthoc import RunResult
            from tblive.render.report import render_json, write_atomically

            results = []
            for name, state in sorted(self.states.items()):
                verdict = self.engine.verdicts.get(name) if self.engine is not None else None
                roles = self.engine.roles.get(name) if self.engine is not None else None
                if verdict is None or roles is None or state.judged_points != state.run.points:
                    results.append(judge_run(state.run, self.config))  # new data since
                else:
                    results.append(RunResult(state.run, verdict, roles))
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
        if self._tail is not None:
            self._tail.stop(timeout=5.0)
        try:
            for name, state in list(self.states.items()):
                self._read(name)
                if state.run.points != state.judged_points:
                    self._judge(state, time.monotonic())
        except Exception:
            logger.exception("error while reading the last data at shutdown")
        self.write_final_report()
        if self.engine is not None:
            if not self.engine.close(self.options.shutdown_timeout):
                logger.warning("some alerts could not be delivered before shutdown")


def watch(options: WatchOptions) -> int:
    """Run the daemon until SIGINT/SIGTERM (or ``options.stop_event``); returns the exit code.

    Signal handlers are installed only when called from the main thread (and restored after).
    """
    watcher = Watcher(options)
    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def handle(signum: int, frame: Any) -> None:
            # Only a plain attribute write: a handler runs between two bytecodes of the main
            # thread, which may hold an Event's lock right then (Event.set would deadlock,
            # and so could logging). The loop looks at the flag at least once a second.
            watcher.signalled = signum

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, handle)
            except (ValueError, OSError):  # pragma: no cover - exotic platforms
                pass
    try:
        return watcher.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
