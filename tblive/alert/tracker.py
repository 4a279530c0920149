"""Turn a stream of verdicts into a few alerts a human wants to receive.

Contract:

* :class:`AlertTracker` is a pure state machine: no I/O, no clock of its own (``now`` is
  passed in, seconds as from ``time.time()``), no threads. Feed it every verdict of every
  run with :meth:`AlertTracker.observe`; it returns the alerts to send (usually none).
* Findings of one run that share a ``check`` name form one *group* and produce at most one
  alert per evaluation (eight agents tripping "Gradient Norms" -> one alert listing all
  eight findings). The group's status is the worst of its findings.
* Transitions per (run, check) group:

  ==================================  ============  =====================================
  before -> now                       alert kind    notes
  ==================================  ============  =====================================
  OK / unseen -> WARNING/CRITICAL     ``problem``
  bad -> worse than last alerted      ``worse``     e.g. WARNING -> CRITICAL
  bad, unchanged or better            none          until the cooldown expires, then
                                                    ``reminder`` (once per cooldown)
  bad -> OK / absent from verdict     ``recovered`` announced once
  OK -> OK                            none
  ==================================  ============  =====================================

  A check missing from a later verdict of the same run counts as OK (the rule no longer
  fires).
* Run lifecycle (decided by the daemon, announced here so they share sinks and wording):
  :meth:`AlertTracker.lifecycle` with ``"stalled"`` (WARNING), ``"resumed"`` (OK, only after
  stalled or finished) and ``"finished"`` (once per run, or once more after a ``"resumed"``:
  a restarted writer that ends again; carrying the final verdict's status if given).
  Repeating the same lifecycle event returns ``None``.

:class:`Alert` carries everything a sink needs (run, host, step, the grouped findings, the
key metric's last values) and renders itself as plain text (``title`` and ``text``), which
every sink uses as its fallback.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tblive.judge.findings import STATUS_EMOJI, Finding, Status, Verdict

PROBLEM = "problem"
WORSE = "worse"
REMINDER = "reminder"
RECOVERED = "recovered"
STALLED = "stalled"
RESUMED = "resumed"
FINISHED = "finished"

#: Alert kinds produced by :meth:`AlertTracker.observe` (check transitions).
CHECK_KINDS = (PROBLEM, WORSE, REMINDER, RECOVERED)
#: Alert kinds produced by :meth:`AlertTracker.lifecycle` (run lifecycle).
LIFECYCLE_KINDS = (STALLED, RESUMED, FINISHED)
#: Every alert kind.
ALERT_KINDS = CHECK_KINDS + LIFECYCLE_KINDS

#: Pseudo check name used by lifecycle alerts.
LIFECYCLE_CHECK = "Run"

_KIND_EMOJI = {
    RECOVERED: "\U0001f7e2",  # green circle
    RESUMED: "\u25b6\ufe0f",  # play
    STALLED: "\u23f8\ufe0f",  # pause
    FINISHED: "\U0001f3c1",  # chequered flag
}

_SPARK_CHARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
_SPARK_NON_FINITE = "\u00d7"  # multiplication sign marks NaN / inf


def sparkline(values: Sequence[float], width: int = 20) -> str:
    """The last ``width`` values as a unicode sparkline (``▁▂▃▄▅▆▇█``).

    Non-finite values (NaN, inf) show as ``×``; a constant series shows as a flat middle
    line; an empty series gives ``""``.
    """
    tail = list(values)[-width:] if width > 0 else []
    finite = [float(v) for v in tail if _is_finite(v)]
    if not finite:
        return _SPARK_NON_FINITE * len(tail)
    low, high = min(finite), max(finite)
    span = high - low
    chars = []
    for value in tail:
        if not _is_finite(value):
            chars.append(_SPARK_NON_FINITE)
        elif span <= 0.0:
            chars.append(_SPARK_CHARS[3])
        else:
            index = int((float(value) - low) / span * (len(_SPARK_CHARS) - 1) + 0.5)
            chars.append(_SPARK_CHARS[min(max(index, 0), len(_SPARK_CHARS) - 1)])
    return "".join(chars)


def _is_finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _format_value(value: float) -> str:
    return "%.4g" % value if _is_finite(value) else str(float(value))


@dataclass
class Alert:
    """One message to send.

    ``kind`` is one of :data:`ALERT_KINDS`; ``check`` the grouped check's name (or
    :data:`LIFECYCLE_CHECK` for lifecycle alerts); ``findings`` the group's findings (for
    ``recovered``: the check's OK findings, possibly none); ``previous`` the status alerted
    before (for ``worse``/``recovered``); ``time`` seconds since the epoch; ``key_metric`` /
    ``sparkline_values`` the tag and last values of the metric to draw (optional);
    ``message`` an extra sentence (lifecycle alerts).
    """

    kind: str
    run: str
    status: Status
    check: str
    findings: List[Finding] = field(default_factory=list)
    step: Optional[int] = None
    host: str = ""
    time: float = 0.0
    previous: Optional[Status] = None
    key_metric: Optional[str] = None
    sparkline_values: Optional[List[float]] = None
    message: str = ""

    @property
    def emoji(self) -> str:
        """Status emoji: 🔴/🟡 for problems, 🟢 recovered, ⏸ stalled, ▶ resumed, 🏁 finished."""
        return _KIND_EMOJI.get(self.kind, STATUS_EMOJI[self.status])

    @property
    def title(self) -> str:
        """Plain one-liner, e.g. ``CRITICAL run 'ppo_1': Gradient Norms (8 findings)``."""
        if self.kind == FINISHED:
            return "Run '%s' finished (%s)" % (self.run, self.status.name)
        if self.kind in LIFECYCLE_KINDS:
            return "Run '%s' %s" % (self.run, self.kind)
        if self.kind == RECOVERED:
            return "RECOVERED run '%s': %s is back to OK" % (self.run, self.check)
        count = len(self.findings)
        what = self.check if count <= 1 else "%s (%d findings)" % (self.check, count)
        head = "%s run '%s': %s" % (self.status.name, self.run, what)
        if self.kind == WORSE and self.previous is not None:
            return "%s got worse (%s -> %s)" % (head, self.previous.name, self.status.name)
        if self.kind == REMINDER:
            return "%s is still %s" % (head, self.status.name)
        return head

    @property
    def sparkline(self) -> str:
        """The key metric's sparkline, or ``""`` when no values were attached."""
        return sparkline(self.sparkline_values or [])

    @property
    def metric_line(self) -> str:
        """``"reward ▁▃▅█ last 12.5"``, or ``""`` without values."""
        values = self.sparkline_values or []
        if not values:
            return ""
        return "%s %s last %s" % (
            self.key_metric or "metric",
            self.sparkline,
            _format_value(values[-1]),
        )

    @property
    def context_line(self) -> str:
        """``"host gpu3 · step 120000 · kind problem"`` (parts that are known)."""
        parts = []
        if self.host:
            parts.append("host %s" % self.host)
        if self.step is not None:
            parts.append("step %d" % self.step)
        parts.append("kind %s" % self.kind)
        return " \u00b7 ".join(parts)

    @property
    def text(self) -> str:
        """Plain multi-line rendering: title, extra message, one line per finding, context."""
        lines = [self.title]
        if self.message:
            lines.append(self.message)
        for finding in self.findings:
            if finding.status > Status.OK or self.kind == RECOVERED:
                lines.append("- [%s] %s" % (finding.status.name, finding.message))
        if self.metric_line:
            lines.append(self.metric_line)
        lines.append(self.context_line)
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready record (used by the JSON-lines sink)."""
        return {
            "time": self.time,
            "run": self.run,
            "kind": self.kind,
            "status": self.status.name,
            "previous": None if self.previous is None else self.previous.name,
            "check": self.check,
            "step": self.step,
            "host": self.host,
            "title": self.title,
            "message": self.title if not self.message else "%s: %s" % (self.title, self.message),
            "findings": [f.to_dict() for f in self.findings],
            "key_metric": self.key_metric,
            "values": list(self.sparkline_values) if self.sparkline_values else None,
        }


@dataclass(frozen=True)
class AlertPolicy:
    """When to repeat: a still-bad check is re-announced after ``cooldown_seconds``.

    ``sparkline_points`` bounds how many of the key metric's last values are attached.
    """

    cooldown_seconds: float = 3600.0
    sparkline_points: int = 20


@dataclass
class _GroupState:
    alerted_status: Status  # the status last announced for this bad episode
    last_alert_time: float


@dataclass
class _RunState:
    groups: Dict[str, _GroupState] = field(default_factory=dict)
    lifecycle: str = "active"  # active | stalled | finished
    finished_announced: bool = False


class AlertTracker:
    """Alert state machine over verdicts; see the module docstring for the transitions.

    Not thread-safe: call it from one thread (the daemon's evaluation loop, or the trainer's
    callback).
    """

    def __init__(self, policy: Optional[AlertPolicy] = None, host: Optional[str] = None) -> None:
        self.policy = policy if policy is not None else AlertPolicy()
        self.host = host if host is not None else socket.gethostname()
        self._runs: Dict[str, _RunState] = {}

    def observe(
        self,
        verdict: Verdict,
        now: float,
        step: Optional[int] = None,
        key_values: Optional[Dict[str, List[float]]] = None,
    ) -> List[Alert]:
        """Alerts caused by this verdict of ``verdict.run``, at time ``now``.

        ``step`` defaults to ``verdict.total_steps`` when that is positive. ``key_values``
        maps metric tags to their recent values; an alert draws the values of its worst
        finding's metric if present there, else of the first entry (the run's key metric).
        """
        if step is None and verdict.total_steps > 0:
            step = verdict.total_steps
        state = self._runs.setdefault(verdict.run, _RunState())
        groups: Dict[str, List[Finding]] = {}
        for finding in verdict.findings:
            groups.setdefault(finding.check, []).append(finding)

        alerts: List[Alert] = []
        for check, findings in groups.items():
            status = max(f.status for f in findings)
            previous = state.groups.get(check)
            if status == Status.OK:
                if previous is not None:
                    del state.groups[check]
                    alerts.append(
                        self._alert(
                            RECOVERED, verdict.run, Status.OK, check, findings, now, step,
                            key_values, previous=previous.alerted_status,
                        )
                    )  # fmt: skip
                continue
            bad = sorted((f for f in findings if f.status > Status.OK), key=lambda f: -f.status)
            if previous is None:
                kind: Optional[str] = PROBLEM
            elif status > previous.alerted_status:
                kind = WORSE
            elif now - previous.last_alert_time >= self.policy.cooldown_seconds:
                kind = REMINDER
            else:
                kind = None
            if kind is None:
                continue
            state.groups[check] = _GroupState(alerted_status=status, last_alert_time=now)
            alerts.append(
                self._alert(
                    kind, verdict.run, status, check, bad, now, step, key_values,
                    previous=None if previous is None else previous.alerted_status,
                )
            )  # fmt: skip

        for check in [c for c in state.groups if c not in groups]:
            previous_state = state.groups.pop(check)
            alerts.append(
                self._alert(
                    RECOVERED, verdict.run, Status.OK, check, [], now, step, key_values,
                    previous=previous_state.alerted_status,
                )
            )  # fmt: skip
        return alerts

    def lifecycle(
        self,
        run: str,
        kind: str,
        now: float,
        message: str = "",
        step: Optional[int] = None,
        verdict: Optional[Verdict] = None,
        key_values: Optional[Dict[str, List[float]]] = None,
    ) -> Optional[Alert]:
        """Announce a run lifecycle event, or ``None`` when it is not a transition.

        ``kind``: ``"stalled"`` (from active; status WARNING), ``"resumed"`` (from stalled or
        finished; status OK) or ``"finished"`` (once per run, again after ``"resumed"``;
        status and findings of ``verdict`` if given, else OK). ``message`` is shown under the
        title (e.g. "no new data for 30 min"). Raises ValueError for an unknown kind (a
        programming error).
        """
        if kind not in LIFECYCLE_KINDS:
            raise ValueError(
                "unknown lifecycle kind %r (expected one of %s)" % (kind, LIFECYCLE_KINDS)
            )
        state = self._runs.setdefault(run, _RunState())
        if kind == STALLED:
            if state.lifecycle != "active":
                return None
            state.lifecycle = "stalled"
            status = Status.WARNING
        elif kind == RESUMED:
            if state.lifecycle == "active":
                return None
            state.lifecycle = "active"
            state.finished_announced = False  # a resumed run may finish (again) later
            status = Status.OK
        else:
            if state.finished_announced:
                return None
            state.lifecycle = "finished"
            state.finished_announced = True
            status = verdict.status if verdict is not None else Status.OK
        findings: List[Finding] = []
        if verdict is not None:
            findings = [f for f in verdict.findings if f.status > Status.OK]
            if step is None and verdict.total_steps > 0:
                step = verdict.total_steps
        alert = self._alert(kind, run, status, LIFECYCLE_CHECK, findings, now, step, key_values)
        alert.message = message
        return alert

    def forget(self, run: str) -> None:
        """Drop all state of ``run`` (e.g. when its directory disappears)."""
        self._runs.pop(run, None)

    def active_problems(self, run: str) -> Dict[str, Status]:
        """Check name -> last announced status of the run's currently bad groups."""
        state = self._runs.get(run)
        if state is None:
            return {}
        return {check: group.alerted_status for check, group in state.groups.items()}

    def _alert(
        self,
        kind: str,
        run: str,
        status: Status,
        check: str,
        findings: List[Finding],
        now: float,
        step: Optional[int],
        key_values: Optional[Dict[str, List[float]]],
        previous: Optional[Status] = None,
    ) -> Alert:
        key_metric, values = self._pick_values(findings, key_values)
        return Alert(
            kind=kind,
            run=run,
            status=status,
            check=check,
            findings=list(findings),
            step=step,
            host=self.host,
            time=now,
            previous=previous,
            key_metric=key_metric,
            sparkline_values=values,
        )

    def _pick_values(
        self, findings: List[Finding], key_values: Optional[Dict[str, List[float]]]
    ) -> Tuple[Optional[str], Optional[List[float]]]:
        if not key_values:
            return None, None
        chosen: Optional[str] = None
        for finding in findings:
            if finding.metric is not None and finding.metric in key_values:
                chosen = finding.metric
                break
        if chosen is None:
            chosen = next(iter(key_values))
        points = max(self.policy.sparkline_points, 1)
        values = [float(v) for v in list(key_values[chosen])[-points:]]
        return chosen, (values or None)
