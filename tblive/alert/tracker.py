"""Turn a stream of verdicts into a few alerts a human wants to receive.

Contract:

* :class:`AlertTracker` is a pure state machine: no I/O, no clock of its own (``now`` is
  passed in, seconds as from ``time.time()``), no threads. Feed it every verdict of every
  run with :meth:`AlertTracker.observe`; it returns the alerts to send: **at most one per
  run and evaluation**, a *digest* (headline = the run's status, then one line per check
  whose state changed).
* Findings of one run that share a ``check`` name form one *group* (eight agents tripping
  "Gradient Norms" -> one line listing all eight). The group's status is the worst of its
  findings. Per group:

  ==================================  ============  =====================================
  before -> now                       change kind   notes
  ==================================  ============  =====================================
  OK / unseen -> WARNING/CRITICAL     ``problem``
  bad -> worse than last alerted      ``worse``     e.g. WARNING -> CRITICAL
  bad, unchanged or better            none          until the cooldown expires
  bad -> OK / absent from verdict     ``recovered`` once it held for ``recovery_confirmations``
                                                    evaluations of new data (no flapping)
  ==================================  ============  =====================================

  The digest's ``kind`` is the most urgent of its changes (problem > worse > reminder >
  recovered). When the oldest announcement of a still-bad group is ``cooldown`` old, every
  still-bad group of the run is repeated in one ``reminder`` digest (one per run, never for a
  finished run).
* Grace: ``observe(..., in_grace=True)`` (the run is still young; the engine decides) holds
  everything back: no alert and no state change until the run has left its grace, so the
  first digest carries what the run looks like then.
* Run lifecycle (decided by the daemon): :meth:`AlertTracker.lifecycle` with ``"stalled"``
  (WARNING), ``"resumed"`` (OK, only after stalled or finished) and ``"finished"`` /
  ``"crashed"`` (the run's end, once per run, or once more after ``"resumed"``; carrying the
  final verdict's status if given; ``crashed`` at least WARNING).
  Repeating the same lifecycle event returns ``None``.
* :func:`startup_digest` merges the alerts of a start-up pass (many runs) into one message.
* :meth:`AlertTracker.state_dict` / :meth:`AlertTracker.load_state_dict`: what was announced,
  per run and check, as a JSON-ready dict (state file, framework checkpoints); a restarted
  tracker does not repeat what did not change.

:class:`Alert` carries everything a sink needs (run, host, step, changes, findings, the key
metric's last values) and renders itself as plain text (``title`` and ``text``), which every
sink uses as its fallback.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from tblive.alert.message import (  # noqa: F401 (re-exported: the alert vocabulary)
    _KIND_ORDER,
    ALERT_KINDS,
    CHECK_KINDS,
    CRASHED,
    FINISHED,
    LIFECYCLE_CHECK,
    LIFECYCLE_KINDS,
    PROBLEM,
    RECOVERED,
    REMINDER,
    RESUMED,
    STALLED,
    STARTUP,
    TEST,
    WORSE,
    Alert,
    CheckChange,
    sparkline,
    startup_digest,
)
from tblive.judge.findings import Finding, Status, Verdict


@dataclass(frozen=True)
class AlertPolicy:
    """When to repeat: still-bad checks are re-announced after ``cooldown_seconds``.

    ``recovery_confirmations``: a bad check is announced recovered only after this many
    evaluations of new data in a row found it OK (a check that flickers OK for one evaluation
    and back is not a recovery plus a new problem).  ``sparkline_points`` bounds how many of
    the key metric's last values are attached.
    """

    cooldown_seconds: float = 3600.0
    sparkline_points: int = 20
    recovery_confirmations: int = 3


@dataclass
class _GroupState:
    alerted_status: Status  # the status last announced for this bad episode
    last_alert_time: float
    ok_streak: int = 0  # evaluations of new data in a row that found the check OK
    ok_seen: Optional[Tuple[int, int]] = None  # (points, steps) of the last one counted


@dataclass
class _RunState:
    groups: Dict[str, _GroupState] = field(default_factory=dict)
    lifecycle: str = "active"  # active | stalled | finished
    finished_announced: bool = False


STATE_VERSION = 1


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
        in_grace: bool = False,
    ) -> List[Alert]:
        """The digest caused by this verdict of ``verdict.run`` at ``now`` (``[]`` or one).

        ``step`` defaults to ``verdict.total_steps`` when that is positive. ``key_values``
        maps metric tags to their recent values; the digest draws the values of its worst
        change's metric if present there, else of the first entry (the run's key metric).
        ``in_grace``: the run is still in its grace period: nothing is announced or recorded.
        """
        if in_grace:
            return []
        if step is None and verdict.total_steps > 0:
            step = verdict.total_steps
        state = self._runs.setdefault(verdict.run, _RunState())
        groups: Dict[str, List[Finding]] = {}
        for finding in verdict.findings:
            groups.setdefault(finding.check, []).append(finding)

        changes: List[CheckChange] = []
        unchanged_bad: Dict[str, List[Finding]] = {}
        for check, findings in groups.items():
            status = max(f.status for f in findings)
            previous = state.groups.get(check)
            if status == Status.OK:
                if previous is not None and self._recovered(previous, verdict):
                    del state.groups[check]
                    changes.append(
                        CheckChange(check, RECOVERED, Status.OK, previous.alerted_status, findings)
                    )
                continue
            bad = sorted((f for f in findings if f.status > Status.OK), key=lambda f: -f.status)
            if previous is None:
                changes.append(CheckChange(check, PROBLEM, status, None, bad))
            elif status > previous.alerted_status:
                changes.append(CheckChange(check, WORSE, status, previous.alerted_status, bad))
            else:
                previous.ok_streak, previous.ok_seen = 0, None
                unchanged_bad[check] = bad
                continue
            state.groups[check] = _GroupState(alerted_status=status, last_alert_time=now)
        for check in [c for c in state.groups if c not in groups]:
            if not self._recovered(state.groups[check], verdict):
                continue
            previous_state = state.groups.pop(check)
            changes.append(
                CheckChange(check, RECOVERED, Status.OK, previous_state.alerted_status, [])
            )
        # one reminder per run: every still-bad check, once the oldest announcement is due
        if unchanged_bad and state.lifecycle != "finished":
            oldest = min(state.groups[c].last_alert_time for c in unchanged_bad)
            if now - oldest >= self.policy.cooldown_seconds:
                for check, bad in unchanged_bad.items():
                    group = state.groups[check]
                    changes.append(CheckChange(check, REMINDER, group.alerted_status, None, bad))
                    group.last_alert_time = now
        if not changes:
            return []
        return [self._digest(verdict, changes, now, step, key_values)]

    def _recovered(self, group: _GroupState, verdict: Verdict) -> bool:
        """Count one more OK evaluation of ``group`` (if on new data); True once confirmed."""
        seen = (verdict.points, verdict.total_steps)
        if seen == (0, 0) or seen != group.ok_seen:
            group.ok_streak += 1
            group.ok_seen = seen
        return group.ok_streak >= max(self.policy.recovery_confirmations, 1)

    def _digest(
        self,
        verdict: Verdict,
        changes: List[CheckChange],
        now: float,
        step: Optional[int],
        key_values: Optional[Dict[str, List[float]]],
    ) -> Alert:
        kinds = {c.kind for c in changes}
        kind = next(k for k in _KIND_ORDER if k in kinds)
        changes.sort(key=lambda c: (_KIND_ORDER.index(c.kind), -int(c.status), c.check))
        findings: List[Finding] = []
        for change in changes:
            findings.extend(change.findings)
        status = verdict.status
        if kind in (PROBLEM, WORSE, REMINDER):
            status = max(status, max(c.status for c in changes))
        previous = changes[0].previous if len(changes) == 1 else None
        worst = next((c for c in changes if c.kind != RECOVERED), changes[0])
        key_metric, values = self._pick_values(worst.findings, key_values)
        return Alert(
            kind=kind,
            run=verdict.run,
            status=status,
            check=", ".join(c.check for c in changes),
            findings=findings,
            step=step,
            host=self.host,
            time=now,
            previous=previous,
            key_metric=key_metric,
            sparkline_values=values,
            changes=changes,
        )

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
        else:  # finished or crashed: the run's end, announced once (again after a resume)
            if state.finished_announced:
                return None
            state.lifecycle = "finished"
            state.finished_announced = True
            status = verdict.status if verdict is not None else Status.OK
            if kind == CRASHED:
                status = max(status, Status.WARNING)
        findings: List[Finding] = []
        if verdict is not None:
            findings = [f for f in verdict.findings if f.status > Status.OK]
            if step is None and verdict.total_steps > 0:
                step = verdict.total_steps
        key_metric, values = self._pick_values(findings, key_values)
        return Alert(
            kind=kind,
            run=run,
            status=status,
            check=LIFECYCLE_CHECK,
            findings=findings,
            step=step,
            host=self.host,
            time=now,
            key_metric=key_metric,
            sparkline_values=values,
            message=message,
        )

    def forget(self, run: str) -> None:
        """Drop all state of ``run`` (e.g. when its directory disappears)."""
        self._runs.pop(run, None)

    def active_problems(self, run: str) -> Dict[str, Status]:
        """Check name -> last announced status of the run's currently bad groups."""
        state = self._runs.get(run)
        if state is None:
            return {}
        return {check: group.alerted_status for check, group in state.groups.items()}

    def lifecycle_of(self, run: str) -> Optional[str]:
        """``"active"``, ``"stalled"``, ``"finished"``, or None for an unknown run."""
        state = self._runs.get(run)
        return None if state is None else state.lifecycle

    # -- persistence ----------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """What was announced, per run and check: JSON-ready (state file, checkpoints)."""
        runs: Dict[str, Any] = {}
        for name, state in self._runs.items():
            runs[name] = {
                "groups": {
                    check: {
                        "status": g.alerted_status.name,
                        "time": g.last_alert_time,
                        "ok_streak": g.ok_streak,
                        "ok_seen": list(g.ok_seen) if g.ok_seen is not None else None,
                    }
                    for check, g in state.groups.items()
                },
                "lifecycle": state.lifecycle,
                "finished_announced": state.finished_announced,
            }
        return {"version": STATE_VERSION, "runs": runs}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Replace the tracker's state with ``state`` (from :meth:`state_dict`).

        Raises ValueError for a state it cannot read (the caller warns and starts clean);
        the tracker is unchanged then.
        """
        try:
            if int(state.get("version", 0)) != STATE_VERSION:
                raise ValueError("unknown alert state version %r" % state.get("version"))
            runs: Dict[str, _RunState] = {}
            for name, record in dict(state["runs"]).items():
                lifecycle = str(record.get("lifecycle", "active"))
                if lifecycle not in ("active", "stalled", "finished"):
                    raise ValueError("unknown lifecycle %r" % lifecycle)
                groups = {
                    str(check): _GroupState(
                        Status[g["status"]],
                        float(g["time"]),
                        int(g.get("ok_streak", 0)),
                        _pair(g.get("ok_seen")),
                    )
                    for check, g in dict(record.get("groups") or {}).items()
                }
                runs[str(name)] = _RunState(
                    groups, lifecycle, bool(record.get("finished_announced", False))
                )
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                "malformed alert state: %s: %s" % (type(error).__name__, error)
            ) from None
        self._runs = runs

    def _pick_values(
        self, findings: List[Finding], key_values: Optional[Dict[str, List[float]]]
    ) -> Tuple[Optional[str], Optional[List[float]]]:
        if not key_values:
            return None, None
        chosen: Optional[str] = None
        for finding in findings:
            # a per-agent summary names its worst agent's tag in details["worst"]
            for candidate in (finding.metric, (finding.details or {}).get("worst")):
                if isinstance(candidate, str) and candidate in key_values:
                    chosen = candidate
                    break
            if chosen is not None:
                break
        if chosen is None:
            chosen = next(iter(key_values))
        points = max(self.policy.sparkline_points, 1)
        values = [float(v) for v in list(key_values[chosen])[-points:]]
        return chosen, (values or None)


def _pair(value: Any) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    points, steps = value
    return int(points), int(steps)
