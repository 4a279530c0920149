"""Q-Value Divergence: TD3/SAC critics whose Q estimates (or the actor loss, = -Q) explode.

With growth = |tail| / max(|early level|, 1) (early level: first ~2% of points, at least 3):
* |tail| >= ``abs_critical``: CRITICAL, even in grace (a blow-up is not a slow trend);
* growth >= ``growth_critical`` (at least 5 points) while nothing improves: CRITICAL, even in
  grace; while the run learns, Q may track growing returns, so it is judged like the next case;
* growth >= ``growth_warning`` with a significant rise of |value|: CRITICAL after grace when
  nothing improves (reward, success, components), WARNING otherwise.
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
    early_level,
    fmt,
    in_grace,
    judge_all,
    trend_details,
)
from tblive.judge.rules._evidence import learning_progress
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

KEY = "q_value"
NAME = "Q-Value Divergence"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    clock = run_clock(view, roles, config, context)
    refs = list(roles.q_value) + [r for r in roles.actor_loss if r not in roles.q_value]
    if not refs:
        return []
    warn = config.threshold(KEY, "growth_warning")
    crit = config.threshold(KEY, "growth_critical")
    absolute = config.threshold(KEY, "abs_critical")
    advice = (
        "Try: a lower critic learning rate, target-network soft updates (smaller tau), "
        "reward scaling, gradient clipping, or check the done/terminal masks and discount."
    )

    progress = learning_progress(view, roles, config, clock)

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats)
        head, tail = early_level(stats), stats.tail_value()
        growth = abs(tail) / max(abs(head), 1.0)
        trend = stats.trend("all")
        grows_in_size = trend.significant and trend.change * (1 if tail >= 0 else -1) > 0
        details.update(
            {
                "growth": growth,
                "growth_warning": warn,
                "growth_critical": crit,
                "abs_critical": absolute,
                "max_abs": max(abs(stats.min), abs(stats.max)),
                "early_level": head,
                "learning": progress.holds,
            }
        )
        what = "actor loss" if ref in roles.actor_loss else "Q estimate"
        text = "%s (%s) goes %s -> %s (|x| grows x%s" % (
            ref.tag,
            what,
            fmt(head),
            fmt(tail),
            fmt(growth),
        )
        blown = stats.finite_count >= 5 and growth >= crit and not progress.holds
        if abs(tail) >= absolute or blown:
            return Judgement(
                Status.CRITICAL,
                "%s, threshold x%s or |x| >= %s): the critic diverges. %s"
                % (text, fmt(crit), fmt(absolute), advice),
                details,
            )
        if growth >= warn and grows_in_size:
            if in_grace(stats, config, clock) or progress.holds:
                why = (
                    "in grace"
                    if not progress.holds
                    else "the run is learning (%s)" % (progress.describe())
                )
                return Judgement(
                    Status.WARNING,
                    "%s, threshold x%s); %s. %s" % (text, fmt(warn), why, advice),
                    details,
                )
            return Judgement(
                Status.CRITICAL,
                "%s, threshold x%s) while nothing improves (%s): the critic diverges. %s"
                % (text, fmt(warn), progress.describe(), advice),
                details,
            )
        return Judgement(
            Status.OK,
            "%s: %s -> %s (|x| x%s, below the x%s threshold)."
            % (ref.tag, fmt(head), fmt(tail), fmt(growth), fmt(warn)),
            details,
        )

    return judge_all(NAME, refs, view, judge)
