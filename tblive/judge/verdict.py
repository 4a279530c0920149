"""One verdict for one run: classify its tags once, run every enabled check, collect findings.

``evaluate`` is a pure function of the statistics and the config. Checks whose metrics the run
does not log are omitted (no finding at all); checks that ran report OK findings too, so a
report can show a green line per check. A check that raises is logged and skipped: the verdict
must never raise into a training loop.
"""

from __future__ import annotations

import logging
from typing import List, Mapping, Optional, Tuple

from tblive.judge.findings import Finding, Verdict
from tblive.judge.metrics import Config, Roles, classify
from tblive.judge.rules import CHECKS
from tblive.series.stats import MetricStats

__all__ = ["evaluate", "evaluate_with_roles"]

log = logging.getLogger(__name__)


def evaluate(run: str, view: Mapping[str, MetricStats], config: Optional[Config] = None) -> Verdict:
    """All findings for ``run`` (tag -> statistics) under ``config`` (defaults when None)."""
    return evaluate_with_roles(run, view, config)[0]


def evaluate_with_roles(
    run: str, view: Mapping[str, MetricStats], config: Optional[Config] = None
) -> Tuple[Verdict, Roles]:
    config = config or Config.default()
    roles = classify(view.keys(), config)
    findings: List[Finding] = []
    for module in CHECKS:
        if module.NAME in config.disabled:
            continue
        try:
            findings.extend(module.check(view, roles, config))
        except Exception:  # a bug in one check must not hide the others
            log.exception("check %s failed on run %s", module.NAME, run)
    total_steps = max((s.last_step for s in view.values() if s.last_step is not None), default=0)
    points = sum(s.count for s in view.values())
    return Verdict(
        run=run, findings=findings, total_steps=int(total_steps), points=int(points)
    ), roles
