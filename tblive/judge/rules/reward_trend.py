"""Reward Trend: stagnant or decreasing main reward means no learning.

The main reward is the highest-priority reward tag (per agent when logged per agent).
* Significant rise of at least ``min_change`` (relative): OK, unless it then fell ``peak_drop``
  of its range from its best level (WARNING).
* Fall of at least ``min_change`` (a significant trend and more than 2 recent standard
  deviations: rolling means are autocorrelated): WARNING while success/components improve or
  until the run's failure signs have persisted long enough (``_common.Evidence``), then
  CRITICAL.
* A reward that clearly rose and then lost ``peak_drop`` of that gain: WARNING; lost
  ``collapse`` of it (back near where it started) and stayed there (median of the last tenth
  of the run, 5 to ``grace.min_points`` points) without recovering, past grace, with nothing else improving and no curriculum
  step (a harder lesson lowers the reward): CRITICAL (keep the best checkpoint).
* Neither (stagnant): OK in grace, WARNING after (a sparse reward with at least 8 points
  follows the grace of the run's densest metric).
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
    pct,
    reward_falls,
    smoothed_levels,
    trend_details,
)
from tblive.series.stats import MetricStats

KEY = "reward"
NAME = "Reward Trend"


def check(view: View, roles: Roles, config: Config) -> List[Finding]:
    if not roles.main_reward:
        return []
    min_change = config.threshold(KEY, "min_change")
    peak_drop = config.threshold(KEY, "peak_drop")
    collapse = config.threshold(KEY, "collapse")
    evidence = failure_evidence(view, roles, config)
    progress = evidence.progress
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
        smooth = smoothed_levels(stats)
        best = float(np.max(smooth)) if smooth.size else float("nan")
        gain = best - head if head is not None else float("nan")
        spread = stats.recent.std if np.isfinite(stats.recent.std) else 0.0
        rose = (
            smooth.size >= 4 and gain > 2.0 * spread and gain >= min_change * max(abs(head), 1e-12)
        )
        if rose and tail is not None and (best - tail) >= peak_drop * gain:
            lost = (best - tail) / gain
            details.update(
                {
                    "best_level": best,
                    "gain_lost": lost,
                    "peak_drop": peak_drop,
                    "collapse": collapse,
                }
            )
            others = [e for e in progress.evidence if not e.startswith(ref.tag + " ")]
            story = "%s rose %s -> %s, then fell back to %s (lost %s of the gain, threshold %s)" % (
                ref.tag,
                fmt(head),
                fmt(best),
                fmt(tail),
                pct(lost).lstrip("+"),
                pct(collapse if lost >= collapse else peak_drop).lstrip("+"),
            )
            # collapsed for good: the last tenth of the run (5 points to the grace length) sits
            # at the collapsed level, and it is not recovering (a dip that bounces back is a dip)
            window = np.asarray(stats.recent_values(), dtype=np.float64)
            span = max(5, min(config.grace.min_points, stats.finite_count // 10))
            window = window[np.isfinite(window)][-span:]
            floor = best - collapse * gain
            stays_down = bool(window.size) and float(np.median(window)) <= floor
            recent = stats.trend("recent")
            recovering = bool(recent.significant and recent.change > 0)
            lessons = [
                r.tag
                for r in roles.curriculum
                if r.tag in view and view[r.tag].finite_count and view[r.tag].max > view[r.tag].min
            ]
            details.update(
                {"stays_down": stays_down, "recovering": recovering, "curriculum": lessons}
            )
            if lessons:
                story += (
                    " while the curriculum moved on (%s: a harder lesson lowers the reward)"
                    % (", ".join(lessons[:2]))
                )
            collapsed = lost >= collapse and stays_down and not recovering and not lessons
            if collapsed and not grace and not others:
                return Judgement(
                    Status.CRITICAL,
                    "%s and nothing else improves: the run collapsed. Try: restart from the best "
                    "checkpoint with a lower learning rate or clip range." % story,
                    details,
                )
            return Judgement(
                Status.WARNING,
                "%s. Try: a lower learning rate or clip range; keep the best checkpoint." % story,
                details,
            )
        if improving(stats, min_change):
            return Judgement(
                Status.OK,
                "%s improves: %s -> %s (%s)." % (ref.tag, fmt(head), fmt(tail), pct(change)),
                details,
            )
        if reward_falls(stats, min_change):
            if progress.improving or not evidence.enough(stats, config):
                why = (
                    "but %s" % progress.describe()
                    if progress.improving
                    else "CRITICAL if it lasts %d points (%s)"
                    % (evidence.points_needed(config), evidence.describe())
                )
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
