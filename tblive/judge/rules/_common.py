"""Helpers shared by the checks: grace, relative change, per-agent summaries, learning progress.

Everything here is a pure function of :class:`~tblive.series.stats.MetricStats` and the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tblive.judge.config import Config
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._progress import (
    RunClock,
)
from tblive.series.stats import MetricStats
from tblive.textfmt import finite, fmt, format_number, pct  # noqa: F401 (re-exported to rules)

View = Mapping[str, MetricStats]

#: With the planned length known, grace also lasts until the run has this many points (too few
#: to tell a trend from noise, whatever share of the run they cover).
MIN_SAMPLE = 10


@dataclass
class Judgement:
    """What a check concluded about one tag (before per-agent summarising)."""

    status: Status
    message: str
    details: Dict[str, Any] = field(default_factory=dict)


def usable(stats: Optional[MetricStats], minimum: int = 1) -> bool:
    return stats is not None and stats.finite_count >= minimum


def in_grace(stats: MetricStats, config: Config, clock: Optional[RunClock] = None) -> bool:
    """True while the run is too young for slow checks to go CRITICAL (see ``Grace``).

    With a :class:`RunClock` grace follows the run: it ends when the run's densest metric has
    ``grace.min_points`` points, or at ``grace.fraction`` of the planned length when known, so a
    sparse metric (an evaluation every few thousand steps) is not young forever. Without one
    the metric's own points and steps decide (the behaviour before run clocks).
    """
    grace = config.grace
    last = stats.last_step
    if last is None or stats.finite_count == 0:
        return True
    if clock is not None:
        if grace.min_steps and clock.last_step < grace.min_steps:
            return True
        if clock.planned > 0:  # the planned share, and a minimum sample to judge at all
            return (clock.share or 0.0) < grace.fraction or clock.points < MIN_SAMPLE
        return clock.points < grace.min_points
    if stats.finite_count < grace.min_points:
        return True
    if grace.min_steps and last < grace.min_steps:
        return True
    if grace.expected_steps and last < grace.fraction * grace.expected_steps:
        return True
    return False


def grace_text(config: Config, clock: Optional[RunClock]) -> str:
    """What the grace period is, for messages: "25 points" or "10% of the planned 1000000"."""
    if clock is not None and clock.planned > 0:
        return "%.0f%% of the planned %d steps" % (100 * config.grace.fraction, clock.planned)
    return "%d points" % config.grace.min_points


def relative_change(head: float, tail: float) -> float:
    """(tail - head) / |head|, guarded so a head of ~0 does not divide by zero."""
    scale = max(abs(head), 0.01 * abs(tail), 1e-12)
    return (tail - head) / scale


def head_tail(stats: MetricStats, sign: float = 1.0) -> Tuple[float, float]:
    return sign * stats.head_value(), sign * stats.tail_value()


def levels(stats: MetricStats) -> np.ndarray:
    """Bucket means of the history (finite values only, step order)."""
    return np.asarray(stats.history().means, dtype=np.float64)


def smoothed_levels(stats: MetricStats, share: float = 0.05) -> np.ndarray:
    """History bucket means smoothed over ~``share`` of the buckets (count-weighted)."""
    hist = stats.history()
    means = np.asarray(hist.means, dtype=np.float64)
    counts = np.asarray(hist.counts, dtype=np.float64)
    if means.size == 0:
        return means
    window = max(1, int(round(share * means.size)))
    if window == 1:
        return means
    kernel = np.ones(window)
    weighted = np.convolve(means * counts, kernel, mode="valid")
    weights = np.convolve(counts, kernel, mode="valid")
    return weighted / np.maximum(weights, 1e-300)


def spike_factor(stats: MetricStats, skip: float = 0.1) -> float:
    """Largest history level over the median level (by absolute value), after the first
    ``skip`` share of the history (warm-up transients are normal)."""
    lv = np.abs(levels(stats))
    lv = lv[int(skip * lv.size) :]
    if lv.size < 4:
        return 1.0
    median = float(np.median(lv))
    if median <= 0:
        return math.inf if float(lv.max()) > 0 else 1.0
    return float(lv.max()) / median


def spike_judgement(
    ref: MetricRef,
    stats: MetricStats,
    factor: float,
    threshold: float,
    advice: str,
    details: Dict[str, Any],
) -> Optional[Judgement]:
    """WARNING when the metric's largest level is ``threshold`` x its median level, else None."""
    if factor < threshold:
        return None
    return Judgement(
        Status.WARNING,
        "%s spikes to %s, x%s its median level (threshold x%s). %s"
        % (ref.tag, fmt(stats.max), fmt(factor), fmt(threshold), advice),
        details,
    )


def zero_share(stats: MetricStats) -> float:
    return stats.zero_count / stats.count if stats.count else 0.0


def improving(stats: MetricStats, min_change: float, sign: float = 1.0) -> bool:
    """The metric clearly rose (in the ``sign`` direction) by at least ``min_change`` relative.

    Clearly = a significant trend over the whole history, or a smoothed end at least two
    recent standard deviations beyond the smoothed start (a fast rise followed by a plateau,
    which a trend test over the plateau-dominated history may miss).
    """
    if stats.finite_count < 4:
        return False
    head, tail = head_tail(stats, sign)
    if not (math.isfinite(head) and math.isfinite(tail)):
        return False
    if relative_change(head, tail) < min_change:
        return False
    trend = stats.trend("all")
    if trend.significant and math.isfinite(trend.change) and sign * trend.change > 0:
        return True
    recent = stats.recent
    spread = recent.std if math.isfinite(recent.std) else 0.0
    return stats.finite_count >= 8 and (tail - head) > 2.0 * spread


def current_level(stats: MetricStats, points: int = 5) -> float:
    """Median of the last ``points`` finite values: reacts within a few points (the smoothed
    tail lags by ~10% of the run) yet ignores a single spike."""
    values = np.asarray(stats.recent_values(), dtype=np.float64)
    values = values[np.isfinite(values)][-points:]
    return float(np.median(values)) if values.size else math.nan


def return_scale_growth(view: View, roles: Roles, agent: Optional[str] = None) -> float:
    """How much the main reward's magnitude grew from head to tail (at least 1).

    Value and critic losses scale with the square of the return, so a loss that grows while
    returns grow is expected. A reward that started at exactly 0 (sparse, nothing reached yet)
    explains any growth: the result is infinite.
    """
    refs = [r for r in roles.main_reward if r.agent == agent] or list(roles.main_reward)
    growth = 1.0
    for ref in refs:
        stats = view.get(ref.tag)
        if not usable(stats, 4):
            continue
        head = abs(stats.head_value())
        tail = max(abs(stats.tail_value()), abs(current_level(stats, 10)))
        if not (math.isfinite(head) and math.isfinite(tail)):
            continue
        if head <= 1e-12:
            if max(abs(stats.min), abs(stats.max)) > 0:
                return math.inf
            continue
        growth = max(growth, tail / head)
    return growth


def early_level(stats: MetricStats, share: float = 0.02, min_points: int = 3) -> float:
    """Mean of the first ``max(min_points, share * points)`` finite points (whole buckets)."""
    hist = stats.history()
    if hist.counts.size == 0:
        return math.nan
    target = max(min_points, int(math.ceil(share * stats.finite_count)))
    last = int(np.searchsorted(np.cumsum(hist.counts), target)) + 1
    counts = hist.counts[:last]
    return float((counts * hist.means[:last]).sum() / counts.sum())


def declining(stats: MetricStats, min_change: float, sign: float = 1.0) -> bool:
    return improving(stats, min_change, -sign)


def trend_details(stats: MetricStats, sign: float = 1.0) -> Dict[str, Any]:
    trend = stats.trend("all")
    head, tail = head_tail(stats, sign)
    return {
        "head": finite(head),
        "tail": finite(tail),
        "relative_change": finite(relative_change(head, tail)),
        "trend": trend.label if sign > 0 else _flip(trend.label),
        "tau": finite(sign * trend.tau),
        "strength": finite(trend.strength),
        "significant": trend.significant,
        "points": stats.finite_count,
        "last_step": stats.last_step,
    }


def _flip(label: str) -> str:
    return {"increasing": "decreasing", "decreasing": "increasing"}.get(label, label)


# ------------------------------------------------------------------ reward helpers


def success_scale(stats: MetricStats) -> float:
    """100 for success logged in percent (max > 1), else 1."""
    return 100.0 if stats.max > 1.0 + 1e-9 else 1.0


def component_scale(ref: MetricRef, view: View, roles: Roles) -> float:
    """Largest recent |mean| among the reward components of the same agent."""
    peers = [
        abs(view[other.tag].recent.mean)
        for other in roles.reward_component
        if other.tag in view and usable(view[other.tag]) and other.agent == ref.agent
    ]
    return max(peers) if peers else 0.0


def component_dead(ref: MetricRef, view: View, roles: Roles, config: Config) -> bool:
    """A (non-penalty) reward component whose recent |values| stay near zero.

    Near zero = at most ``dead_abs``, or ``dead_relative`` of the largest component. Penalties
    (never positive) are not dead at zero: avoiding them is the point.
    """
    stats = view.get(ref.tag)
    if not usable(stats):
        return False
    if stats.max <= 0:
        return False
    recent = stats.recent
    largest = max(abs(recent.min), abs(recent.max))
    limit = max(
        config.threshold("reward_component", "dead_abs"),
        config.threshold("reward_component", "dead_relative") * component_scale(ref, view, roles),
    )
    return largest <= limit


def success_stuck_at_zero(stats: MetricStats, config: Config) -> bool:
    return stats.finite_count >= 2 and stats.max / success_scale(stats) <= config.threshold(
        "success", "zero"
    )


def reward_falls(stats: MetricStats, min_change: float) -> bool:
    """Falling by ``min_change`` with a significant trend AND by more than 2 recent standard
    deviations: rolling means (SB3's ep_rew_mean) are autocorrelated, so a trend test alone
    calls a noisy plateau "decreasing"."""
    if not declining(stats, min_change):
        return False
    spread = stats.recent.std if math.isfinite(stats.recent.std) else 0.0
    return stats.head_value() - stats.tail_value() > 2.0 * spread


# ------------------------------------------------------------------ per-agent summaries


def judge_all(
    check: str,
    refs: Sequence[MetricRef],
    view: View,
    judge: Callable[[MetricRef, MetricStats], Optional[Judgement]],
) -> List[Finding]:
    """Judge every tag; per-agent tags with the same base name are summarised in one finding."""
    groups: Dict[str, List[Tuple[MetricRef, Judgement]]] = {}
    order: List[str] = []
    for ref in refs:
        stats = view.get(ref.tag)
        if stats is None or stats.count == 0:
            continue
        verdict = judge(ref, stats)
        if verdict is None:
            continue
        key = "agent*/%s" % ref.base if ref.agent is not None else ref.tag
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((ref, verdict))
    findings = []
    for key in order:
        items = groups[key]
        if len(items) == 1 and items[0][0].agent is None:
            ref, verdict = items[0]
            findings.append(
                Finding(check, verdict.status, verdict.message, verdict.details, ref.tag)
            )
        else:
            findings.append(summarise_agents(check, key, items))
    return findings


def summarise_agents(check: str, key: str, items: List[Tuple[MetricRef, Judgement]]) -> Finding:
    worst_status = max(verdict.status for _, verdict in items)
    flagged = [ref.agent or ref.tag for ref, verdict in items if verdict.status == worst_status]
    worst_ref, worst = next((ref, v) for ref, v in items if v.status == worst_status)
    total = len(items)
    details = {
        "agents": {ref.agent or ref.tag: dict(v.details, status=v.status.name) for ref, v in items},
        "flagged": flagged if worst_status > Status.OK else [],
        "worst": worst_ref.tag,
    }
    if worst_status == Status.OK:
        message = "%s (all %d agents): %s" % (key, total, worst.message)
    else:
        names = ", ".join(flagged[:6]) + (" ..." if len(flagged) > 6 else "")
        message = "%d of %d agents (%s): %s" % (len(flagged), total, names, worst.message)
    return Finding(check, worst_status, message, details, key)


# ------------------------------------------------------------------ non-zero samples


def nonzero_growth(stats: MetricStats, share: float = 0.1) -> Tuple[float, float, float]:
    """(early, current, factor) of ``|value|`` on the metric's non-zero samples.

    Blow-ups hide behind zeros: a gradient norm or loss that is exactly 0 on most updates (agents
    updated in turns, skipped steps) has a mean and median near 0 whatever its other updates do.
    ``early`` is the median over the first ``share`` of the history of each bucket's largest
    |value| (buckets with a non-zero sample only); ``current`` the median |value| of the recent
    non-zero samples; ``factor`` = current / early (inf when early is 0; 1 with no data).
    """
    hist = stats.history()
    peaks = np.maximum(np.abs(hist.mins), np.abs(hist.maxs))
    peaks = peaks[np.isfinite(peaks) & (peaks > 0)]
    recent = np.abs(np.asarray(stats.recent_values(), dtype=np.float64))
    recent = recent[np.isfinite(recent) & (recent > 0)]
    if peaks.size == 0 or recent.size == 0:
        return math.nan, math.nan, 1.0
    head = peaks[: max(1, int(math.ceil(share * peaks.size)))]
    early = float(np.median(head))
    current = float(np.median(recent[-max(3, recent.size // 4) :]))
    factor = current / early if early > 0 else math.inf
    return early, current, factor
