"""The live engine the daemon and the in-process monitor share: judge -> alert -> sinks.

:class:`AlertEngine` owns the alert state machine (:class:`~tblive.alert.tracker.AlertTracker`) and the
sink dispatcher.  Its callers own the statistics (the daemon through :class:`~tblive.read.runs.Run`,
the monitor through its own per-tag :class:`~tblive.series.stats.MetricStats`) and the clock; they ask
for a judgement with :meth:`AlertEngine.judge`.  ``judge`` and ``lifecycle`` never raise: a bug
in a rule or a sink is logged and counted, because the monitor runs inside a training loop.
Thread-safety: one thread calls ``judge``/``lifecycle`` (the daemon's worker, the monitor's
judge thread); the dispatcher's own threads deliver.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from tblive.alert.sinks.dispatch import AlertDispatcher
from tblive.alert.tracker import Alert, AlertPolicy, AlertTracker
from tblive.judge.findings import Verdict
from tblive.judge.metrics import Config, Roles
from tblive.judge.verdict import evaluate_with_roles
from tblive.series.stats import MetricStats

logger = logging.getLogger(__name__)

#: how many recent values of the key metric an alert carries (Slack sparkline)
SPARKLINE_POINTS = 20


@dataclass
class SinkSettings:
    """Which sinks to build; every field optional (the console/log sink is always there)."""

    slack_webhook: Optional[str] = field(default=None, repr=False)  # secrets: never in a repr
    slack_token: Optional[str] = field(default=None, repr=False)
    slack_channel: Optional[str] = None
    slack_base_url: Optional[str] = None
    on_critical: Optional[str] = None
    events_log: Optional[str] = None

    @classmethod
    def from_environment(
        cls,
        environ: Optional[Mapping[str, str]] = None,
        slack_webhook: Optional[str] = None,
        slack_channel: Optional[str] = None,
        slack_base_url: Optional[str] = None,
        on_critical: Optional[str] = None,
        events_log: Optional[str] = None,
    ) -> SinkSettings:
        """Explicit values, completed from the environment: ``SLACK_WEBHOOK_URL``,
        ``SLACK_BOT_TOKEN`` (used with a channel) and ``SLACK_API_BASE_URL``.  The one place
        the CLI and the in-process monitor read Slack settings from the environment."""
        env: Mapping[str, str] = os.environ if environ is None else environ
        return cls(
            slack_webhook=slack_webhook or env.get("SLACK_WEBHOOK_URL") or None,
            slack_token=(env.get("SLACK_BOT_TOKEN") or None) if slack_channel else None,
            slack_channel=slack_channel,
            slack_base_url=slack_base_url or env.get("SLACK_API_BASE_URL") or None,
            on_critical=on_critical,
            events_log=events_log,
        )


def build_sinks(settings: SinkSettings) -> List[Any]:
    """The sinks ``settings`` asks for, console first.  Raises ValueError for an incomplete set-up
    (a Slack channel without a token), before anything starts."""
    from tblive.alert.sinks.console import ConsoleSink

    sinks: List[Any] = [ConsoleSink()]
    if settings.events_log:
        from tblive.alert.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(settings.events_log))
    if settings.slack_webhook or settings.slack_token or settings.slack_channel:
        from tblive.alert.sinks.slack import SlackSink

        extra = {"base_url": settings.slack_base_url} if settings.slack_base_url else {}
        if settings.slack_webhook:
            sinks.append(SlackSink(webhook_url=settings.slack_webhook, **extra))
        elif settings.slack_token and settings.slack_channel:
            sinks.append(
                SlackSink(token=settings.slack_token, channel=settings.slack_channel, **extra)
            )
        else:
            raise ValueError(
                "Slack needs --slack-webhook (or SLACK_WEBHOOK_URL), or SLACK_BOT_TOKEN "
                "with --slack-channel"
            )
    if settings.on_critical:
        from tblive.alert.sinks.command import CommandSink

        sinks.append(CommandSink(settings.on_critical))
    return sinks


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


class AlertEngine:
    """Verdicts in, alerts out: one per transition, delivered by the dispatcher's threads."""

    def __init__(
        self,
        config: Optional[Config] = None,
        sinks: Optional[List[Any]] = None,
        policy: Optional[AlertPolicy] = None,
        host: Optional[str] = None,
    ) -> None:
        self.config = config or Config.default()
        self.tracker = AlertTracker(policy, host)
        self.dispatcher = AlertDispatcher(
            sinks if sinks is not None else build_sinks(SinkSettings())
        )
        self.verdicts: Dict[str, Verdict] = {}
        self.roles: Dict[str, Roles] = {}  # of the run's last verdict, for reports
        self.errors = 0

    def judge(
        self, run: str, view: Mapping[str, MetricStats], now: Optional[float] = None
    ) -> Optional[Verdict]:
        """Evaluate ``run`` now, send the alerts its changes call for, return the verdict."""
        now = time.time() if now is None else now
        try:
            verdict, roles = evaluate_with_roles(run, view, self.config)
            alerts = self.tracker.observe(verdict, now, key_values=key_values(roles, view))
            self.dispatcher.submit_all(alerts)
        except Exception:  # never into the training loop / the daemon's worker
            self.errors += 1
            logger.exception("tblive could not judge run %s", run)
            return self.verdicts.get(run)
        self.verdicts[run] = verdict
        self.roles[run] = roles
        return verdict

    def lifecycle(
        self,
        run: str,
        kind: str,
        message: str = "",
        now: Optional[float] = None,
        step: Optional[int] = None,
    ) -> Optional[Alert]:
        """Announce ``stalled`` / ``resumed`` / ``finished`` once per transition."""
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
            self.dispatcher.submit(alert)
        return alert

    def forget(self, run: str) -> None:
        self.tracker.forget(run)
        self.verdicts.pop(run, None)
        self.roles.pop(run, None)

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is pending (bounded by ``timeout``) and stop the sink threads."""
        return self.dispatcher.close(timeout)
