"""PPO Health: importance ratio, approx_kl and clip fraction far from their normal ranges.

Shares below are count-weighted shares of the history whose bucket mean lies outside a band.
* ratio: outside [``ratio_low_critical``, ``ratio_high_critical``] on >= ``ratio_share_critical``
  after grace: CRITICAL; outside [``ratio_low``, ``ratio_high``] on >= ``ratio_share_warning``,
  or any level outside the critical band: WARNING;
* approx_kl: recent mean >= ``kl_critical`` after grace: CRITICAL; above ``kl_high`` on
  >= ``kl_share_warning``: WARNING;
* clip fraction above ``clip_fraction_high`` on >= ``clip_share_warning``: WARNING.
"""

from __future__ import annotations

import math
from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import Judgement, View, early_level, fmt, in_grace, judge_all
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

KEY = "ppo"
NAME = "PPO Health"

_ADVICE = (
    "Try: a lower learning rate, fewer epochs or larger minibatches per update, a smaller clip "
    "range or a target_kl for early stopping; check that old log-probs match the behaviour policy."
)


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    clock = run_clock(view, roles, config, context)
    t = config.thresholds[KEY]
    findings: List[Finding] = []

    def share(stats: MetricStats, low: float, high: float) -> float:
        value = stats.fraction_outside(low, high)
        return value if math.isfinite(value) else 0.0

    def judge_ratio(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        warn_share = share(stats, t["ratio_low"], t["ratio_high"])
        crit_share = share(stats, t["ratio_low_critical"], t["ratio_high_critical"])
        details = {
            "min": stats.min,
            "max": stats.max,
            "recent_mean": stats.recent.mean,
            "share_outside_normal": warn_share,
            "share_outside_critical": crit_share,
            "band": [t["ratio_low"], t["ratio_high"]],
            "critical_band": [t["ratio_low_critical"], t["ratio_high_critical"]],
        }
        text = "%s ranges %s..%s (should stay ~1); %.0f%% of the run outside [%s, %s]" % (
            ref.tag,
            fmt(stats.min),
            fmt(stats.max),
            100 * warn_share,
            fmt(t["ratio_low"]),
            fmt(t["ratio_high"]),
        )
        early = early_level(stats)
        details["early_level"] = early
        if not t["ratio_low_critical"] <= early <= t["ratio_high_critical"]:
            # PPO's mean probability ratio is ~1 on the first update by construction; one that
            # starts far off is another quantity (a product over action dimensions or agents)
            return Judgement(
                Status.WARNING,
                "%s: it starts at %s, already outside [%s, %s], so this trainer's ratio is not "
                "PPO's mean probability ratio (a product over action dimensions or agents?); not "
                "judged against the PPO band. Check what it logs."
                % (text, fmt(early), fmt(t["ratio_low_critical"]), fmt(t["ratio_high_critical"])),
                details,
            )
        if crit_share >= t["ratio_share_critical"] and not in_grace(stats, config, clock):
            return Judgement(
                Status.CRITICAL,
                "%s, %.0f%% outside [%s, %s] (threshold %.0f%%): updates are far off-policy. %s"
                % (
                    text,
                    100 * crit_share,
                    fmt(t["ratio_low_critical"]),
                    fmt(t["ratio_high_critical"]),
                    100 * t["ratio_share_critical"],
                    _ADVICE,
                ),
                details,
            )
        if warn_share >= t["ratio_share_warning"] or crit_share > 0:
            return Judgement(
                Status.WARNING,
                "%s (threshold %.0f%%). %s" % (text, 100 * t["ratio_share_warning"], _ADVICE),
                details,
            )
        return Judgement(
            Status.OK,
            "%s: stays near 1 (%s..%s)." % (ref.tag, fmt(stats.min), fmt(stats.max)),
            details,
        )

    def judge_kl(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        high_share = share(stats, -math.inf, t["kl_high"])
        recent = stats.recent.mean
        details = {
            "max": stats.max,
            "recent_mean": recent,
            "share_above_high": high_share,
            "kl_high": t["kl_high"],
            "kl_critical": t["kl_critical"],
        }
        if recent >= t["kl_critical"] and not in_grace(stats, config, clock):
            return Judgement(
                Status.CRITICAL,
                "%s recent mean %s >= %s: the policy jumps on every update. %s"
                % (ref.tag, fmt(recent), fmt(t["kl_critical"]), _ADVICE),
                details,
            )
        if high_share >= t["kl_share_warning"]:
            return Judgement(
                Status.WARNING,
                "%s is above %s on %.0f%% of the run (threshold %.0f%%, max %s). %s"
                % (
                    ref.tag,
                    fmt(t["kl_high"]),
                    100 * high_share,
                    100 * t["kl_share_warning"],
                    fmt(stats.max),
                    _ADVICE,
                ),
                details,
            )
        return Judgement(
            Status.OK,
            "%s: recent mean %s, max %s." % (ref.tag, fmt(recent), fmt(stats.max)),
            details,
        )

    def judge_clip(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        high_share = share(stats, -math.inf, t["clip_fraction_high"])
        details = {
            "max": stats.max,
            "recent_mean": stats.recent.mean,
            "share_above_high": high_share,
            "clip_fraction_high": t["clip_fraction_high"],
        }
        if high_share >= t["clip_share_warning"]:
            return Judgement(
                Status.WARNING,
                "%s is above %s on %.0f%% of the run (threshold %.0f%%): most samples are "
                "clipped. %s"
                % (
                    ref.tag,
                    fmt(t["clip_fraction_high"]),
                    100 * high_share,
                    100 * t["clip_share_warning"],
                    _ADVICE,
                ),
                details,
            )
        return Judgement(
            Status.OK, "%s: recent mean %s." % (ref.tag, fmt(stats.recent.mean)), details
        )

    findings.extend(judge_all(NAME, roles.ratio, view, judge_ratio))
    findings.extend(judge_all(NAME, roles.approx_kl, view, judge_kl))
    findings.extend(judge_all(NAME, roles.clip_fraction, view, judge_clip))
    return findings
