"""Value Loss: a diverging critic (and a critic that explains nothing).

Per value-loss tag (also TD3/SAC ``critic_loss``), with factor = current level / head, where the
current level is the larger of the smoothed tail and the median of the last 5 points. A value
loss scales with the square of the return, so growth is judged *beyond what the returns
explain*: unexplained = factor / (growth of the main reward's magnitude)^2 (a reward that
started at exactly 0 explains everything):
* unexplained >= ``grad_norm.blowup`` (1000x, at least 5 points) while the tail is still 10x
  the run's median level: CRITICAL, even in grace (a loss that started near 0 before any
  reward and settled at a normal level is not a blow-up);
* unexplained >= ``diverge_critical`` with a significant rise, past grace, still 3x above the
  run's median level (climbing, not a step up to a new normal): CRITICAL;
* unexplained >= ``rise_warning`` (or ``rise_critical``, said louder) with a significant rise:
  WARNING;
* a spike (largest history level >= ``spike`` x the median level): WARNING.
Per explained-variance tag (SB3): recent |mean| and max below ``explained_variance_floor``
after 8 points: WARNING (the critic predicts nothing).
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
    fmt,
    in_grace,
    judge_all,
    levels,
    return_scale_growth,
    spike_factor,
    spike_judgement,
    trend_details,
)
from tblive.judge.rules._evidence import learning_progress
from tblive.judge.rules._progress import RunClock, run_clock
from tblive.series.stats import MetricStats

KEY = "value_loss"
NAME = "Value Loss"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    clock = run_clock(view, roles, config, context)
    findings: List[Finding] = []
    if roles.value_loss:
        findings.extend(_value_loss(view, roles, config, clock))
    if roles.explained_variance:
        findings.extend(_explained_variance(view, roles, config))
    return findings


def _value_loss(view: View, roles: Roles, config: Config, clock: RunClock) -> List[Finding]:
    warn = config.threshold(KEY, "rise_warning")
    crit = config.threshold(KEY, "rise_critical")
    spike = config.threshold(KEY, "spike")
    diverge = config.threshold(KEY, "diverge_critical")
    blowup = config.threshold("grad_norm", "blowup")
    progress = learning_progress(view, roles, config, clock)

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats)
        head = abs(stats.head_value())
        tail = max(abs(stats.tail_value()), abs(current_level(stats)))
        factor = tail / max(head, 1e-12)
        scale_growth = return_scale_growth(view, roles, ref.agent)
        unexplained = factor / (scale_growth * scale_growth)
        trend = stats.trend("all")
        rising = trend.significant and trend.change > 0
        spikes = spike_factor(stats)
        grace = in_grace(stats, config, clock)
        typical = float(np.median(np.abs(levels(stats))))
        details.update(
            {
                "factor": factor,
                "return_scale_growth": scale_growth,
                "unexplained_factor": unexplained,
                "rise_warning": warn,
                "rise_critical": crit,
                "diverge_critical": diverge,
                "spike_factor": spikes,
                "spike_threshold": spike,
                "max": stats.max,
                "median_level": typical,
                "in_grace": grace,
                "learning": progress.holds,
            }
        )
        grows = "%s grows %s -> %s (x%s" % (ref.tag, fmt(head), fmt(tail), fmt(factor))
        if scale_growth > 1.0:
            grows += "; the return scale grew x%s, which explains up to x%s" % (
                fmt(scale_growth),
                fmt(scale_growth * scale_growth),
            )
        grows += ")"
        advice = (
            "Try: lower the critic learning rate, normalise returns/values, clip the value "
            "loss or gradients, check the reward scale."
        )
        # a blow-up is still climbing far above the run's own typical level; a loss that
        # started near 0 (no reward seen yet) and settled at a normal level is not one
        if stats.finite_count >= 5 and unexplained >= blowup and tail >= 10.0 * typical:
            return Judgement(
                Status.CRITICAL,
                "%s, >= x%s beyond what the returns explain: the critic diverges. %s"
                % (grows, fmt(blowup), advice),
                details,
            )
        if rising and unexplained >= diverge and not grace and tail >= 3.0 * typical:
            return Judgement(
                Status.CRITICAL,
                "%s, >= x%s beyond what the returns explain: the critic diverges. %s"
                % (grows, fmt(diverge), advice),
                details,
            )
        if rising and unexplained >= crit:
            why = (
                "in grace"
                if grace
                else (
                    "the run is learning (%s)" % progress.describe()
                    if progress.holds
                    else "nothing else improves"
                )
            )
            return Judgement(
                Status.WARNING,
                "%s (threshold x%s); %s; CRITICAL at x%s. %s"
                % (grows, fmt(crit), why, fmt(diverge), advice),
                details,
            )
        if rising and unexplained >= warn:
            return Judgement(
                Status.WARNING, "%s (threshold x%s). %s" % (grows, fmt(warn), advice), details
            )
        spiky = spike_judgement(ref, stats, spikes, spike, advice, details)
        if spiky is not None:
            return spiky
        return Judgement(
            Status.OK, "%s: %s -> %s; no divergence." % (ref.tag, fmt(head), fmt(tail)), details
        )

    return judge_all(NAME, roles.value_loss, view, judge)


def _explained_variance(view: View, roles: Roles, config: Config) -> List[Finding]:
    floor = config.threshold(KEY, "explained_variance_floor")

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count < 8:
            return None
        recent = stats.recent
        details = {
            "recent_mean": recent.mean,
            "recent_max": recent.max,
            "floor": floor,
            "points": stats.finite_count,
        }
        if abs(recent.mean) < floor and recent.max < floor:
            return Judgement(
                Status.WARNING,
                "%s stays near 0 (recent mean %s, max %s; floor %s): the critic predicts "
                "nothing. Check that episodes end (always-truncated episodes), the reward "
                "varies, and the value head learns."
                % (ref.tag, fmt(recent.mean), fmt(recent.max), fmt(floor)),
                details,
            )
        return Judgement(Status.OK, "%s: recent mean %s." % (ref.tag, fmt(recent.mean)), details)

    return judge_all(NAME, roles.explained_variance, view, judge)
