"""Reward Trend: stagnant or decreasing main reward means no learning.

The main reward is the highest-priority reward tag (per agent when logged per agent).
* Significant rise of at least ``min_change`` (relative): OK, unless it then fell ``peak_drop``
  of its range from its best level (WARNING).
* Significant fall of at least ``min_change``: WARNING in grace or when success/components
  improve, CRITICAL otherwise.
* Neither (stagnant): OK in grace, WARNING after (a sparse reward with at least 8 points
  follows the grace of the run's densest metric).
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from tblive.findings import Finding, Status
from tblive.metrics import Config, MetricRef, Roles
from tblive.rules._common import (
    Judgement,
    View,
    declining,
    fmt,
    improving,
    in_grace,
    judge_all,
    learning_progress,
    pct,
    smoothed_levels,
    trend_details,
)
from tblive.stats import MetricStats

KEY = "reward"
NAME = "Reward Trend"


def check(view: View, roles: Roles, config: Config) -> List[Finding]:
    if not roles.main_reward:
        return []
    min_change = config.threshold(KEY, "min_change")
    peak_drop = config.threshold(KEY, "peak_drop")
    progress = learning_progress(view, roles, config)
    # sparse rewards (evaluations) judge "stagnant" by the run's densest metric's grace
    run_past_grace = any(
        not in_grace(stats, config) for stats in view.values() if stats.finite_count
    )

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats)
        details.update({"min_change": min_change, "grace_points": config.grace.min_points})
        head, tail = details["head"], details["tail"]
        change = details["relative_change"] or 0.0
        grace = in_grace(stats, config)
        details["in_grace"] = grace
        if stats.finite_count < 4:
            return Judgement(
                Status.OK,
                "%s has only %d points; too few for a trend." % (ref.tag, stats.finite_count),
                details,
            )
        if improving(stats, min_change):
            smooth = smoothed_levels(stats)
            best = float(np.max(smooth))
            low = float(np.min(smooth))
            details.update({"best_level": best, "peak_drop": peak_drop})
            if best > low and tail is not None and (best - tail) >= peak_drop * (best - low):
                return Judgement(
                    Status.WARNING,
                    "%s improved (%s -> %s) but fell from its best level %s (more than %s of its "
                    "range). Try: a lower learning rate or clip range; keep the best checkpoint."
                    % (ref.tag, fmt(head), fmt(tail), fmt(best), pct(peak_drop).lstrip("+")),
                    details,
                )
            return Judgement(
                Status.OK,
                "%s improves: %s -> %s (%s)." % (ref.tag, fmt(head), fmt(tail), pct(change)),
                details,
            )
        if declining(stats, min_change):
            if grace or progress.improving:
                why = "in grace" if grace else "but %s" % progress.describe()
                return Judgement(
                    Status.WARNING,
                    "%s decreases: %s -> %s (%s, threshold %s) -- %s. Watch it."
                    % (ref.tag, fmt(head), fmt(tail), pct(change), pct(-min_change), why),
                    details,
                )
            return Judgement(
                Status.CRITICAL,
                "%s decreases: %s -> %s (%s over %d points, threshold %s) and nothing else "
                "improves: no learning. Try: a lower learning rate, check the reward sign and "
                "scale, or restart from the last good checkpoint."
                % (
                    ref.tag,
                    fmt(head),
                    fmt(tail),
                    pct(change),
                    stats.finite_count,
                    pct(-min_change),
                ),
                details,
            )
        if grace and not (run_past_grace and stats.finite_count >= 8):
            return Judgement(
                Status.OK,
                "%s: no clear trend yet (%s -> %s) after %d points; within the grace period."
                % (ref.tag, fmt(head), fmt(tail), stats.finite_count),
                details,
            )
        return Judgement(
            Status.WARNING,
            "%s is stagnant: %s -> %s (%s, needs a significant %s) over %d points. Try: check "
            "the reward signal reaches the agent, raise the learning rate or exploration, or "
            "simplify the task."
            % (ref.tag, fmt(head), fmt(tail), pct(change), pct(min_change), stats.finite_count),
            details,
        )

    return judge_all(NAME, roles.main_reward, view, judge)
