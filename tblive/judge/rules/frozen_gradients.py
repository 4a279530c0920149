"""Frozen Gradients: gradient norms exactly zero on most updates (frozen agents or networks).

* Exactly 0 on at least ``zero_share_critical`` of the updates, after grace: CRITICAL
  (that network is not trained at all);
* on at least ``zero_share_warning``: WARNING (e.g. agents updated in turns, or a frozen part).
"""

from __future__ import annotations

from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import Judgement, View, in_grace, judge_all, zero_share
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

KEY = "frozen_gradients"
NAME = "Frozen Gradients"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not roles.grad_norm:
        return []
    clock = run_clock(view, roles, config, context)
    warn = config.threshold(KEY, "zero_share_warning")
    crit = config.threshold(KEY, "zero_share_critical")
    advice = (
        "Check requires_grad / detach() on that network, that its parameters are in the "
        "optimizer, and whether agents are deliberately updated in turns."
    )

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.count == 0:
            return None
        share = zero_share(stats)
        details = {
            "zero_share": share,
            "zero_count": stats.zero_count,
            "count": stats.count,
            "zero_share_warning": warn,
            "zero_share_critical": crit,
        }
        text = "%s is exactly 0 on %d of %d updates (%.0f%%" % (
            ref.tag,
            stats.zero_count,
            stats.count,
            100 * share,
        )
        if share >= crit and not in_grace(stats, config, clock):
            return Judgement(
                Status.CRITICAL,
                "%s, threshold %.0f%%): this network is not being trained. %s"
                % (text, 100 * crit, advice),
                details,
            )
        if share >= warn:
            return Judgement(
                Status.WARNING,
                "%s, threshold %.0f%%): frozen on most updates. %s" % (text, 100 * warn, advice),
                details,
            )
        return Judgement(
            Status.OK, "%s: exactly 0 on %.0f%% of updates." % (ref.tag, 100 * share), details
        )

    return judge_all(NAME, roles.grad_norm, view, judge)
