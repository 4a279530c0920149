"""Gradient Norms: exploding or vanishing gradients (actor, critic or any ``*grad_norm*``).

With factor = current level / max(head, ``floor``) of the norm, the current level being the
larger of the smoothed tail and the median of the last 5 points (quick, yet spike-proof) (a norm that starts near zero because
there is no reward to fit yet, then settles at a normal level, has not exploded):
* factor >= ``blowup`` (at least 5 points): CRITICAL even in grace;
* factor >= ``explode_critical`` with a significant rise, after grace, and the current level
  still ``SETTLED_FACTOR`` (3x) above the norm's median level: CRITICAL (a norm that jumped in
  its first updates and has hovered since has settled at a new normal: WARNING);
* factor >= ``explode_warning`` with a significant rise: WARNING;
* a spike (largest history level >= ``spike`` x the median level): WARNING;
* tail <= ``vanish_factor`` x the median level, below its head, with a significant trend:
  WARNING (vanishing).
A norm exactly zero on at least ``NONZERO_JUDGED`` of its updates (agents updated in turns) is
judged on its non-zero updates (blow-ups hide behind zeros: early peaks vs the recent non-zero
values, same thresholds); that it is frozen is Frozen Gradients' to say.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import (
    Judgement,
    View,
    current_level,
    finite,
    fmt,
    in_grace,
    judge_all,
    levels,
    nonzero_growth,
    spike_factor,
    spike_judgement,
    trend_details,
    zero_share,
)
from tblive.judge.rules._progress import run_clock
from tblive.series.stats import MetricStats

#: Share of exactly-zero updates from which growth is judged on the non-zero updates only.
NONZERO_JUDGED = 0.2
#: Growth below ``blowup`` is CRITICAL only while the current level is at least this many times
#: the norm's median level (still climbing, not settled at a new normal; as for value loss).
SETTLED_FACTOR = 3.0

KEY = "grad_norm"
NAME = "Gradient Norms"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not roles.grad_norm:
        return []
    clock = run_clock(view, roles, config, context)
    warn = config.threshold(KEY, "explode_warning")
    crit = config.threshold(KEY, "explode_critical")
    blowup = config.threshold(KEY, "blowup")
    floor = config.threshold(KEY, "floor")
    spike = config.threshold(KEY, "spike")
    vanish = config.threshold(KEY, "vanish_factor")
    frozen = config.threshold("frozen_gradients", "zero_share_warning")
    advice_up = (
        "Try: gradient clipping (max_grad_norm), a lower learning rate, normalised inputs/rewards."
    )
    advice_down = (
        "Try: check for saturated activations, a too small learning rate, or detached outputs."
    )

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats)
        zeros = zero_share(stats)
        grace = in_grace(stats, config, clock)
        if zeros >= NONZERO_JUDGED:
            # blow-ups hide behind zeros: judge the growth of the non-zero updates
            early, current, _ = nonzero_growth(stats)
            factor = current / max(early, floor, 1e-12) if early == early else 1.0
            details.update(
                {
                    "zero_share": zeros,
                    "nonzero_early": finite(early),
                    "nonzero_current": finite(current),
                    "nonzero_factor": finite(factor),
                    "in_grace": grace,
                }
            )
            text = (
                "%s (%s) grows %s -> %s (x%s) on its non-zero updates (%.0f%% of its updates "
                "are exactly 0 and hide it from averages"
                % (ref.tag, ref.kind, fmt(early), fmt(current), fmt(factor), 100 * zeros)
            )
            if stats.finite_count >= 5 and factor >= blowup:
                return Judgement(
                    Status.CRITICAL,
                    "%s; threshold x%s): exploding gradients. %s" % (text, fmt(blowup), advice_up),
                    details,
                )
            if factor >= crit and not grace:
                return Judgement(
                    Status.CRITICAL,
                    "%s; threshold x%s): exploding gradients. %s" % (text, fmt(crit), advice_up),
                    details,
                )
            if factor >= warn:
                return Judgement(
                    Status.WARNING, "%s; threshold x%s). %s" % (text, fmt(warn), advice_up), details
                )
            if zeros >= frozen:
                return Judgement(
                    Status.OK,
                    "%s is exactly 0 on most updates (see Frozen Gradients); its non-zero updates "
                    "stay in range (%s -> %s)." % (ref.tag, fmt(early), fmt(current)),
                    details,
                )
        head = abs(stats.head_value())
        tail = max(abs(stats.tail_value()), abs(current_level(stats)))
        factor = tail / max(head, floor, 1e-12)
        trend = stats.trend("all")
        rising = trend.significant and trend.change > 0
        spikes = spike_factor(stats)
        details.update(
            {
                "factor": factor,
                "floor": floor,
                "explode_warning": warn,
                "explode_critical": crit,
                "blowup": blowup,
                "spike_factor": spikes,
                "spike_threshold": spike,
                "vanish_factor": vanish,
                "max": stats.max,
                "in_grace": grace,
            }
        )
        grows = "%s (%s) grows %s -> %s (x%s" % (
            ref.tag,
            ref.kind,
            fmt(head),
            fmt(tail),
            fmt(factor),
        )
        if stats.finite_count >= 5 and factor >= blowup:
            return Judgement(
                Status.CRITICAL,
                "%s, threshold x%s): exploding gradients. %s" % (grows, fmt(blowup), advice_up),
                details,
            )
        typical = float(np.median(np.abs(levels(stats)))) if stats.finite_count else 0.0
        details["median_level"] = typical
        # growth short of a blow-up is an explosion only while the norm still climbs well above
        # its own median level: a norm that jumped in the first updates (a TD gradient grows
        # with the return it fits) and has hovered since has settled, not exploded
        settled = tail < SETTLED_FACTOR * typical
        details["settled"] = settled
        if rising and factor >= crit and not grace and not settled:
            return Judgement(
                Status.CRITICAL,
                "%s, threshold x%s): exploding gradients. %s" % (grows, fmt(crit), advice_up),
                details,
            )
        if rising and factor >= warn:
            note = (
                "; it has settled near its median level %s, not climbing on" % fmt(typical)
                if settled and factor >= crit
                else ""
            )
            return Judgement(
                Status.WARNING,
                "%s, threshold x%s)%s. %s" % (grows, fmt(warn), note, advice_up),
                details,
            )
        spiky = spike_judgement(ref, stats, spikes, spike, advice_up, details)
        if spiky is not None:
            return spiky
        if typical > 0 and tail <= vanish * typical and head > tail and trend.significant:
            return Judgement(
                Status.WARNING,
                "%s falls %s -> %s (x%s of its median level %s, threshold x%s): vanishing "
                "gradients. %s"
                % (
                    ref.tag,
                    fmt(head),
                    fmt(tail),
                    fmt(tail / typical),
                    fmt(typical),
                    fmt(vanish),
                    advice_down,
                ),
                details,
            )
        return Judgement(
            Status.OK, "%s: %s -> %s; in range." % (ref.tag, fmt(head), fmt(tail)), details
        )

    return judge_all(NAME, roles.grad_norm, view, judge)
