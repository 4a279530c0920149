"""The vocabulary every stage after the statistics speaks: statuses, findings, verdicts.

A :class:`Finding` is what one check concluded about one run (or one metric of it);
a :class:`Verdict` is all findings of a run at one moment plus the overall status.
Rules create findings, the verdict collects them, alerts and reports consume them.
Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


class Status(enum.IntEnum):
    """Severity of a finding; ordered so that ``max()`` gives the worst."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name

    def __str__(self) -> str:
        """``print(Status.CRITICAL)`` shows ``CRITICAL`` (IntEnum would show ``2``)."""
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)

    @classmethod
    def parse(cls, text: str) -> Status:
        """``"warning"`` / ``"WARNING"`` -> ``Status.WARNING``; raises ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                "unknown status %r (expected ok, warning or critical)" % text
            ) from None


STATUS_EMOJI = {
    Status.OK: "\U0001f7e2",
    Status.WARNING: "\U0001f7e1",
    Status.CRITICAL: "\U0001f534",
}


@dataclass(frozen=True)
class Finding:
    """One check's conclusion.

    ``check`` is the check's display name (e.g. ``"Entropy"``); ``metric`` the tag it is
    about, if any; ``message`` one or two sentences for a tired human naming the metric,
    the values, the threshold and what to try; ``details`` the numbers that decided it
    (JSON-serialisable).
    """

    check: str
    status: Status
    message: str
    details: Dict[str, Any] = field(default_factory=dict)
    metric: Optional[str] = None

    @property
    def key(self) -> str:
        """Identity of the finding across evaluations (for alert transitions)."""
        return self.check if self.metric is None else "%s|%s" % (self.check, self.metric)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.check,
            "status": self.status.name,
            "message": self.message,
            "metric": self.metric,
            "details": self.details,
        }


@dataclass
class Verdict:
    """All findings for one run at one moment."""

    run: str
    findings: List[Finding]
    total_steps: int = 0
    points: int = 0
    #: The run is still too young for its slow checks to go CRITICAL (the rules' run clock);
    #: the alerting layer announces nothing for such a run. None when not computed.
    in_grace: Optional[bool] = None

    @property
    def status(self) -> Status:
        return max((f.status for f in self.findings), default=Status.OK)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.findings if f.status == status)

    @property
    def summary(self) -> str:
        """One sentence, as the original analyzer phrased it."""
        if self.points == 0 and not self.findings:
            return "NO DATA: no scalar points yet (empty or header-only event files)."
        critical = self.count(Status.CRITICAL)
        failed = sum(1 for f in self.findings if "error" in f.details)
        tail = (
            " %d check%s failed to run (see %s finding)."
            % (failed, "" if failed == 1 else "s", "its" if failed == 1 else "their")
            if failed
            else ""
        )
        return self._headline(critical) + tail

    def _headline(self, critical: int) -> str:
        warning = self.count(Status.WARNING)
        if critical:
            return "CRITICAL: %d critical issue%s found. Training likely failed." % (
                critical,
                "" if critical == 1 else "s",
            )
        if self.not_judged and warning == 1:
            return (
                "NOT JUDGED: no reward, success rate or train/validation loss was recognized; "
                "only numerical checks ran."
            )
        if warning:
            return "WARNING: %d warning%s found. Training may have issues." % (
                warning,
                "" if warning == 1 else "s",
            )
        return "OK: No significant issues detected."

    @property
    def not_judged(self) -> bool:
        """The run's learning was not judged (no primary signal recognized); see the
        ``Judged`` check."""
        return any(f.details.get("not_judged") for f in self.findings)
