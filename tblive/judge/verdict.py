"""One verdict for one run: classify its tags once, run every enabled check, collect findings.

``evaluate`` is a pure function of the statistics and the config. Checks whose metrics the run
does not log are omitted (no finding at all); checks that ran report OK findings too, so a
report can show a green line per check. A check that raises is logged and becomes a visible
WARNING finding "check X failed: <exception>" with ``details["error"]`` (see
:func:`failed_check`): the verdict never raises into a training loop, and never hides a failure.
"""

from __future__ import annotations

import logging
from typing import List, Mapping, Optional, Tuple

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status, Verdict
from tblive.judge.roles import Roles, classify
from tblive.judge.rules import CHECKS
from tblive.judge.rules._common import in_grace
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

__all__ = [
    "CHECK_FAILED",
    "evaluate",
    "evaluate_with_roles",
    "failed_check",
    "failed_checks",
    "run_in_grace",
]

log = logging.getLogger(__name__)

#: ``details`` key set on the finding of a check that raised (value: the exception, one line)
CHECK_FAILED = "error"


def failed_check(name: str, exc: BaseException) -> Finding:
    """The finding standing in for check ``name`` that raised ``exc``.

    Its status is WARNING: the check did not judge the run, so the run must not look healthier
    than an unjudged run (OK would hide it) nor be called failed on a tblive bug (CRITICAL
    would cost a good run). Findings of the other checks stand, CRITICAL included.
    """
    error = " ".join(("%s: %s" % (type(exc).__name__, exc)).split())[:300]
    return Finding(
        check=name,
        status=Status.WARNING,
        message="check %s failed: %s. This check did not judge the run (a bug in tblive: "
        "please report it); the other checks' findings stand." % (name, error),
        details={CHECK_FAILED: error},
    )


def failed_checks(verdict: Verdict) -> List[Finding]:
    """The findings of ``verdict`` that stand for checks that raised."""
    return [f for f in verdict.findings if CHECK_FAILED in f.details]


def evaluate(
    run: str,
    view: Mapping[str, MetricStats],
    config: Optional[Config] = None,
    context: Optional[RunContext] = None,
) -> Verdict:
    """All findings for ``run`` (tag -> statistics) under ``config`` (defaults when None).

    ``context`` carries what the door knows about the run beyond its series (planned length,
    live/finished state, sibling runs); None judges the run as live with an unknown length.
    """
    return evaluate_with_roles(run, view, config, context)[0]


def evaluate_with_roles(
    run: str,
    view: Mapping[str, MetricStats],
    config: Optional[Config] = None,
    context: Optional[RunContext] = None,
) -> Tuple[Verdict, Roles]:
    """Like :func:`evaluate`, also returning the roles the tags were classified into."""
    config = config or Config.default()
    roles = classify(view.keys(), config)
    findings: List[Finding] = []
    for module in CHECKS:
        if module.NAME in config.disabled:
            continue
        try:
            findings.extend(module.check(view, roles, config, context))
        except Exception as exc:  # a bug in one check must not hide the others
            # one line where users look; the traceback for whoever debugs tblive
            log.warning("check %s failed on run %s: %s", module.NAME, run, exc)
            log.debug("check %s failed", module.NAME, exc_info=True)
            findings.append(failed_check(module.NAME, exc))
    total_steps = max((s.last_step for s in view.values() if s.last_step is not None), default=0)
    points = sum(s.count for s in view.values())
    verdict = Verdict(
        run=run,
        findings=findings,
        total_steps=int(total_steps),
        points=int(points),
        in_grace=run_in_grace(view, roles, config, context),
    )
    return verdict, roles


def run_in_grace(
    view: Mapping[str, MetricStats],
    roles: Roles,
    config: Config,
    context: Optional[RunContext] = None,
) -> Optional[bool]:
    """True while the run is too young for its slow checks to go CRITICAL, by the same run
    clock the checks use (see ``Grace``); a finished run has left its grace. None when it
    cannot be told (the alerting layer then treats the run as out of grace: never hide
    alerts)."""
    try:
        clock = run_clock(view, roles, config, context)
        if clock.finished:
            return False
        live = next((s for s in view.values() if s.finite_count and s.last_step is not None), None)
        return True if live is None else bool(in_grace(live, config, clock))
    except Exception:  # a bug here must not cost the verdict
        log.debug("could not tell whether the run is in grace", exc_info=True)
        return None
