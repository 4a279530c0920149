"""The in-process door: a :class:`Monitor` that sees every scalar the moment the trainer logs it.

Contract
--------
* **Hot path** (:meth:`Monitor.log`, :meth:`Monitor.log_scalar`, and the ``add_scalar`` /
  ``add_scalars`` hooks :meth:`Monitor.attach` installs on a SummaryWriter,
  :mod:`tblive.doors.writers`): :class:`~tblive.doors.intake.Intake`'s -- a float conversion
  and a lock-free append, microseconds, never raises (bad values are counted in
  ``counters["bad_values"]`` and logged once per series).
* **Monitor thread** (daemon, named ``tblive-monitor``): every ``tick`` seconds it drains the queue
  into one :class:`~tblive.series.stats.MetricStats` per series, with the reader's restart rule (a step
  not after the series' last step first discards the series' points at steps >= that step, see
  :mod:`tblive.read.runs`); every ``interval`` seconds (or after ``every_points`` new points, at most
  once a second) it asks :class:`~tblive.alert.engine.AlertEngine` for a verdict -- the same checks,
  alert transitions and sinks as ``tblive watch``.  Sinks deliver on their own threads.
* **Status**: :attr:`Monitor.status`, :attr:`Monitor.findings`, :attr:`Monitor.problems`,
  :attr:`Monitor.verdict` read the latest verdict (plain attribute reads, any thread).
  :attr:`Monitor.should_stop` turns True (and stays True) once a verdict reaches ``stop_on``
  (opt-in); ``on_critical(verdict)`` is called by the thread that judges (the monitor thread;
  the caller's in :meth:`Monitor.check_now` and :meth:`Monitor.close`) each time the run enters
  CRITICAL (its exceptions are logged and counted; it may call ``close()``).
* **Close**: :meth:`Monitor.close` (or leaving ``with Monitor(...)``) drains, judges a last time,
  announces ``finished`` (the same lifecycle alert as the daemon), writes the final JSON report
  (the shape of ``tblive report --json`` plus a ``monitor`` section), restores attached writers
  and flushes the sinks (bounded by ``timeout``).  Idempotent; also run at interpreter exit if
  forgotten.
* **Series names** of an attached writer are the ones tblive's reader gives its event files;
  ``global_step=None`` gets the series' own counter 0, 1, 2, ...

Statistics are the reader's up to float32 rounding: event files store ``simple_value`` as
float32, the monitor keeps the float64 it was given.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from tblive.alert.engine import AlertEngine
from tblive.alert.settings import AlertSettings, build_sinks
from tblive.alert.state import StateStore
from tblive.alert.tracker import AlertPolicy
from tblive.atomic import write_atomically
from tblive.doors.exporter import MetricsServer, RunSnapshot, snapshot
from tblive.doors.intake import DEFAULT_QUEUE_LIMIT, Intake, to_float
from tblive.doors.writers import Hook, hook, writer_logdir
from tblive.judge.config import Config
from tblive.judge.config_file import load_config
from tblive.judge.context import FINISHED, LIVE, RunContext
from tblive.judge.findings import Finding, Status, Verdict
from tblive.read.runs import run_name as name_of_run
from tblive.run import RunRecord, new_stats
from tblive.series.feed import SeriesFeed
from tblive.series.stats import MetricStats

__all__ = ["AUTO", "DEFAULT_INTERVAL", "Monitor", "attach", "to_float"]

logger = logging.getLogger(__name__)

#: seconds between verdicts (the daemon's default is 60; a trainer point every ~2 min is typical)
DEFAULT_INTERVAL = 30.0
#: the monitor thread drains the queue at least this often (seconds)
DEFAULT_TICK = 1.0
#: ``report_path`` default: ``<writer logdir>/tblive_report.json`` when a writer is attached
AUTO = "auto"
REPORT_NAME = "tblive_report.json"

_now = time.time


def _coerce_status(value: Union[None, str, Status]) -> Optional[Status]:
    if value is None or isinstance(value, Status):
        return value
    return Status.parse(str(value))


class Monitor(Intake):
    """Live diagnostics of one training run from inside the training process.

    Parameters (all keyword-only except ``run_name``):

    * ``run_name``: the name alerts and the report use; default: from the first attached
      writer's log directory (``seed-1/logs`` style when the last part is generic), else
      ``"run"``.
    * ``config``: a :class:`~tblive.judge.config.Config` or the path of a TOML config file.
    * ``expected_steps``: the planned run length, if known (sharpens the grace period);
      without it, the length the trainer saved next to the first attached writer's log
      directory (HARL ``config.json`` ``num_env_steps`` ..., see :mod:`tblive.read.provenance`).
    * ``interval``: seconds between verdicts (default 30); ``every_points``: also judge after
      this many new points (at most once a second); ``tick``: seconds between queue drains.
    * ``stop_on``: ``"critical"`` / ``"warning"`` / a :class:`Status` -- :attr:`should_stop`
      becomes True when a verdict reaches it.  Default None (never).
    * ``on_critical``: ``callable(verdict)`` run on the monitor thread when the run enters
      CRITICAL.
    * Sinks: ``slack_webhook``, ``slack_channel`` (with ``SLACK_BOT_TOKEN``),
      ``slack_base_url``, ``events_log`` (JSON lines), ``command`` (shell command on each
      CRITICAL alert, like ``tblive watch --on-critical``); with ``use_env`` (default) an
      unset webhook / token / base URL is read from ``SLACK_WEBHOOK_URL`` /
      ``SLACK_BOT_TOKEN`` / ``SLACK_API_BASE_URL``.  ``alerts`` (an
      :class:`~tblive.alert.settings.AlertSettings`, the settings type ``tblive watch`` uses)
      replaces those keywords; its ``state_file`` keeps alert state and undelivered alerts
      across restarts (default: in memory, and in the checkpoint through
      :meth:`state_dict`).  ``sinks`` replaces all of that with
      your own sink objects.  The console sink (logger ``tblive.alert.tracker``) is always there
      unless ``sinks`` is given.
    * ``cooldown``: seconds before an unchanged problem is announced again (default 3600).
    * ``report_path``: where :meth:`close` writes the JSON report; :data:`AUTO` (default) is
      ``<logdir>/tblive_report.json`` of the first attached writer (no file without one);
      None writes nothing.
    * ``start``: start the monitor thread now (default); with False only :meth:`check_now`
      judges.
    * ``prometheus``: ``"HOST:PORT"`` to serve this run's metrics on ``/metrics`` (the same
      metrics as ``tblive watch --prometheus``, :mod:`tblive.doors.exporter`) until
      :meth:`close`; needs prometheus-client.

    Construction raises ValueError for a bad configuration (before the training loop starts);
    nothing after that raises into the caller.
    """

    def __init__(
        self,
        run_name: Optional[str] = None,
        *,
        config: Union[None, str, os.PathLike, Config] = None,
        expected_steps: Optional[int] = None,
        interval: float = DEFAULT_INTERVAL,
        every_points: Optional[int] = None,
        tick: float = DEFAULT_TICK,
        stop_on: Union[None, str, Status] = None,
        on_critical: Optional[Callable[[Verdict], Any]] = None,
        slack_webhook: Optional[str] = None,
        slack_channel: Optional[str] = None,
        slack_base_url: Optional[str] = None,
        events_log: Optional[str] = None,
        command: Optional[str] = None,
        sinks: Optional[Sequence[Any]] = None,
        use_env: bool = True,
        cooldown: float = 3600.0,
        report_path: Optional[str] = AUTO,
        host: Optional[str] = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        start: bool = True,
        prometheus: Optional[str] = None,
        alerts: Optional[AlertSettings] = None,
    ) -> None:
        if config is None:
            config = Config.default()
        elif not isinstance(config, Config):
            config = load_config(config)
        if expected_steps:
            config.grace.expected_steps = int(expected_steps)
        self.config: Config = config
        self.run_name: Optional[str] = run_name
        self.interval = max(float(interval), 0.0)
        self.every_points = int(every_points) if every_points else 0
        self.tick = max(min(float(tick), self.interval or float(tick)), 0.01)
        self.stop_on = _coerce_status(stop_on)
        self.on_critical = on_critical
        self.report_path = report_path
        # one settings type: ``alerts`` as given, else the shorthand keywords + environment
        settings = alerts
        if settings is None:
            settings = AlertSettings.from_env(
                None if use_env else {},
                slack_webhook=slack_webhook,
                slack_channel=slack_channel,
                slack_base_url=slack_base_url,
                on_critical=command,
                events_log=events_log,
            )
        if sinks is None:
            settings.validate()  # SettingsError (a ValueError), before the training loop
            sink_list = build_sinks(settings)
        else:
            sink_list = list(sinks)
        self.engine = AlertEngine(
            config,
            sink_list,
            AlertPolicy(cooldown_seconds=cooldown),
            host,
            settings=settings,
            state=StateStore(settings.state_file) if settings.state_file else None,
        )

        Intake.__init__(self, queue_limit)  # hot path state (training thread)
        # monitor thread state (guarded by _lock)
        self._lock = threading.RLock()
        self._feeds: Dict[str, SeriesFeed] = {}
        self._stats: Dict[str, MetricStats] = {}  # the feeds' sinks, as the verdict reads them
        #: the run as every door sees it (series = the feeds' sinks); live until close()
        self.record = RunRecord(
            self.name, "", series=self._stats, state=LIVE, state_reason="the trainer is running"
        )
        if expected_steps:
            self.record.set_planned(int(expected_steps), "Monitor(expected_steps=)")
        self._processed = 0
        self._overflows = 0
        self._pending = 0
        self._judgements = 0
        self._last_judge = time.monotonic()
        self._errors = 0
        self._hook_errors = 0
        # results (written by the judging thread, read anywhere)
        self._verdict: Optional[Verdict] = None
        self._stop = False
        self._was_critical = False
        self._attachments: List[Hook] = []
        self._logdir: Optional[str] = None
        self._final_report: Optional[Dict[str, Any]] = None
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._last_data: Optional[float] = None  # when points last arrived (for /metrics)
        self._snapshot = RunSnapshot(self.name)
        self.exporter: Optional[MetricsServer] = None
        if prometheus:
            self.exporter = MetricsServer(prometheus, lambda: [self._snapshot]).start()
        atexit.register(self._close_at_exit)
        if start:
            self.start()

    # ------------------------------------------------------------------ writers
    def attach(self, writer: Any) -> Any:
        """Wrap ``writer.add_scalar`` / ``add_scalars`` so every value also reaches the monitor.

        Works with ``tensorboardX.SummaryWriter`` and ``torch.utils.tensorboard.SummaryWriter``
        (and subclasses).  The original method runs first, with the caller's arguments, and its
        result or exception is passed through unchanged; the monitor's part never raises
        (:mod:`tblive.doors.writers`).  Returns ``writer``.  Attaching the same writer again
        does nothing; a writer attached to another monitor raises ValueError.
        """
        attached = hook(writer, self)
        if attached is None:
            return writer
        with self._lock:
            self._attachments.append(attached)
            if self._logdir is None:
                self._logdir = writer_logdir(writer)
                if self.run_name is None and self._logdir:
                    self.run_name = name_of_run(self._logdir)
                if self._logdir and not self.record.provenance.known:
                    # the planned length the trainer saved next to its logs (HARL writes its
                    # config.json before training starts); a few small reads, never raises
                    self.record.path = self._logdir
                    self.record.infer_planned()
        return writer

    def detach(self, writer: Any = None) -> None:
        """Restore ``writer``'s own methods (every attached writer when None)."""
        with self._lock:
            keep = []
            for attached in self._attachments:
                if writer is not None and attached.writer is not writer:
                    keep.append(attached)
                else:
                    attached.restore()
            self._attachments = keep

    # ------------------------------------------------------------------ monitor thread
    def start(self) -> None:
        """Start the monitor thread (done by the constructor unless ``start=False``)."""
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._loop, name="tblive-monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self.tick):
            try:
                self._work(force=False)
            except Exception:  # keep the thread alive whatever happens
                self._errors += 1
                logger.exception("tblive monitor: unexpected error (continuing)")

    def _work(self, force: bool) -> Optional[Verdict]:
        with self._lock:
            self._pending += self._drain()
            elapsed = time.monotonic() - self._last_judge
            due = self._pending > 0 and (
                elapsed >= self.interval
                or (self.every_points and self._pending >= self.every_points and elapsed >= 1.0)
            )
            if force or due:
                self._judge()
            return self._verdict

    def _drain(self) -> int:
        """Move queued points into the per-series statistics; returns how many."""
        queue = self._queue
        if queue.maxlen is not None and len(queue) >= queue.maxlen:
            self._overflows += 1
            logger.warning(
                "tblive monitor: %d points queued; the oldest were dropped (the monitor "
                "thread fell behind)",
                len(queue),
            )
        pop = queue.popleft
        feeds = self._feeds
        moved = 0
        while True:
            try:
                tag, step, value, wall = pop()
            except IndexError:
                break
            try:
                if type(tag) is not str:  # a trainer's int or bytes key must not break the verdict
                    tag = str(tag)
                feed = feeds.get(tag)
                if feed is None:
                    feed = feeds[tag] = SeriesFeed(new_stats(tag))
                    self._stats[tag] = feed.sink  # type: ignore[assignment]
                feed.add(step, value, wall)
                moved += 1
            except Exception:
                self._errors += 1
                logger.exception("tblive monitor: could not add a point of %s", tag)
        self._processed += moved
        if moved:
            self._last_data = _now()
        return moved

    def _judge(self) -> None:
        verdict = self.engine.judge(self.name, self._stats, _now(), self._context())
        self._judgements += 1
        self._pending = 0
        self._last_judge = time.monotonic()
        if verdict is None:
            return
        self._verdict = verdict
        self._publish()
        status = verdict.status
        if self.stop_on is not None and status >= self.stop_on and not self._stop:
            self._stop = True
            logger.warning(
                "tblive: run %s is %s; monitor.should_stop is now True (%s)",
                self.name,
                status.name,
                verdict.summary,
            )
        critical = status == Status.CRITICAL
        if critical and not self._was_critical and self.on_critical is not None:
            try:
                self.on_critical(verdict)
            except Exception:
                self._hook_errors += 1
                logger.exception("tblive: the on_critical hook raised (ignored)")
        self._was_critical = critical

    def _publish(self) -> None:
        """Refresh what ``/metrics`` shows (an immutable snapshot the server thread reads)."""
        if self.exporter is None:
            return
        try:
            steps = [s.last_step for s in self._stats.values() if s.last_step is not None]
            self._snapshot = snapshot(
                self.name,
                self._verdict,
                self.engine.roles.get(self.name),
                self._stats,
                last_step=max(steps) if steps else None,
                last_data=self._last_data,
                finished=self._closed,
            )
        except Exception:
            self._errors += 1
            logger.exception("tblive monitor: could not update the Prometheus metrics")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """What was alerted so far, JSON-ready: keep it in the training checkpoint so a
        resumed run does not announce again what it already said (framework callbacks do)."""
        with self._lock:
            return {"version": 1, "run": self.name, "alerts": self.engine.tracker.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (from a checkpoint).  A state that cannot be read is
        logged and ignored (a clean start), never raised into the trainer."""
        try:
            alerts = dict(state)["alerts"]
            saved, runs = state.get("run"), alerts.get("runs")
            if isinstance(runs, dict) and saved in runs and saved != self.name:
                # one monitor is one run: a resumed run whose logger picked a new folder name
                # (Lightning's version_N) is still the run the checkpoint alerted about
                alerts = dict(alerts, runs={self.name: runs[saved]})
            with self._lock:
                self.engine.tracker.load_state_dict(alerts)
        except Exception as error:
            logger.warning(
                "tblive monitor: cannot restore the alert state from the checkpoint (%s: %s); "
                "starting clean",
                type(error).__name__,
                error,
            )

    def _context(self) -> RunContext:
        record = self.record
        record.name, record.path = self.name, self._logdir or ""
        return record.context()

    def check_now(self) -> Optional[Verdict]:
        """Drain and judge synchronously, on the caller's thread; returns the verdict.

        Costs what a verdict costs (milliseconds); for tests and the end of training.
        """
        try:
            return self._work(force=True)
        except Exception:
            self._errors += 1
            logger.exception("tblive monitor: check_now failed")
            return self._verdict

    # ------------------------------------------------------------------ status
    @property
    def name(self) -> str:
        return self.run_name or "run"

    @property
    def verdict(self) -> Optional[Verdict]:
        """The latest verdict (None before the first one)."""
        return self._verdict

    @property
    def status(self) -> Status:
        """The latest verdict's status (OK before the first verdict)."""
        verdict = self._verdict
        return verdict.status if verdict is not None else Status.OK

    @property
    def findings(self) -> List[Finding]:
        """Every finding of the latest verdict, OK ones included."""
        verdict = self._verdict
        return list(verdict.findings) if verdict is not None else []

    @property
    def problems(self) -> List[Finding]:
        """The WARNING / CRITICAL findings of the latest verdict, worst first."""
        return sorted((f for f in self.findings if f.status > Status.OK), key=lambda f: -f.status)

    @property
    def should_stop(self) -> bool:
        """True once a verdict reached ``stop_on`` (stays True); always False without it."""
        return self._stop

    @property
    def counters(self) -> Dict[str, int]:
        """Health of the monitor itself: points, problems, alert deliveries."""
        dispatcher = self.engine.dispatcher
        return {
            "points": self._processed,
            "queued": len(self._queue),
            "series": len(self._stats),
            "rewinds": self._rewinds(),
            "bad_values": self._bad_values,
            "errors": self._errors + self._hot_errors + self.engine.errors,
            "hook_errors": self._hook_errors,
            "queue_overflows": self._overflows,
            "judgements": self._judgements,
            "alerts_delivered": dispatcher.delivered,
            "alert_failures": dispatcher.failures,
            "alerts_given_up": dispatcher.given_up,
            "alerts_dropped": dispatcher.dropped,
        }

    def _rewinds(self) -> int:
        with self._lock:  # the monitor thread adds series to _feeds
            return sum(feed.rewinds for feed in self._feeds.values())

    def stats(self) -> Dict[str, MetricStats]:
        """A snapshot (shallow copy) of the per-series statistics; do not mutate them."""
        with self._lock:
            return dict(self._stats)

    # ------------------------------------------------------------------ report and close
    def report(self) -> Dict[str, Any]:
        """The JSON report of the run as it is now (``tblive report --json`` shape + ``monitor``)."""
        from tblive.render.report import render_json

        try:
            with self._lock:
                self._pending += self._drain()
                self._context()  # name and path as they are now
                self.record.judge(self.config)
                report = render_json(self._logdir or "", [self.record])
            report["monitor"] = dict(self.counters, closed=self._closed)
        except Exception:  # the trainer calls this: never raise into it
            self._errors += 1
            logger.exception("tblive monitor: could not build the report")
            return {}
        return report

    def _report_file(self) -> Optional[str]:
        if self.report_path is None:
            return None
        if self.report_path == AUTO:
            return os.path.join(self._logdir, REPORT_NAME) if self._logdir else None
        return str(self.report_path)

    def close(
        self,
        timeout: float = 10.0,
        error: Optional[BaseException] = None,
        announce: bool = True,
    ) -> Dict[str, Any]:
        """Stop, judge a last time, announce ``finished``, write the report, flush the sinks.

        ``error``: the exception that ended training, if any (mentioned in the announcement).
        ``announce=False`` only stops (threads, writers, exporter): no last verdict, no
        announcement, no report (a callback on a non-zero distributed rank).
        Returns the final report (also on later calls).  Never raises.
        """
        if self._closed:
            return self._final_report or {}
        self._closed = True
        report: Dict[str, Any] = {}
        if not announce:
            self._quiet_close(timeout)
            return report
        try:
            self._stop_thread(timeout)
            self.record.state = FINISHED
            self.record.state_reason = (
                "training ended with %s" % type(error).__name__
                if error is not None
                else "the monitor was closed at the end of training"
            )
            verdict = self._work(force=True)
            if error is not None:
                message = "training ended with %s: %s" % (type(error).__name__, error)
            else:
                message = verdict.summary if verdict is not None else ""
            if self._processed or error is not None:
                # (a monitor that never saw a point -- the parent process of a ddp_spawn
                # job, a script stopped before logging -- has nothing to announce)
                self.engine.lifecycle(self.name, "finished", message=message, now=_now())
            report = self.report()
            path = self._report_file()
            if path:
                self._write_report(path, report)
        except Exception:
            self._errors += 1
            logger.exception("tblive monitor: close failed")
        finally:
            self._publish()
            self._stop_exporter()
            try:
                self.engine.close(timeout)
            except Exception:
                logger.exception("tblive monitor: could not flush the alert sinks")
        if report:
            report["monitor"] = dict(self.counters, closed=True)
        self._final_report = report
        return report

    def _stop_thread(self, timeout: float) -> None:
        """End the monitor thread (not when on_critical closes from it) and detach writers."""
        atexit.unregister(self._close_at_exit)
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.detach()

    def _quiet_close(self, timeout: float) -> None:
        try:
            self._stop_thread(timeout)
            self._stop_exporter()
            self.engine.close(timeout)
        except Exception:
            self._errors += 1
            logger.exception("tblive monitor: close failed")

    def _stop_exporter(self) -> None:
        exporter, self.exporter = self.exporter, None
        if exporter is not None:
            exporter.stop()

    @staticmethod
    def _write_report(path: str, report: Dict[str, Any]) -> None:
        try:
            write_atomically(path, json.dumps(report, indent=2) + "\n")
        except (OSError, TypeError, ValueError) as error:
            logger.warning("tblive: %s: cannot write the final report: %s", path, error)

    def _close_at_exit(self) -> None:
        self.close(timeout=5.0)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self.close(error=exc if isinstance(exc, Exception) else None)

    def __repr__(self) -> str:
        return "Monitor(run=%r, status=%s, points=%d)" % (
            self.name,
            self.status.name,
            self._processed,
        )


def attach(writer: Any, run_name: Optional[str] = None, **options: Any) -> Monitor:
    """``Monitor(run_name, **options)`` attached to ``writer``: the one-line integration.

    ``options`` are :class:`Monitor`'s keyword arguments.  Keep the returned monitor and call
    ``close()`` at the end of training (or use it as a context manager).
    """
    monitor = Monitor(run_name, **options)
    monitor.attach(writer)
    return monitor
