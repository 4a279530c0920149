"""Non-finite Values: any NaN or +-Inf in a metric is CRITICAL (WARNING for explained variance).

Names the metric, how many values, and the first step with one. A single non-finite value at
the very first step of a metric that is finite on all (at least 5) points since is an initial
value (SB3-style "best so far = -inf", a mean over no episode yet): WARNING.
"""

from __future__ import annotations

from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles, matches, split_agent
from tblive.judge.rules._common import Judgement, View, fmt, judge_all
from tblive.series.stats import MetricStats

KEY = "nonfinite"
NAME = "Non-finite Values"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not any(stats.count for stats in view.values()):
        return []  # nothing logged yet: nothing to say
    bad = []
    for tag in sorted(view):
        stats = view[tag]
        if stats.nonfinite_count:
            agent, base = split_agent(tag)
            bad.append(MetricRef(tag=tag, base=base, agent=agent))
    if not bad:
        return [
            Finding(
                NAME,
                Status.OK,
                "All %d metrics are finite (no NaN or Inf)." % len(view),
                {"metrics": len(view)},
            )
        ]
    ev_patterns = config.patterns["explained_variance"]

    def judge(ref: MetricRef, stats: MetricStats) -> Judgement:
        soft = matches(ev_patterns, ref.base)
        # one non-finite value at the very first step, finite ever since: an initial value
        # (a "best so far" of -inf, a mean over no episode yet), not a numerical failure
        sentinel = (
            stats.nonfinite_count == 1
            and stats.first_nonfinite_step == stats.first_step
            and stats.finite_count >= 5
        )
        status = Status.WARNING if soft or sentinel else Status.CRITICAL
        if sentinel:
            return Judgement(
                status,
                "%s starts with a non-finite value at step %s and is finite on all %d points "
                "since: an initial value (a 'best so far' of -inf, a mean over no episode yet), "
                "not a blow-up. Check the first value is meant."
                % (
                    ref.tag,
                    stats.first_nonfinite_step,
                    stats.finite_count,
                ),
                {
                    "nan_count": stats.nan_count,
                    "inf_count": stats.inf_count,
                    "count": stats.count,
                    "first_nonfinite_step": stats.first_nonfinite_step,
                    "initial_only": True,
                },
            )
        what = []
        if stats.nan_count:
            what.append("%d NaN" % stats.nan_count)
        if stats.inf_count:
            what.append("%d Inf" % stats.inf_count)
        advice = (
            "SB3 logs NaN here when the returns have zero variance; check the reward."
            if soft
            else "Lower the learning rate, clip gradients, and look for log(0), division by "
            "zero or an unbounded reward at that step; resume from a checkpoint before it."
        )
        message = "%s has %s of %d values, first at step %s (last finite value %s). %s" % (
            ref.tag,
            " and ".join(what),
            stats.count,
            stats.first_nonfinite_step,
            fmt(stats.recent.last if stats.finite_count else None),
            advice,
        )
        return Judgement(
            status,
            message,
            {
                "nan_count": stats.nan_count,
                "inf_count": stats.inf_count,
                "count": stats.count,
                "first_nonfinite_step": stats.first_nonfinite_step,
                "threshold": 0,
            },
        )

    return judge_all(NAME, bad, view, judge)
