"""Policy Loss: vanishing gradients.

* Exactly zero on at least ``zero_share_critical`` of the updates, after grace: CRITICAL;
  on at least ``zero_share_warning``: WARNING.
* Recent |values| all below ``vanish_abs`` (at least 8 points): WARNING.
"""

from __future__ import annotations

from typing import List, Optional

from tblive.judge.findings import Finding, Status
from tblive.judge.metrics import Config, MetricRef, Roles
from tblive.judge.rules._common import Judgement, View, fmt, in_grace, judge_all, zero_share
from tblive.series.stats import MetricStats

KEY = "policy_loss"
NAME = "Policy Loss"


def check(view: View, roles: Roles, config: Config) -> List[Finding]:
    if not roles.policy_loss:
        return []
    warn = config.threshold(KEY, "zero_share_warning")
    crit = config.threshold(KEY, "zero_share_critical")
    vanish = config.threshold(KEY, "vanish_abs")
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
        if share >= crit and not in_grace(stats, config):
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
