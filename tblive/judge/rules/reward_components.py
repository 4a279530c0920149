"""Reward Components: which reward term is dead (near zero) or decreasing.

Components are ``rewards/*``, ``Episode/rew_*`` and every ``*_reward`` / ``*_punishment`` /
``*_penalty`` tag other than the main reward. WARNING at most (a component alone does not prove
a failure; it names the culprit):
* dead: recent |values| <= max(``dead_abs``, ``dead_relative`` x largest component's recent
  |mean|): OK in grace ("not triggered yet"), WARNING after;
* significantly decreasing by at least ``min_change`` (relative) and by more than
  ``negligible`` x the largest component's recent |mean|: WARNING.
"""

from __future__ import annotations

from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import (
    Judgement,
    View,
    component_dead,
    component_scale,
    declining,
    fmt,
    in_grace,
    judge_all,
    pct,
    trend_details,
)
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

KEY = "reward_component"
NAME = "Reward Components"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    clock = run_clock(view, roles, config, context)
    if not roles.reward_component:
        return []
    min_change = config.threshold(KEY, "min_change")

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats)
        recent = stats.recent
        largest = max(abs(recent.min), abs(recent.max))
        details.update(
            {
                "recent_abs_max": largest,
                "dead_abs": config.threshold(KEY, "dead_abs"),
                "dead_relative": config.threshold(KEY, "dead_relative"),
                "min_change": min_change,
            }
        )
        if component_dead(ref, view, roles, config):
            if in_grace(stats, config, clock):
                return Judgement(
                    Status.OK,
                    "%s is ~0 so far (recent |values| <= %s); too early in the run to judge."
                    % (ref.tag, fmt(largest)),
                    details,
                )
            return Judgement(
                Status.WARNING,
                "%s is dead: recent |values| <= %s over %d points (threshold: %s absolute or "
                "%s of the largest component). The agent never collects it: check the term's "
                "condition and scale, or shape it so it can be reached."
                % (
                    ref.tag,
                    fmt(largest),
                    stats.finite_count,
                    fmt(config.threshold(KEY, "dead_abs")),
                    fmt(config.threshold(KEY, "dead_relative")),
                ),
                details,
            )
        negligible = config.threshold(KEY, "negligible") * component_scale(ref, view, roles)
        drop = (details["head"] or 0.0) - (details["tail"] or 0.0)
        details["negligible_below"] = negligible
        if declining(stats, min_change) and drop > negligible:
            return Judgement(
                Status.WARNING,
                "%s decreases %s -> %s (%s, threshold %s). If it is a penalty, the agent pays "
                "more of it; check whether that trade-off is wanted."
                % (
                    ref.tag,
                    fmt(details["head"]),
                    fmt(details["tail"]),
                    pct(details["relative_change"] or 0.0),
                    pct(-min_change),
                ),
                details,
            )
        return Judgement(
            Status.OK,
            "%s: %s -> %s." % (ref.tag, fmt(details["head"]), fmt(details["tail"])),
            details,
        )

    return judge_all(NAME, roles.reward_component, view, judge)
