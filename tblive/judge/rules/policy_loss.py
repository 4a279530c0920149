"""Policy Loss: blow-ups (on the non-zero updates) and vanishing gradients.

* |loss| on its non-zero updates grows ``grad_norm.blowup`` (1000x) beyond what the returns'
  growth explains, or reaches ``BLOWUP_ABS``: CRITICAL at any time; 100x: WARNING.
* Exactly zero on at least ``zero_share_critical`` of the updates, after grace: CRITICAL;
  on at least ``zero_share_warning``: WARNING.
* Recent |values| all below ``vanish_abs`` (at least 8 points): WARNING.
"""

from __future__ import annotations

import math
from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import (
    Judgement,
    View,
    finite,
    fmt,
    in_grace,
    judge_all,
    nonzero_growth,
    return_scale_growth,
    zero_share,
)
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

#: |policy loss| at or above this is a blow-up whatever its history (a PPO surrogate is
#: bounded by the advantages times the clip range).
BLOWUP_ABS = 1e6
#: The smallest early |policy loss| growth is measured from.
BLOWUP_FLOOR = 0.01

KEY = "policy_loss"
NAME = "Policy Loss"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not roles.policy_loss:
        return []
    clock = run_clock(view, roles, config, context)
    warn = config.threshold(KEY, "zero_share_warning")
    crit = config.threshold(KEY, "zero_share_critical")
    vanish = config.threshold(KEY, "vanish_abs")
    blowup = config.threshold("grad_norm", "blowup")
    advice = (
        "Check that advantages are not all zero (normalisation of a constant), the policy "
        "output is not saturated, and the loss is connected to the parameters."
    )

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.count == 0:
            return None
        share = zero_share(stats)
        recent = stats.recent
        largest = max(abs(recent.min), abs(recent.max)) if recent.count else 0.0
        details = {
            "zero_share": share,
            "zero_count": stats.zero_count,
            "count": stats.count,
            "recent_abs_max": largest,
            "zero_share_warning": warn,
            "zero_share_critical": crit,
            "vanish_abs": vanish,
        }
        # blow-up: |loss| on its non-zero updates grows by orders of magnitude beyond what
        # the returns' scale explains (a policy loss ~ advantage ~ return), or is absurd
        early, current, _ = nonzero_growth(stats)
        if early == early and current == current:
            factor = current / max(early, BLOWUP_FLOOR)
            explained = return_scale_growth(view, roles, ref.agent)
            unexplained = factor / explained if math.isfinite(explained) else 1.0
            details.update(
                {
                    "nonzero_early": finite(early),
                    "nonzero_current": finite(current),
                    "growth": finite(factor),
                    "explained_by_returns": finite(explained),
                    "blowup": blowup,
                    "abs_critical": BLOWUP_ABS,
                }
            )
            text = "%s: |loss| on its non-zero updates grows %s -> %s (x%s" % (
                ref.tag,
                fmt(early),
                fmt(current),
                fmt(factor),
            )
            if current >= BLOWUP_ABS or (stats.finite_count >= 5 and unexplained >= blowup):
                return Judgement(
                    Status.CRITICAL,
                    "%s, threshold x%s beyond the returns' growth x%s, or |loss| >= %s): the "
                    "policy update blows up. Try: a lower learning rate, gradient clipping, "
                    "advantage normalisation; check log-probs of saturated actions."
                    % (text, fmt(blowup), fmt(explained), fmt(BLOWUP_ABS)),
                    details,
                )
            if stats.finite_count >= 5 and unexplained >= blowup / 10.0:
                return Judgement(
                    Status.WARNING,
                    "%s, more than x%s beyond the returns' growth x%s). Watch it: a lower "
                    "learning rate or gradient clipping."
                    % (text, fmt(blowup / 10), fmt(explained)),
                    details,
                )
        if share >= crit and not in_grace(stats, config, clock):
            return Judgement(
                Status.CRITICAL,
                "%s is exactly 0 on %d of %d updates (%.0f%%, threshold %.0f%%): no policy "
                "gradient. %s"
                % (ref.tag, stats.zero_count, stats.count, 100 * share, 100 * crit, advice),
                details,
            )
        if share >= warn:
            return Judgement(
                Status.WARNING,
                "%s is exactly 0 on %d of %d updates (%.0f%%, threshold %.0f%%). %s"
                % (ref.tag, stats.zero_count, stats.count, 100 * share, 100 * warn, advice),
                details,
            )
        if recent.count >= 8 and largest < vanish:
            return Judgement(
                Status.WARNING,
                "%s has vanished: recent |values| <= %s (threshold %s). %s"
                % (ref.tag, fmt(largest), fmt(vanish), advice),
                details,
            )
        return Judgement(
            Status.OK, "%s: recent mean %s, not vanishing." % (ref.tag, fmt(recent.mean)), details
        )

    return judge_all(NAME, roles.policy_loss, view, judge)
