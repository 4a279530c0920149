"""Success Rate: zero, near-zero, low or collapsing success means the task is not solved.

* Exactly 0 over a **finished** run (at least 3 points): CRITICAL, whatever else improved.
* Exactly 0 otherwise: WARNING in grace or while a primary signal improves now; CRITICAL when
  nothing improves now and the run's failure signs have lasted (``_evidence.Evidence``; a
  return that only holds a plateau does not excuse it).
* Never clearly left ~0 (best level below ``low`` plus its noise, now below ``low``): the same,
  past grace.
* A warm start lost: down to half its early level and at least ``drop`` below it, staying there
  and not recovering: CRITICAL past grace when nothing improves now, WARNING otherwise.
* Low (recent mean below ``low``) and not rising, or ``drop`` below its best level: WARNING.
Success logged in percent (max > 1) is scaled to [0, 1].
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
    early_level,
    fmt,
    grace_text,
    improving,
    in_grace,
    judge_all,
    smoothed_levels,
    success_scale,
    trend_details,
)
from tblive.judge.rules._evidence import failure_evidence
from tblive.series.stats import MetricStats

KEY = "success"
NAME = "Success Rate"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not roles.success:
        return []
    evidence = failure_evidence(view, roles, config, context)
    progress = evidence.progress
    clock = evidence.clock
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
                "in_grace": in_grace(stats, config, clock),
                "learning": progress.improving,
                "evidence": progress.evidence,
                "failure_signs": evidence.signs,
                "points_needed": evidence.points_needed(config),
                "finished": clock.finished,
            }
        )
        span = "%d points (steps %s..%s)" % (stats.finite_count, stats.first_step, stats.last_step)
        if stats.max / scale <= zero:
            if in_grace(stats, config, clock):
                return Judgement(
                    Status.WARNING,
                    "%s is still 0 after %s; too early in the run to call it a failure (slow "
                    "checks judge after %s). Watch it."
                    % (ref.tag, span, grace_text(config, clock)),
                    details,
                )
            if clock.finished and stats.finite_count >= 3:
                return Judgement(
                    Status.CRITICAL,
                    "%s never left 0 over the finished run (%s): the task was never solved, "
                    "whatever else changed (%s). Try: check the success criterion and reward "
                    "shaping, or a simpler curriculum stage."
                    % (ref.tag, span, progress.describe()),
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
            if not evidence.enough(stats, config, holding_protects=False):
                return Judgement(
                    Status.WARNING,
                    "%s stayed at 0 over %s and nothing improves yet (%s); early in a healthy "
                    "run that is normal. CRITICAL if it lasts %s (%s)."
                    % (
                        ref.tag,
                        span,
                        progress.describe(),
                        evidence.window(config),
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
        state = progress.state(ref.tag)
        never_solved = (
            state is not None and state.best < low + 2.0 * state.noise and state.current < low
        )
        if never_solved and not in_grace(stats, config, clock):
            details["never_above_low"] = True
            if clock.finished or evidence.enough(stats, config, holding_protects=False):
                return Judgement(
                    Status.CRITICAL,
                    "%s never clearly left ~0 over %s (best level %s, now %s; threshold %s "
                    "plus its noise) %s (%s): the task %s. Try: check the reward shaping and "
                    "success criterion, or a simpler curriculum stage."
                    % (
                        ref.tag,
                        clock.span(),
                        fmt(state.best * scale),
                        fmt(state.current * scale),
                        fmt(low * scale),
                        "over the finished run, whatever else changed"
                        if clock.finished
                        else "and nothing improves now",
                        progress.describe(),
                        "was never solved" if clock.finished else "is not being solved",
                    ),
                    details,
                )
        # a sustained collapse from the EARLY level (a warm start that is being lost): the
        # median of the last tenth of the run (at least 5 points) stays at most half the early
        # level and a full `drop` below it, and is not recovering
        early = early_level(stats) / scale
        window = np.asarray(stats.recent_values(), dtype=np.float64)
        window = window[np.isfinite(window)][-max(5, stats.finite_count // 10) :] / scale
        now = float(np.median(window)) if window.size else recent
        recovering = bool(stats.trend("recent").significant and stats.trend("recent").change > 0)
        collapsed = early >= low and early - now >= drop and now <= 0.5 * early and not recovering
        if collapsed:
            details.update({"early_level": early, "current_level": now})
            story = "%s collapsed from its early level %s to %s (drop >= %s, half of it)" % (
                ref.tag,
                fmt(early * scale),
                fmt(now * scale),
                fmt(drop * scale),
            )
            if not in_grace(stats, config, clock) and not progress.improving:
                return Judgement(
                    Status.CRITICAL,
                    "%s and stays down, nothing improves (%s): the run is failing. Try: restart "
                    "from the best checkpoint with a lower learning rate; check for exploding "
                    "losses or gradients." % (story, progress.describe()),
                    details,
                )
            return Judgement(
                Status.WARNING,
                "%s (%s). Watch it; keep the best checkpoint."
                % (story, progress.describe() if progress.improving else "in grace"),
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
