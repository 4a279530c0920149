"""The live engine the daemon and the in-process monitor share: judge -> alert -> outbox -> sinks.

:class:`AlertEngine` owns the alert state machine (:class:`~tblive.alert.tracker.AlertTracker`),
the state store (:class:`~tblive.alert.state.StateStore`: what was announced and what is
pending, in a state file or in memory) and the dispatcher.  Its callers own the statistics (the
daemon through :class:`~tblive.read.runs.Run`, the monitor through its own series) and the
clock; they ask for a judgement with :meth:`AlertEngine.judge`.

* ``judge`` and ``lifecycle`` never raise: a bug in a rule or a sink is logged and counted,
  because the monitor runs inside a training loop.
* Nothing is announced for a run still in its grace period (:func:`run_in_grace`).
* Between :meth:`AlertEngine.begin_startup` and :meth:`AlertEngine.end_startup` alerts are
  collected and then sent as one start-up digest (or as they are, when there is one).
* Every change of the tracker is saved together with the outbox (one atomic write), so a
  restart neither repeats what was announced nor loses what was pending.
* A CRITICAL problem gets a PNG of its curves when a sink can post pictures (bot-token Slack):
  drawn here, on the thread that judged, by ``picture`` (default: a lazy import of
  :func:`tblive.render.plots.finding_png`, so ``alert`` does not import ``render`` at load).

Thread-safety: one thread calls ``judge``/``lifecycle`` (the daemon's loop, the monitor's judge
thread); the dispatcher's own threads deliver.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from tblive.alert.message import PROBLEM, TEST, WORSE, Alert, startup_digest
from tblive.alert.settings import AlertSettings, SettingsError, build_sinks
from tblive.alert.sinks.dispatch import AlertDispatcher
from tblive.alert.state import Outbox, StateStore
from tblive.alert.tracker import AlertPolicy, AlertTracker
from tblive.judge.config import Config
from tblive.judge.findings import Finding, Status, Verdict
from tblive.judge.roles import Roles
from tblive.judge.verdict import evaluate_with_roles
from tblive.series.stats import MetricStats

logger = logging.getLogger(__name__)

#: how many recent values of the key metric an alert carries (Slack sparkline)
SPARKLINE_POINTS = 20

#: Old name of :class:`~tblive.alert.settings.AlertSettings` (one settings type).
SinkSettings = AlertSettings

Picture = Callable[[Mapping[str, MetricStats], Finding, str], Optional[bytes]]

__all__ = [
    "AlertEngine",
    "AlertSettings",
    "SettingsError",
    "SinkSettings",
    "build_sinks",
    "key_values",
    "run_in_grace",
]


def key_values(roles: Roles, view: Mapping[str, MetricStats]) -> Dict[str, List[float]]:
    """Recent values per tag for alert sparklines, the run's key metric (main reward) first."""
    ordered: List[str] = []
    for refs in (roles.main_reward, roles.success, roles.reward):
        ordered.extend(ref.tag for ref in refs if ref.tag not in ordered)
    ordered.extend(tag for tag in sorted(view) if tag not in ordered)
    values: Dict[str, List[float]] = {}
    for tag in ordered:
        stats = view.get(tag)
        if stats is not None and stats.count:
            values[tag] = [float(v) for v in stats.recent_values()[-SPARKLINE_POINTS:]]
    return values


def run_in_grace(verdict: Verdict) -> bool:
    """True while the run is too young to be announced: the verdict's own ``in_grace`` flag
    (:func:`tblive.judge.verdict.run_in_grace`); a verdict that could not tell counts as out of
    grace (never hide alerts)."""
    return bool(verdict.in_grace)


def _default_picture(
    view: Mapping[str, MetricStats], finding: Finding, run: str, config: Config
) -> Optional[bytes]:
    from tblive.render.plots import finding_png  # lazy: render sits above alert

    return finding_png(view, finding, run, getattr(config, "grace", None))


class AlertEngine:
    """Verdicts in, alerts out (one digest per run and change), delivered durably.

    ``settings`` builds the sinks when ``sinks`` is None and gives the delivery knobs;
    ``state`` is where state persists (default: memory only); ``dispatch`` extra keyword
    arguments for :class:`~tblive.alert.sinks.dispatch.AlertDispatcher` (tests: ``backoff``,
    ``clock``); ``picture`` draws the PNG of a finding (see the module docstring).
    """

    def __init__(
        self,
        config: Optional[Config] = None,
        sinks: Optional[List[Any]] = None,
        policy: Optional[AlertPolicy] = None,
        host: Optional[str] = None,
        settings: Optional[AlertSettings] = None,
        state: Optional[StateStore] = None,
        picture: Optional[Picture] = None,
        dispatch: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.config = config or Config.default()
        self.settings = settings if settings is not None else AlertSettings()
        self.tracker = AlertTracker(policy, host)
        self.store = state if state is not None else StateStore(None)
        sink_list = sinks if sinks is not None else build_sinks(self.settings)
        self.outbox = Outbox(on_change=self.store.changed)
        self.store.outbox = self.outbox
        options: Dict[str, Any] = {"max_age": self.settings.max_age}
        options.update(dispatch or {})
        self.dispatcher = AlertDispatcher(sink_list, self.outbox, start=False, **options)
        self._restore(self.store.load())
        self.store.set_tracker_state(self.tracker.state_dict())
        self.dispatcher.start()
        self._picture = picture
        self._wants_picture = any(getattr(s, "wants_picture", False) for s in sink_list)
        self._batch: Optional[List[Alert]] = None
        self.verdicts: Dict[str, Verdict] = {}
        self.roles: Dict[str, Roles] = {}  # of the run's last verdict, for reports
        self.errors = 0

    def _restore(self, saved: Dict[str, Any]) -> None:
        tracker_state = saved.get("tracker")
        if tracker_state:
            try:
                self.tracker.load_state_dict(tracker_state)
            except ValueError as error:
                logger.warning(
                    "alert state in %s is unusable (%s): starting clean", self.store.path, error
                )
        outbox = saved.get("outbox") or []
        if outbox:
            restored = self.outbox.load(outbox, self.dispatcher.durable_sinks)
            if restored:
                logger.info("%d undelivered alert(s) from the last run: delivering", restored)

    # -- judging --------------------------------------------------------------------------

    def judge(
        self,
        run: str,
        view: Mapping[str, MetricStats],
        now: Optional[float] = None,
        context: Any = None,
    ) -> Optional[Verdict]:
        """Evaluate ``run`` now, send the digest its changes call for, return the verdict.

        ``context`` (a :class:`~tblive.judge.context.RunContext`) is passed to the rules.
        """
        now = time.time() if now is None else now
        try:
            if context is None:
                verdict, roles = evaluate_with_roles(run, view, self.config)
            else:
                verdict, roles = evaluate_with_roles(run, view, self.config, context)
            grace = run_in_grace(verdict)
            alerts = self.tracker.observe(
                verdict, now, key_values=key_values(roles, view), in_grace=grace
            )
            for alert in alerts:
                self._attach_picture(alert, view)
            self._emit(alerts)
        except Exception:  # never into the training loop / the daemon's worker
            self.errors += 1
            logger.exception("tblive could not judge run %s", run)
            return self.verdicts.get(run)
        self.verdicts[run] = verdict
        self.roles[run] = roles
        return verdict

    def _attach_picture(self, alert: Alert, view: Mapping[str, MetricStats]) -> None:
        if not self._wants_picture or alert.kind not in (PROBLEM, WORSE):
            return
        if alert.status < Status.CRITICAL:
            return
        finding = next((f for f in alert.findings if f.status >= Status.CRITICAL), None)
        if finding is None:
            return
        try:
            if self._picture is not None:
                alert.picture = self._picture(view, finding, alert.run)
            else:
                alert.picture = _default_picture(view, finding, alert.run, self.config)
        except Exception:  # a picture is a bonus: never lose the alert over it
            logger.debug("no picture for the alert of run %s", alert.run, exc_info=True)

    def lifecycle(
        self,
        run: str,
        kind: str,
        message: str = "",
        now: Optional[float] = None,
        step: Optional[int] = None,
    ) -> Optional[Alert]:
        """Announce ``stalled`` / ``resumed`` / ``finished`` / ``crashed`` once per transition."""
        now = time.time() if now is None else now
        try:
            alert = self.tracker.lifecycle(
                run, kind, now, message=message, step=step, verdict=self.verdicts.get(run)
            )
        except Exception:
            self.errors += 1
            logger.exception("tblive could not announce %s for run %s", kind, run)
            return None
        if alert is not None:
            self._emit([alert])
        else:
            self.store.set_tracker_state(self.tracker.state_dict())
        return alert

    def _emit(self, alerts: List[Alert]) -> None:
        if not alerts:
            return
        self.store.set_tracker_state(self.tracker.state_dict())
        if self._batch is not None:
            self._batch.extend(alerts)
            return
        self.dispatcher.submit_all(alerts)

    # -- start-up digest ------------------------------------------------------------------

    def begin_startup(self) -> None:
        """Collect alerts instead of sending them, until :meth:`end_startup`."""
        if self._batch is None:
            self._batch = []

    def end_startup(self, where: str = "") -> Optional[Alert]:
        """Send what was collected: nothing, the one alert, or one start-up digest (returned)."""
        batch, self._batch = self._batch or [], None
        if not batch:
            self.store.set_tracker_state(self.tracker.state_dict())
            self.store.save()
            return None
        if len(batch) == 1:
            self.dispatcher.submit(batch[0])
            return batch[0]
        digest = startup_digest(batch, time.time(), self.tracker.host, where)
        self.dispatcher.submit(digest)
        return digest

    # -- test, state, shutdown ------------------------------------------------------------

    def test_alert(self, timeout: float = 15.0) -> Dict[str, Optional[str]]:
        """Send one test message through every sink now (not through the outbox).

        Returns sink name -> None (delivered) or the error (one line).  The ``--on-critical``
        command is not run (it may act, e.g. cancel a job) and is not in the result.
        """
        alert = Alert(
            kind=TEST,
            run="",
            status=Status.OK,
            check="",
            host=self.tracker.host,
            time=time.time(),
            message="tblive can reach this channel (%s)." % ", ".join(self.settings.channels()),
        )
        results: Dict[str, Optional[str]] = {}
        for name, worker_sink in self.dispatcher.sinks.items():
            if type(worker_sink).__name__ == "CommandSink":
                logger.warning("test alert: the --on-critical command is not run by the test")
                continue
            try:
                worker_sink.send(alert)
            except Exception as exc:
                results[name] = " ".join(("%s: %s" % (type(exc).__name__, exc)).split())[:300]
            else:
                results[name] = None
        return results

    def state_dict(self) -> Dict[str, Any]:
        """The tracker's state (JSON-ready) for a framework checkpoint."""
        return self.tracker.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed trainer does not re-alert); ValueError if bad."""
        self.tracker.load_state_dict(state)
        self.store.set_tracker_state(self.tracker.state_dict())
        self.store.save()

    def forget(self, run: str) -> None:
        self.tracker.forget(run)
        self.verdicts.pop(run, None)
        self.roles.pop(run, None)
        self.store.set_tracker_state(self.tracker.state_dict())

    def delivery_summary(self) -> Dict[str, int]:
        """``delivered``, ``failed``, ``pending``, ``dropped`` so far, over the channels that
        keep undelivered alerts (Slack, events log, command; not the log)."""
        return self.dispatcher.summary(durable_only=True)

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is pending (bounded by ``timeout``), stop the sink threads, save state."""
        if self._batch is not None:
            self.end_startup()
        clean = self.dispatcher.close(timeout)
        self.store.set_tracker_state(self.tracker.state_dict())
        self.store.flush()
        return clean
