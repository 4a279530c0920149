"""Success Rate: zero or low success means the training failed.

* Success that never left zero is CRITICAL only when nothing improves (reward, another success
  metric, a reward component) and the run's failure signs have persisted long enough (see
  ``_common.Evidence``: zero success alone needs 3x the grace period, with rising entropy or a
  dead reward component 2x, with both 1x); WARNING before that.
* Low success (recent mean below ``low``) that is not rising: WARNING.
* Success whose smoothed tail fell ``drop`` below its best level: WARNING.
Success logged in percent (max > 1) is scaled to [0, 1].
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from tblive.judge.findings import Finding, Status
from tblive.judge.metrics import Config, MetricRef, Roles
from tblive.judge.rules._common import (
    Judgement,
    View,
    failure_evidence,
    fmt,
    improving,
    in_grace,
    judge_all,
    smoothed_levels,
    success_scale,
    trend_details,
)
from tblive.series.stats import MetricStats

KEY = "success"
NAME = "Success Rate"


def check(view: View, roles: Roles, config: Config) -> List[Finding]:
    if not roles.success:
        return []
    evidence = failure_evidence(view, roles, config)
    progress = evidence.progress
    zero = config.threshold(KEY, "zero")
    low = config.threshold(KEY, "low")
    drop = config.threshold(KEY, "drop")
    reward_min = config.threshold("reward", "min_change")

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        scale = success_scale(stats)
        recent = stats.tail_value() / scale
        best_levels = smoothed_levels(stats)
        best = float(np.max(best_levels)) / scale if best_levels.size else recent
        details = dict(trend_details(stats))
        details.update(
            {
                "max": stats.max / scale,
                "recent_mean": recent,
                "best_level": best,
                "scale": scale,
                "zero_threshold": zero,
                "low_threshold": low,
                "grace_points": config.grace.min_points,
                "in_grace": in_grace(stats, config),
                "learning": progress.improving,
                "evidence": progress.evidence,
                "failure_signs": evidence.signs,
                "points_needed": evidence.points_needed(config),
            }
        )
        span = "%d points (steps %s..%s)" % (stats.finite_count, stats.first_step, stats.last_step)
        if stats.max / scale <= zero:
            if in_grace(stats, config):
                return Judgement(
                    Status.WARNING,
                    "%s is still 0 after %s; within the grace period (%d points), so not yet a "
                    "failure. Watch it." % (ref.tag, span, config.grace.min_points),
                    details,
                )
            if progress.improving:
                return Judgement(
                    Status.WARNING,
                    "%s stayed at 0 over %s, but the run is learning (%s). If it stays 0, check "
                    "the success criterion, episode length and curriculum."
                    % (ref.tag, span, progress.describe()),
                    details,
                )
            if not evidence.enough(stats, config):
                return Judgement(
                    Status.WARNING,
                    "%s stayed at 0 over %s and nothing improves yet (%s); early in a healthy "
                    "run that is normal. CRITICAL if it lasts %d points (%s)."
                    % (
                        ref.tag,
                        span,
                        progress.describe(),
                        evidence.points_needed(config),
                        evidence.describe(),
                    ),
                    details,
                )
            return Judgement(
                Status.CRITICAL,
                "%s stayed at 0 over %s and nothing improves (%s): training failed. Try: check "
                "the reward shaping and success criterion, lower the entropy coefficient or "
                "learning rate, or restart from a working config."
                % (ref.tag, span, progress.describe()),
                details,
            )
        if recent < low and not improving(stats, reward_min):
            return Judgement(
                Status.WARNING,
                "%s is low: recent mean %s (best %s) is below %s and not rising. Try: longer "
                "training, reward shaping, or a simpler curriculum stage."
                % (ref.tag, fmt(recent * scale), fmt(best * scale), fmt(low * scale)),
                details,
            )
        if best - recent >= drop:
            return Judgement(
                Status.WARNING,
                "%s fell from its best level %s to %s (drop >= %s). Try: a lower learning rate, "
                "or keep the best checkpoint."
                % (ref.tag, fmt(best * scale), fmt(recent * scale), fmt(drop * scale)),
                details,
            )
        return Judgement(
            Status.OK,
            "%s: recent mean %s (best %s)." % (ref.tag, fmt(recent * scale), fmt(best * scale)),
            details,
        )

    return judge_all(NAME, roles.success, view, judge)
