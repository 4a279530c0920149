"""Reward Trend: is the main return improving now, holding, flat, falling or collapsed?

The main reward is the highest-priority reward tag (per agent when logged per agent); its
learning state comes from ``_progress.signal_state`` (judged against its own noise):
* improving now (a new best beyond its noise in the last quarter of the run): OK;
* rose and keeps more than half its gain without new bests: OK, said as *holding*, never as
  improving (a converged run or a plateau);
* rose clearly (4x its noise, its rolling median held half the gain without interruption for
  5% of the points: scattered bumps of a flat series are not a rise) and
  lost ``peak_drop`` of the gain: WARNING; lost ``collapse`` of it and stayed down on every
  point of a fifth of the run so far (10 to ``grace.min_points`` points; with the planned length
  known, at least 2 x ``grace.fraction`` of it), not recovering by a fifth of the lost gain,
  past grace, nothing else improving, no curriculum step, and not a run whose logged success
  rate never reached ``success.low`` (nothing learned to lose: a lucky bump): CRITICAL;
* falling by ``min_change`` (a significant trend and more than 2 recent standard deviations)
  and below its early level by more than three times its noise (never a share of |head|):
  WARNING until the run's failure signs have lasted (``_evidence.Evidence``), then CRITICAL;
* no net improvement (flat within three times its noise, at any offset and scale, or back at
  its early level): OK in grace, WARNING after, CRITICAL once the failure signs have lasted.
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
    in_grace,
    judge_all,
    pct,
    reward_falls,
    smoothed_levels,
    trend_details,
)
from tblive.judge.rules._evidence import failure_evidence, fell_clearly
from tblive.series.stats import MetricStats


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median (shorter windows at the ends): a spike does not move it."""
    half = window // 2
    return np.asarray(
        [float(np.median(values[max(0, i - half) : i + half + 1])) for i in range(values.size)]
    )


def _longest_held(counts: np.ndarray, above: np.ndarray) -> float:
    """Points in the longest unbroken stretch of buckets where ``above`` holds: a level is
    held when it lasts without interruption, not when scattered bumps add up to it."""
    best = run = 0.0
    for count, flag in zip(np.asarray(counts, dtype=np.float64).tolist(), above.tolist()):
        run = run + count if flag else 0.0
        best = max(best, run)
    return best


KEY = "reward"
NAME = "Reward Trend"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not roles.main_reward:
        return []
    min_change = config.threshold(KEY, "min_change")
    peak_drop = config.threshold(KEY, "peak_drop")
    collapse = config.threshold(KEY, "collapse")
    evidence = failure_evidence(view, roles, config, context)
    progress = evidence.progress
    clock = evidence.clock
    success_states = [s for s in progress.states if s.kind == "success"]
    success_low = config.threshold("success", "low")

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats)
        details.update({"min_change": min_change, "grace_points": config.grace.min_points})
        head, tail = details["head"], details["tail"]
        change = details["relative_change"] or 0.0
        grace = in_grace(stats, config, clock)
        details["in_grace"] = grace
        state = progress.state(ref.tag)
        if stats.finite_count < 4:
            return Judgement(
                Status.OK,
                "%s has only %d points; too few for a trend." % (ref.tag, stats.finite_count),
                details,
            )
        smooth = smoothed_levels(stats)
        best = float(np.max(smooth)) if smooth.size else float("nan")
        # a collapse is judged from the EARLY level (first 5% of the points), never from a
        # head that already contains the first rise
        start = state.early if state is not None else early_level(stats)
        gain = best - start
        # the rise must be clear against the series' own noise (block noise at the smoothing
        # scale, robust to the collapse itself), and the best level must have been held, not
        # touched by a few lucky or outlier episodes: the rolling median (5 buckets) stayed at
        # half the gain, without interruption, on at least 5 points and 5% of them
        noise = state.delta if state is not None else 0.0
        hist = stats.history()
        medians = _rolling_median(np.asarray(hist.means, dtype=np.float64), 5)
        held = _longest_held(hist.counts, medians >= start + 0.5 * gain) if gain > 0 else 0.0
        rose = (
            smooth.size >= 4
            and gain > 4.0 * noise
            and gain >= min_change * max(abs(start), 1e-12)
            and held >= max(5.0, 0.05 * stats.finite_count)
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
                fmt(start),
                fmt(best),
                fmt(tail),
                pct(lost).lstrip("+"),
                pct(collapse if lost >= collapse else peak_drop).lstrip("+"),
            )
            # collapsed for good: the collapsed level has lasted in run progress (a fifth of the
            # run so far, 10 to grace.min_points points; with the planned length known, also
            # twice grace.fraction of it: healthy runs dip for ~10%), all of those points (95%)
            # sit there, and it is not recovering (a dip that bounces back is a dip)
            values = np.asarray(stats.recent_values(), dtype=np.float64)
            values = values[np.isfinite(values)]
            span = max(10, min(config.grace.min_points, clock.points // 5))
            if clock.planned > 0 and stats.last_step is not None:
                since = stats.last_step - 2.0 * config.grace.fraction * clock.planned
                hist = stats.history()
                span = max(span, int(np.sum(hist.counts[hist.last_steps >= since])))
            span = min(span, max(values.size, 5))
            floor = best - collapse * gain
            window = values[-span:]
            stays_down = (
                values.size >= span
                and float(np.median(window)) <= floor
                and float(np.mean(window <= floor)) >= 0.95
            )
            # recovering: a significant recent rise worth a fifth of the lost gain (an uptick of
            # noise on the collapsed level is not a recovery)
            recent = stats.trend("recent")
            recovering = bool(
                recent.significant and recent.change > 0.2 * max(best - float(tail), 0.0)
            )
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
            # a collapse loses something learned: with a success rate logged that never
            # reached `success.low`, a return falling back to its start lost a lucky bump, and
            # is judged as no net improvement (with its persistence window) below
            unsolved = bool(success_states) and all(s.best < success_low for s in success_states)
            details["never_solved"] = unsolved
            collapsed = (
                lost >= collapse and stays_down and not recovering and not lessons and not unsolved
            )
            if collapsed and not grace and not others:
                return Judgement(
                    Status.CRITICAL,
                    "%s and nothing else improves: the run collapsed. Try: restart from the best "
                    "checkpoint with a lower learning rate or clip range." % story,
                    details,
                )
            # back at its early level and the run's failure signs have lasted: judged below as
            # "no net improvement" (CRITICAL), not excused as a dip
            back = (
                state is not None
                and not state.net_gain
                and not state.improving
                and not state.clearly_rose
            )
            if not (back and evidence.enough(stats, config)):
                return Judgement(
                    Status.WARNING,
                    "%s. Try: a lower learning rate or clip range; keep the best checkpoint."
                    % story,
                    details,
                )
        if state is not None:
            details.update(
                {
                    "best_level": state.best,
                    "noise": state.noise,
                    "last_new_best_step": state.last_record_step,
                    "improving_now": state.improving,
                    "holding": state.holding,
                    "flat": state.flat,
                }
            )
        if state is not None and state.improving:
            return Judgement(
                Status.OK,
                "%s improves: %s -> %s, new best at step %d (%s)."
                % (ref.tag, fmt(head), fmt(state.best), state.last_record_step, pct(change)),
                details,
            )
        if (
            reward_falls(stats, min_change)
            and fell_clearly(state)
            and not (state is not None and state.holding)
        ):
            if progress.improving or not evidence.enough(stats, config):
                why = (
                    "but %s" % progress.describe()
                    if progress.improving
                    else "CRITICAL if it lasts %s (%s)"
                    % (evidence.window(config), evidence.describe())
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
        if state is not None and state.rose and not state.holding and state.net_gain:
            return Judgement(
                Status.WARNING,
                "%s rose %s -> %s, then fell back to %s (lost %s of the gain); not improving. "
                "Try: a lower learning rate; keep the best checkpoint."
                % (ref.tag, fmt(head), fmt(state.best), fmt(tail), pct(state.lost).lstrip("+")),
                details,
            )
        if state is not None and state.holding:
            # rose and keeps its gain, without a new best lately: converged or a plateau
            since = 100.0 * state.stagnant_share()
            return Judgement(
                Status.OK,
                "%s rose %s -> %s (best %s) and keeps %s of the gain; no new best since step %d "
                "(the last %.0f%% of the run): holding, not improving."
                % (
                    ref.tag,
                    fmt(state.early),
                    fmt(tail),
                    fmt(state.best),
                    pct(1.0 - state.lost).lstrip("+"),
                    state.last_record_step,
                    since,
                ),
                details,
            )
        if grace:
            return Judgement(
                Status.OK,
                "%s: no clear trend yet (%s -> %s) after %d points; too early in the run to "
                "judge (slow checks judge after %s)."
                % (ref.tag, fmt(head), fmt(tail), stats.finite_count, grace_text(config, clock)),
                details,
            )
        noise = fmt(state.noise) if state is not None else "n/a"
        if state is not None and state.rose:
            flat = (
                "%s is %+.3g from its early level %s (best %+.3g, noise %s) over %d points "
                "(%s): no net improvement"
                % (
                    ref.tag,
                    state.current - state.early,
                    fmt(state.early),
                    state.best - state.early,
                    fmt(state.noise),
                    stats.finite_count,
                    clock.span(),
                )
            )
        elif state is not None and stats.max == stats.min:
            flat = "%s stays at exactly %s over %d points (%s)" % (
                ref.tag,
                fmt(stats.max),
                stats.finite_count,
                clock.span(),
            )
        else:
            flat = (
                "%s has not improved: %s -> %s over %d points (%s), within three times its noise (%s)"
                % (
                    ref.tag,
                    fmt(head),
                    fmt(tail),
                    stats.finite_count,
                    clock.span(),
                    noise,
                )
            )
        if evidence.enough(stats, config):
            return Judgement(
                Status.CRITICAL,
                "%s and nothing else improves (%s): no learning. Try: check the reward signal "
                "reaches the agent (scale, sign, done masks), raise the learning rate or "
                "exploration, or simplify the task." % (flat, evidence.describe()),
                details,
            )
        if evidence.count == 0 or progress.holds:
            return Judgement(
                Status.WARNING,
                "%s; not a failure sign while %s. Try: check the reward signal reaches the "
                "agent." % (flat, progress.describe()),
                details,
            )
        return Judgement(
            Status.WARNING,
            "%s. CRITICAL if it lasts %s (%s). Try: check the reward signal reaches the agent, "
            "raise the learning rate or exploration, or simplify the task."
            % (flat, evidence.window(config), evidence.describe()),
            details,
        )

    return judge_all(NAME, roles.main_reward, view, judge)
