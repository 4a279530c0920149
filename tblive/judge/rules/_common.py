"""Helpers shared by the checks: grace, relative change, per-agent summaries, learning progress.

Everything here is a pure function of :class:`~tblive.series.stats.MetricStats` and the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tblive.judge.findings import Finding, Status
from tblive.judge.metrics import Config, MetricRef, Roles
from tblive.series.stats import MetricStats, format_number

View = Mapping[str, MetricStats]


@dataclass
class Judgement:
    """What a check concluded about one tag (before per-agent summarising)."""

    status: Status
    message: str
    details: Dict[str, Any] = field(default_factory=dict)


def fmt(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return format_number(float(value))


def pct(value: float) -> str:
    if not math.isfinite(value):
        return "%s%%" % value
    if abs(value) >= 100:
        return "%+.0fx" % (value + 1.0) if value > 0 else "%+.0f%%" % (100 * value)
    return "%+.0f%%" % (100.0 * value)


def finite(value: Any) -> Optional[float]:
    """``value`` as a JSON-safe float, None when missing or not finite."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def usable(stats: Optional[MetricStats], minimum: int = 1) -> bool:
    return stats is not None and stats.finite_count >= minimum


def in_grace(stats: MetricStats, config: Config) -> bool:
    """True while the metric is too young for slow checks to go CRITICAL (see ``Grace``)."""
    grace = config.grace
    if stats.finite_count < grace.min_points:
        return True
    last = stats.last_step
    if last is None:
        return True
    if grace.min_steps and last < grace.min_steps:
        return True
    if grace.expected_steps and last < grace.fraction * grace.expected_steps:
        return True
    return False


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


# ------------------------------------------------------------------ learning progress


@dataclass
class Progress:
    """Is the run learning anything? ``evidence`` names what improves, ``checked`` what was looked at."""

    improving: bool
    evidence: List[str]
    checked: List[str]

    def describe(self) -> str:
        if self.improving:
            return "; ".join(self.evidence)
        if not self.checked:
            return "no reward or success metric logged"
        return "no improvement in %s" % ", ".join(self.checked[:4]) + (
            " (+%d more)" % (len(self.checked) - 4) if len(self.checked) > 4 else ""
        )


def learning_progress(view: View, roles: Roles, config: Config) -> Progress:
    """Evidence that the run learns: main reward or success rising, or a live component rising."""
    evidence: List[str] = []
    checked: List[str] = []
    reward_min = config.threshold("reward", "min_change")
    for ref in roles.main_reward:
        stats = view.get(ref.tag)
        if not usable(stats, 4):
            continue
        checked.append(ref.tag)
        if improving(stats, reward_min):
            evidence.append(_rise_text(ref.tag, stats))
    for ref in roles.success:
        stats = view.get(ref.tag)
        if not usable(stats, 2):
            continue
        checked.append(ref.tag)
        scale = success_scale(stats)
        zero = config.threshold("success", "zero")
        if stats.max / scale > zero and (
            improving(stats, reward_min)
            or stats.recent.mean / scale >= config.threshold("success", "low")
        ):
            evidence.append("%s reaches %s" % (ref.tag, fmt(stats.recent.mean)))
    component_min = config.threshold("reward_component", "min_change")
    for ref in roles.reward_component:
        stats = view.get(ref.tag)
        if not usable(stats, 4) or component_dead(ref, view, roles, config):
            continue
        checked.append(ref.tag)
        if improving(stats, component_min):
            evidence.append(_rise_text(ref.tag, stats))
    return Progress(bool(evidence), evidence, checked)


def _rise_text(tag: str, stats: MetricStats) -> str:
    return "%s %s -> %s" % (tag, fmt(stats.head_value()), fmt(stats.tail_value()))


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


# ------------------------------------------------------------------ failure evidence


@dataclass
class Evidence:
    """Independent signs that a run has failed, and how long they need to persist.

    Early in a healthy run the reward is flat and success is zero for a while, and some trainers
    (MAPush MAPPO) raise their entropy from the start; any one of these alone is what a healthy
    run looks like early on. The slow checks therefore go CRITICAL only when nothing improves and
    the signs have persisted for ``points_needed`` points: the grace period (``min_points``) when
    three or more independent signs agree, twice it for two, three times it for one.

    Signs: a success metric that never left 0; entropy rising; the main reward falling; a reward
    component that is computed but negligible (dead; a component that is exactly 0 throughout is
    a sparse reward not reached yet, which is what every run starts with). While no reward
    and no reward component has ever been non-zero (a sparse task before its first reward),
    every window is twice as long.
    """

    signs: List[str]
    progress: Progress
    #: no reward or reward component has ever been non-zero: a sparse task before its first
    #: reward, which has told nothing yet, so every window is twice as long
    no_reward_yet: bool = False

    @property
    def count(self) -> int:
        return len(self.signs)

    def _factor(self) -> int:
        factor = 1 if self.count >= 3 else (2 if self.count == 2 else 3)
        return factor * 2 if self.no_reward_yet else factor

    def points_needed(self, config: Config) -> int:
        return self._factor() * config.grace.min_points

    def share_needed(self, config: Config) -> float:
        """With a known planned length: the share of it the signs must last (1x, 2x, 3x the
        grace fraction), since a long run's healthy flat start is longer in points."""
        return min(self._factor() * config.grace.fraction, 0.9)

    def enough(self, stats: MetricStats, config: Config) -> bool:
        """Past grace, nothing improves, and the signs have lasted long enough on ``stats``."""
        if self.progress.improving or self.count == 0 or in_grace(stats, config):
            return False
        planned = config.grace.expected_steps
        if planned and stats.last_step is not None:  # the run's length is known: use it
            return stats.last_step >= self.share_needed(config) * planned
        return stats.finite_count >= self.points_needed(config)

    def describe(self) -> str:
        return "%d sign%s: %s" % (self.count, "" if self.count == 1 else "s", "; ".join(self.signs))


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


def failure_evidence(view: View, roles: Roles, config: Config) -> Evidence:
    """Collect the run's independent failure signs (see :class:`Evidence`)."""
    signs: List[str] = []
    zero_success = [
        ref.tag
        for ref in roles.success
        if usable(view.get(ref.tag), 2) and success_stuck_at_zero(view[ref.tag], config)
    ]
    if zero_success and len(zero_success) == len(
        [ref for ref in roles.success if usable(view.get(ref.tag), 2)]
    ):
        signs.append("%s never left 0" % zero_success[0])
    rise = config.threshold("entropy", "rise")
    rising = [
        ref.tag
        for ref in roles.entropy
        if usable(view.get(ref.tag), 4) and improving(view[ref.tag], rise, ref.sign)
    ]
    if rising:
        signs.append("%s rises" % rising[0])
    min_change = config.threshold("reward", "min_change")
    falling = [
        ref.tag
        for ref in roles.main_reward
        if usable(view.get(ref.tag), 4) and reward_falls(view[ref.tag], min_change)
    ]
    if falling:
        signs.append("%s falls" % falling[0])
    dead = [
        ref.tag
        for ref in roles.reward_component
        if component_dead(ref, view, roles, config)
        and view[ref.tag].zero_count < view[ref.tag].finite_count
    ]
    if dead:
        signs.append("%s is negligible (dead)" % dead[0])
    rewards = [
        view[ref.tag]
        for ref in list(roles.reward) + list(roles.reward_component)
        if usable(view.get(ref.tag))
    ]
    no_reward_yet = bool(rewards) and all(s.min == 0.0 and s.max == 0.0 for s in rewards)
    return Evidence(signs, learning_progress(view, roles, config), no_reward_yet)


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
