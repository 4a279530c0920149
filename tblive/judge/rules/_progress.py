"""Run progress and the learning state of the primary signals (pure functions of statistics).

Two ideas the checks share:

* **Grace follows the run, not each metric.** :class:`RunClock` measures how far the whole run
  is: the finite points of its densest training-cadence metric, its first and last step, and its
  planned length when known (``RunContext.planned_steps``, else ``grace.expected_steps``; a
  finished run's planned length is its own length). A sparse evaluation metric with 15 points
  is as old as the run it belongs to.
* **Learning means improving now.** :func:`signal_state` reads one primary signal (the main
  return, a success or win rate, an evaluation return) against its own noise: its early level,
  its best level, when it last set a new best by more than its noise, and whether it holds its
  gains. A rise followed by a long plateau is *holding*, not *improving*; a series that never
  rose beyond its noise is *flat*, whatever its offset or scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional

import numpy as np

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.roles import Roles
from tblive.series.stats import MetricStats
from tblive.textfmt import fmt

#: A primary signal improves *now* when its last new best lies in this share of the run so far.
RECENT_SHARE = 0.25
#: Smoothing of the history levels (share of the buckets) before records are counted.
SMOOTH_SHARE = 0.05
#: A signal that rose *holds* while it keeps more than this share of its gain (not improving,
#: not failing: a converged run, a plateau, a dip that a healthy run recovers from).
HOLD_SHARE = 0.5
#: A success rate's smallest meaningful step (absolute, on the [0, 1] scale).
SUCCESS_RESOLUTION = 0.02
#: A finished run that ended before this share of its planned length was stopped, not
#: finished: its slow signs are judged as a live run's at the share it reached.
STOPPED_SHARE = 0.9
#: A run whose first step lies beyond this share of its length continues an earlier run.
RESUMED_SHARE = 0.05


@dataclass(frozen=True)
class RunClock:
    """How far the run is. ``points``: finite points of its densest training-cadence metric;
    ``planned``: planned length in steps (0 = unknown); ``finished``: the run has ended."""

    points: int
    first_step: int
    last_step: int
    planned: int = 0
    planned_source: str = ""
    finished: bool = False
    state: str = ""

    @property
    def resumed(self) -> bool:
        """The run continues an earlier one (its first step is beyond ``RESUMED_SHARE`` of its
        length: a checkpoint resumed into a new folder), so its start was not seen."""
        return self.first_step > RESUMED_SHARE * max(self.last_step, self.planned, 1)

    @property
    def share(self) -> Optional[float]:
        """Share of the planned length reached, None when the planned length is unknown.
        Progress counts from the run's first step (a resumed run at 6M of 10M that has run
        0.4M steps is 10% into what it had left, not 64%)."""
        if self.planned <= 0:
            return None
        origin = self.first_step if self.resumed and self.first_step < self.planned else 0
        return (self.last_step - origin) / float(max(self.planned - origin, 1))

    def reached(self, share: float, points: int) -> bool:
        """The run has lasted ``share`` of its planned length (when known) or ``points``."""
        if self.planned > 0:  # "about": a logging interval may straddle the boundary
            return (self.share or 0.0) >= share - 0.01
        return self.points >= points

    def span(self) -> str:
        """``"steps 0..30000"`` plus the planned share when known."""
        text = "steps %d..%d" % (self.first_step, self.last_step)
        if self.finished and self.planned_source == OWN_LENGTH:
            text += ", finished"
        elif self.share is not None:
            text += ", %.0f%% of the planned %d" % (100 * min(self.share, 9.99), self.planned)
        return text


#: Tags whose last step exceeds most tags' (their median) or the planned length by more than
#: this factor are on another axis (wall seconds, say) and do not measure the run's progress.
AXIS_OVERSHOOT = 1.05

#: ``planned_source`` of a finished run judged over its own length (no planned length known).
OWN_LENGTH = "the finished run's own length"

_CADENCE_ROLES = ("main_reward", "reward", "success", "entropy", "value_loss", "policy_loss")


def run_clock(
    view: Iterable, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> RunClock:
    """The :class:`RunClock` of ``view`` (tag -> MetricStats)."""
    stats_by_tag = dict(view.items()) if hasattr(view, "items") else dict(view)  # type: ignore
    live = {t: s for t, s in stats_by_tag.items() if s.finite_count and s.last_step is not None}
    # the run's age in points: its main (training) return's cadence when it logs one, else
    # the densest training-cadence metric (losses are often logged more often than returns)
    main = [
        live[ref.tag]
        for ref in roles.main_reward
        if ref.tag in live and "eval" not in ref.base.lower() and "test" not in ref.base.lower()
    ]
    cadence = [
        live[ref.tag] for name in _CADENCE_ROLES for ref in getattr(roles, name) if ref.tag in live
    ]
    pool = main or cadence or list(live.values())
    points = max((s.finite_count for s in pool), default=0)
    first = min((int(s.first_step) for s in live.values()), default=0)
    lasts = [int(s.last_step) for s in live.values()]
    last = max(lasts, default=0)
    planned, source = 0, ""
    if context is not None and context.planned_steps:
        planned, source = int(context.planned_steps), context.planned_source or "run context"
    elif config.grace.expected_steps:
        planned, source = int(config.grace.expected_steps), "grace.expected_steps"
    # progress is read on the axis most tags share: a tag whose last step runs ahead of most
    # tags' (rsl_rl's `*/time` tags count wall seconds), or beyond the planned length, is on
    # another axis and is not the run's step
    if lasts:
        bound = AXIS_OVERSHOOT * float(np.median(lasts))
        if planned > 0:
            bound = min(max(bound, 0.0), AXIS_OVERSHOOT * planned)
        last = max((x for x in lasts if x <= bound), default=last)
    finished = bool(context is not None and context.finished)
    state = context.state if context is not None else ""
    if finished and planned > 0 and last < STOPPED_SHARE * planned:
        # ended well short of its planned length (preempted, killed, cancelled): it did not
        # finish its training, so the slow signs are judged as at the share it reached
        finished, state = (
            False,
            "stopped at %.0f%% of its planned length" % (100.0 * last / planned),
        )
    if finished and planned <= 0:
        planned, source = last, OWN_LENGTH
    return RunClock(points, first, last, planned, source, finished, state)


@dataclass
class SignalState:
    """The learning state of one primary signal (see the module docstring).

    Values are in the signal's own direction (higher is better) and, for success rates, on
    the [0, 1] scale. ``flat``: never rose beyond its noise; ``improving``: set a new best in
    the recent share of the run; ``holding``: rose and has kept most of the gain.
    """

    tag: str
    kind: str
    points: int
    early: float
    best: float
    best_step: int
    current: float
    noise: float
    last_record_step: int
    first_step: int
    last_step: int
    rose: bool
    improving: bool
    holding: bool
    lost: float  # share of the gain lost since the best (0 when it did not rise)
    delta: float = 0.0  # the noise margin used (at least the signal's resolution)
    trend_gain: bool = False  # a significant climb over the whole run, by 3x the noise

    @property
    def clearly_rose(self) -> bool:
        """Its best level was beyond doubt above the early level (10 times the noise): falling
        back from there is a collapse to be judged as one, not "never improved"."""
        return self.best - self.early >= 10.0 * self.delta and self.best > self.early

    @property
    def net_gain(self) -> bool:
        """The current level is above the early level by more than three times the noise
        (both are means at the noise's scale: a clear, not a lucky, difference), or the whole
        run climbs significantly by that much."""
        return self.current - self.early > 3.0 * self.delta or self.trend_gain

    @property
    def flat(self) -> bool:
        return not self.rose

    def stagnant_share(self) -> float:
        """Share of the signal's span since its last new best."""
        span = max(self.last_step - self.first_step, 1)
        return (self.last_step - self.last_record_step) / float(span)

    def describe(self) -> str:
        if self.improving:
            return "%s improves: new best %s at step %d (from %s)" % (
                self.tag,
                fmt(self.best),
                self.last_record_step,
                fmt(self.early),
            )
        if self.holding:
            return "%s holds %s (best %s at step %d), no new best since" % (
                self.tag,
                fmt(self.current),
                fmt(self.best),
                self.last_record_step,
            )
        if self.rose:
            return "%s fell to %s from its best %s" % (
                self.tag,
                fmt(self.current),
                fmt(self.best),
            )
        return "%s flat at %s (noise %s) over %d points" % (
            self.tag,
            fmt(self.current),
            fmt(self.noise),
            self.points,
        )


def _mad_noise(values: np.ndarray) -> float:
    """Robust std of a series' fluctuation from its differences at lag 1 and 2 (the larger:
    neighbouring block means of an autocorrelated series are alike, which hides part of the
    wander from lag-1 differences)."""
    found = 0.0
    for lag in (1, 2):
        if values.size <= lag + 1:
            continue
        diffs = values[lag:] - values[:-lag]
        mad = float(np.median(np.abs(diffs - np.median(diffs))))
        if mad == 0.0:
            # most differences are exactly 0 (a sparse reward that is 0 most of the time): the
            # MAD says nothing, the root mean square of the differences does
            mad = float(np.sqrt(np.mean(diffs * diffs))) / 1.482602218505602
        found = max(found, 1.482602218505602 * mad / math.sqrt(2.0))
    return found


def block_noise(means: np.ndarray, counts: np.ndarray, window: int) -> float:
    """Noise of the level at the smoothing scale: the smallest, over block lengths of 1 to
    ``window`` buckets, of :func:`_block_noise_at` (a rise or a dip leaks into differences of
    block means more the longer the blocks, slope x block, while the true noise of a block mean
    only shrinks with its length: the smallest estimate is the noise, not the trend)."""
    window = max(int(window), 1)
    point = _block_noise_at(means, counts, 1)
    found = []
    for w in range(1, window + 1):
        estimate = _block_noise_at(means, counts, w)
        if means.size // w < MIN_NOISE_BLOCKS:
            # a spread of a few block means is not trusted below the point-scale noise
            # averaged over the block (a sparse evaluation with a handful of points)
            estimate = max(estimate, point / math.sqrt(w))
        found.append(estimate)
    return min(found)


def _block_noise_at(means: np.ndarray, counts: np.ndarray, window: int) -> float:
    """The robust spread of successive differences of non-overlapping block means (``window``
    history buckets each), averaged over the ``window`` ways to cut the blocks. Differences
    remove a steady trend, the median absolute deviation ignores spikes, and blocks at the
    smoothing scale carry the wander of autocorrelated series (rolling means) as well as white
    noise."""
    if means.size // max(window, 1) < 3:
        window = 1
    if means.size < 3:
        return 0.0
    estimates = []
    for phase in range(window):
        blocks = (means.size - phase) // window
        if blocks < 3:
            continue
        end = phase + blocks * window
        weights = counts[phase:end].reshape(blocks, window)
        values = (means[phase:end].reshape(blocks, window) * weights).sum(axis=1) / np.maximum(
            weights.sum(axis=1), 1e-300
        )
        estimates.append(_mad_noise(values))
    return float(np.mean(estimates)) if estimates else 0.0


#: Fewest block means whose spread alone measures the noise (see :func:`block_noise`).
MIN_NOISE_BLOCKS = 8
#: Fewest block means a monotone-trend test is run on.
MIN_TREND_BLOCKS = 6
#: Two-sided 95% normal quantile (Mann-Kendall significance).
_Z95 = 1.959963984540054


def _block_means(means: np.ndarray, counts: np.ndarray, window: int) -> np.ndarray:
    """Non-overlapping block means of ``window`` history buckets (the last block may be short)."""
    if window <= 1:
        return means
    out = []
    for start in range(0, means.size, window):
        w = counts[start : start + window]
        out.append(float((means[start : start + window] * w).sum() / max(float(w.sum()), 1e-300)))
    return np.asarray(out, dtype=np.float64)


def _sen_change(values: np.ndarray) -> float:
    """Theil-Sen slope times the span (in blocks) of ``values``; 0 with fewer than 2."""
    n = values.size
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    return float(np.median((values[j] - values[i]) / (j - i))) * (n - 1)


def _climbs(values: np.ndarray, margin: float) -> bool:
    """A significant upward Mann-Kendall trend whose Theil-Sen change exceeds ``margin``."""
    n = values.size
    if n < MIN_TREND_BLOCKS:
        return False
    i, j = np.triu_indices(n, k=1)
    diff = values[j] - values[i]
    s = float(np.sign(diff).sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    z = (s - np.sign(s)) / math.sqrt(var)
    if z <= _Z95:
        return False
    slope = float(np.median(diff / (j - i)))
    return slope * (n - 1) > margin


def signal_state(
    tag: str,
    stats: MetricStats,
    kind: str,
    scale: float = 1.0,
    sign: float = 1.0,
) -> Optional[SignalState]:
    """Learning state of one primary signal, None with fewer than 4 finite points."""
    if stats.finite_count < 4:
        return None
    hist = stats.history()
    means = sign * np.asarray(hist.means, dtype=np.float64) / scale
    counts = np.asarray(hist.counts, dtype=np.float64)
    ends = np.asarray(hist.last_steps, dtype=np.int64)
    if means.size == 0:
        return None
    # one scale for everything: levels are means over ~5% of the points (at least 3), the
    # noise is measured on blocks of that size, the early level is the first such block
    per_bucket = max(float(counts.mean()), 1.0)
    size = max(3, int(math.ceil(SMOOTH_SHARE * stats.finite_count)))
    window = max(1, min(means.size, int(round(size / per_bucket))))
    if window > 1:
        kernel = np.ones(window)
        smooth = np.convolve(means * counts, kernel, mode="valid") / np.maximum(
            np.convolve(counts, kernel, mode="valid"), 1e-300
        )
        steps = ends[window - 1 :]
    else:
        smooth, steps = means, ends
    noise = block_noise(means, counts, window)
    magnitude = float(np.max(np.abs(smooth))) if smooth.size else 0.0
    floor = SUCCESS_RESOLUTION if kind == "success" else 1e-12 * magnitude + 1e-300
    delta = max(noise, floor)
    # the early level: the first 5% of the points (at least 3; the noise margin is measured
    # at that scale), before most initial rises
    early = float(smooth[0])
    # a rise inside the first block: the first bucket is the level before it when it lies
    # clearly (3x the noise) below every other bucket of the block
    rest = means[1:window]
    if rest.size and float(means[0]) < float(rest.min()) - 3.0 * delta:
        early = float(means[0])
    record, record_step = float(smooth[0]), int(steps[0])
    for level, step in zip(smooth[1:].tolist(), steps[1:].tolist()):
        if level > record + delta:
            record, record_step = level, int(step)
    best_index = int(np.argmax(smooth))
    best = float(smooth[best_index])
    current = float(smooth[-1])
    gain = best - early
    rose = gain > 3.0 * delta
    first_step = int(stats.first_step or 0)
    last_step = int(stats.last_step or 0)
    span = max(last_step - first_step, 1)
    # improving now: the recent quarter of the run beats the best level before it, by more
    # than twice the noise and by a tenth of the gain so far (a plateau creeping up by noise
    # is not learning)
    cutoff = last_step - RECENT_SHARE * span
    before = smooth[steps < cutoff]
    recent_levels = smooth[steps >= cutoff]
    if before.size and recent_levels.size:
        best_before = float(before.max())
        margin = max(2.0 * delta, 0.1 * (best_before - early))
        improving = rose and float(recent_levels.max()) > best_before + margin
    else:
        improving = rose and (last_step - record_step) <= RECENT_SHARE * span
    # a steady climb is learning too, even when no single stretch beats the best before it by
    # much: a significant monotone trend of the block means (de-correlated at the smoothing
    # scale) over the recent half, by more than twice the noise, is improving now; over the
    # whole run, by more than three times the noise, it is a net gain
    blocks = _block_means(means, counts, window)
    half = blocks[-max(MIN_TREND_BLOCKS, blocks.size // 2) :]
    climbing = _climbs(half, 2.0 * delta)
    trend_gain = _climbs(blocks, 3.0 * delta)
    # ... or the whole run climbs significantly, its best level is recent and the recent half
    # still climbs by twice the noise (a rise followed by a plateau does not)
    best_recent = int(steps[best_index]) >= cutoff
    improving = (
        improving or climbing or (trend_gain and best_recent and _sen_change(half) > 2.0 * delta)
    )
    rose = rose or trend_gain
    if not rose:
        improving = False
    gain = max(gain, 0.0)
    lost = (best - current) / gain if rose and gain > 0 else 0.0
    net = current - early > 3.0 * delta or trend_gain
    holding = rose and not improving and lost < HOLD_SHARE and net
    return SignalState(
        tag=tag,
        kind=kind,
        points=stats.finite_count,
        early=early,
        best=best,
        best_step=int(steps[best_index]),
        current=current,
        noise=noise,
        last_record_step=record_step,
        first_step=first_step,
        last_step=last_step,
        rose=rose,
        improving=improving,
        holding=holding,
        lost=lost,
        delta=delta,
        trend_gain=trend_gain,
    )


def primary_tags(roles: Roles) -> List[str]:
    """Tags of the primary signals: the main reward(s), success rates, evaluation returns."""
    tags: List[str] = [ref.tag for ref in roles.main_reward]
    tags += [ref.tag for ref in roles.success if ref.tag not in tags]
    for ref in roles.reward:
        low = ref.base.lower()
        if ("eval" in low or "test" in low) and ref.tag not in tags:
            tags.append(ref.tag)
    return tags
