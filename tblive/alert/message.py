"""What an alert says: :class:`Alert` (one message), :class:`CheckChange` (one digest line),
:func:`startup_digest` (many runs in one message) and :func:`sparkline`.

Pure data and plain-text rendering (``title``, ``text``), which every sink uses as its fallback;
``to_dict``/``from_dict`` give the JSON record of the events log and the outbox. No I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from tblive.judge.findings import STATUS_EMOJI, Finding, Status
from tblive.textfmt import format_number

PROBLEM = "problem"
WORSE = "worse"
REMINDER = "reminder"
RECOVERED = "recovered"
STALLED = "stalled"
RESUMED = "resumed"
FINISHED = "finished"
CRASHED = "crashed"
STARTUP = "startup"
TEST = "test"

#: Alert kinds produced by :meth:`AlertTracker.observe` (check transitions).
CHECK_KINDS = (PROBLEM, WORSE, REMINDER, RECOVERED)
#: Alert kinds produced by :meth:`AlertTracker.lifecycle` (run lifecycle).
LIFECYCLE_KINDS = (STALLED, RESUMED, FINISHED, CRASHED)
#: Every alert kind (``startup``: the start-up digest; ``test``: ``--test-alert``).
ALERT_KINDS = CHECK_KINDS + LIFECYCLE_KINDS + (STARTUP, TEST)

#: Pseudo check name used by lifecycle alerts.
LIFECYCLE_CHECK = "Run"

_KIND_ORDER = (PROBLEM, WORSE, REMINDER, RECOVERED)

_KIND_EMOJI = {
    RECOVERED: "\U0001f7e2",  # green circle
    RESUMED: "\u25b6\ufe0f",  # play
    STALLED: "\u23f8\ufe0f",  # pause
    FINISHED: "\U0001f3c1",  # chequered flag
    CRASHED: "\U0001f4a5",  # collision
    TEST: "\U0001f514",  # bell
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


@dataclass
class CheckChange:
    """One line of a digest: ``check`` went from ``previous`` to ``status`` (``kind``)."""

    check: str
    kind: str
    status: Status
    previous: Optional[Status] = None
    findings: List[Finding] = field(default_factory=list)

    @property
    def line(self) -> str:
        """``"Entropy: OK -> CRITICAL: entropy rose 80% ..."`` (the worst finding's message)."""
        before = "OK" if self.previous is None else self.previous.name
        if self.kind == REMINDER:
            head = "%s: still %s" % (self.check, self.status.name)
        else:
            head = "%s: %s -> %s" % (self.check, before, self.status.name)
        shown = [f for f in self.findings if f.status == self.status] or self.findings
        if shown:
            extra = len(self.findings) - 1
            more = " (+%d more)" % extra if extra > 0 else ""
            return "%s: %s%s" % (head, shown[0].message, more)
        return head

    def to_dict(self) -> Dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "status": self.status.name,
            "previous": None if self.previous is None else self.previous.name,
        }


@dataclass
class Alert:
    """One message to send.

    ``kind`` is one of :data:`ALERT_KINDS`; ``status`` the headline (the run's status);
    ``check`` the changed checks' names joined by ", " (or :data:`LIFECYCLE_CHECK`);
    ``changes`` one :class:`CheckChange` per changed check (digests); ``findings`` the
    findings of those checks; ``previous`` the status announced before (single-check
    ``worse``/``recovered``); ``time`` seconds since the epoch; ``key_metric`` /
    ``sparkline_values`` the metric the worst change is about and its last values;
    ``message`` an extra sentence (lifecycle alerts, start-up digest); ``runs`` the per-run
    alerts merged into a start-up digest.
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
    changes: List[CheckChange] = field(default_factory=list)
    runs: List[Alert] = field(default_factory=list)
    #: PNG of the curves behind the worst change (bot-token Slack only; not persisted)
    picture: Optional[bytes] = field(default=None, repr=False, compare=False)

    @property
    def emoji(self) -> str:
        """Status emoji: 🔴/🟡 for problems, 🟢 recovered, ⏸ stalled, ▶ resumed, 🏁 finished."""
        return _KIND_EMOJI.get(self.kind, STATUS_EMOJI[self.status])

    @property
    def checks(self) -> List[str]:
        """The checks this alert is about (changed checks; lifecycle: ``["Run"]``)."""
        if self.changes:
            return [c.check for c in self.changes]
        return [self.check] if self.check else []

    @property
    def title(self) -> str:
        """Plain one-liner, e.g. ``CRITICAL run 'ppo_1': Entropy, Gradient Norms``."""
        if self.kind == STARTUP:
            return self.message.split("\n", 1)[0] if self.message else "tblive started"
        if self.kind == TEST:
            return "tblive test alert"
        if self.kind == FINISHED:
            return "Run '%s' finished (%s)" % (self.run, self.status.name)
        if self.kind == CRASHED:
            return "Run '%s' stopped mid-write (crash?)" % self.run
        if self.kind in LIFECYCLE_KINDS:
            return "Run '%s' %s" % (self.run, self.kind)
        checks = self.check
        if self.kind == RECOVERED:
            if self.status == Status.OK:
                return "RECOVERED run '%s': %s back to OK" % (self.run, checks)
            return "%s run '%s': %s back to OK" % (self.status.name, self.run, checks)
        recovered = [c.check for c in self.changes if c.kind == RECOVERED]
        if recovered:  # the title names what went bad; the lines also say what recovered
            checks = ", ".join(c.check for c in self.changes if c.kind != RECOVERED)
            checks += " (%s back to OK)" % ", ".join(recovered)
        count = len([f for f in self.findings if f.status > Status.OK])
        if count > 1 and len(self.changes) == 1:
            what = "%s (%d findings)" % (checks, count)
        else:
            what = checks
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
            format_number(values[-1]),
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
    def lines(self) -> List[str]:
        """The body lines under the title (one per change, or per finding, or per run)."""
        lines: List[str] = []
        if self.kind == STARTUP:
            for child in self.runs:
                lines.append("- [%s] %s" % (child.status.name, child.title))
            return lines
        if len(self.changes) > 1 or (self.changes and self.changes[0].kind == REMINDER):
            for change in self.changes:
                lines.append("- [%s] %s" % (change.status.name, change.line))
            return lines
        for finding in self.findings:
            if finding.status > Status.OK or self.kind == RECOVERED:
                lines.append("- [%s] %s" % (finding.status.name, finding.message))
        return lines

    @property
    def text(self) -> str:
        """Plain multi-line rendering: title, extra message, one line per change, context."""
        lines = [self.title]
        if self.message and self.kind != STARTUP:
            lines.append(self.message)
        lines.extend(self.lines)
        if self.metric_line:
            lines.append(self.metric_line)
        lines.append(self.context_line)
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready record (events log, outbox)."""
        record: Dict[str, Any] = {
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
            "changes": [c.to_dict() for c in self.changes],
        }
        if self.runs:
            record["runs"] = [child.to_dict() for child in self.runs]
        return record

    @classmethod
    def from_dict(cls, record: Dict[str, Any]) -> Alert:
        """Inverse of :meth:`to_dict` (the outbox in the state file); raises on bad input."""
        changes = [
            CheckChange(
                check=str(c["check"]),
                kind=str(c["kind"]),
                status=Status[c["status"]],
                previous=Status[c["previous"]] if c.get("previous") else None,
            )
            for c in record.get("changes") or []
        ]
        findings = [
            Finding(
                check=str(f.get("name", "")),
                status=Status[f["status"]],
                message=str(f.get("message", "")),
                details=dict(f.get("details") or {}),
                metric=f.get("metric"),
            )
            for f in record.get("findings") or []
        ]
        for change in changes:
            change.findings = [f for f in findings if f.check == change.check]
        message = str(record.get("message") or "")
        title = str(record.get("title") or "")
        if message == title:
            message = ""
        elif title and message.startswith(title + ": "):
            message = message[len(title) + 2 :]
        values = record.get("values")
        return cls(
            kind=str(record["kind"]),
            run=str(record.get("run", "")),
            status=Status[record["status"]],
            check=str(record.get("check", "")),
            findings=findings,
            step=record.get("step"),
            host=str(record.get("host") or ""),
            time=float(record.get("time") or 0.0),
            previous=Status[record["previous"]] if record.get("previous") else None,
            key_metric=record.get("key_metric"),
            sparkline_values=[float(v) for v in values] if values else None,
            message=message,
            changes=changes,
            runs=[cls.from_dict(child) for child in record.get("runs") or []],
        )


def startup_digest(alerts: Sequence[Alert], now: float, host: str, where: str = "") -> Alert:
    """One message for the alerts of a start-up pass over many runs (worst first)."""
    ordered = sorted(alerts, key=lambda a: (-int(a.status), a.run))
    status = max((a.status for a in ordered), default=Status.OK)
    counts = []
    for level in (Status.CRITICAL, Status.WARNING):
        n = sum(1 for a in ordered if a.status == level)
        if n:
            counts.append("%d %s" % (n, level.name))
    runs = len({a.run for a in ordered})
    head = "tblive watch started%s: %d run%s to report (%s)" % (
        " on %s" % where if where else "",
        runs,
        "" if runs == 1 else "s",
        ", ".join(counts) or "no problem",
    )
    return Alert(
        kind=STARTUP,
        run="",
        status=status,
        check="",
        host=host,
        time=now,
        message=head,
        runs=list(ordered),
    )
