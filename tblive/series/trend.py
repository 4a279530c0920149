"""The robust trend test of a metric's bucketed history (Theil-Sen slope + Mann-Kendall).

:func:`judge_trend` labels points ``(x, y)`` in x order as "increasing", "decreasing",
"stable", "volatile" or "unknown" (fewer than :data:`MIN_TREND_BUCKETS` points).
:meth:`tblive.series.stats.MetricStats.trend` applies it to the bucket means of a metric
and memoises the result until the statistics change.  Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import math
from typing import Dict, NamedTuple, Tuple

import numpy as np

__all__ = [
    "MATERIAL_CHANGE_FRACTION",
    "MIN_TREND_BUCKETS",
    "MIN_TREND_STRENGTH",
    "RECENT_SPAN_FRACTION",
    "VOLATILE_NOISE_FRACTION",
    "Trend",
    "judge_trend",
]

#: Share of the history's step span judged by ``trend("recent")``.
RECENT_SPAN_FRACTION = 0.25
#: Fewest history buckets a trend is judged on.
MIN_TREND_BUCKETS = 4
#: ``Trend.significant`` needs the fitted change to exceed this many noise scales.
MIN_TREND_STRENGTH = 1.0
#: A significant trend is labelled increasing/decreasing only if the fitted change is at
#: least this fraction of the series' typical magnitude (median of |bucket mean|).
MATERIAL_CHANGE_FRACTION = 0.05
#: Without a trend, a series whose noise scale exceeds this fraction of its typical
#: magnitude is "volatile", otherwise "stable".
VOLATILE_NOISE_FRACTION = 0.30
#: Two-sided 95% normal quantile for the Mann-Kendall test.
_Z_95 = 1.959963984540054
#: Consistency constant making a median absolute deviation estimate a normal std.
_MAD_TO_STD = 1.482602218505602

INF = float("inf")
NAN = float("nan")


class Trend(NamedTuple):
    """A robust trend judgement of (a part of) a metric's history; see :func:`judge_trend`."""

    label: str  # "increasing" | "decreasing" | "stable" | "volatile" | "unknown"
    slope: float  # Theil-Sen slope, value units per step (nan if unknown)
    change: float  # slope * step span of the part judged (fitted total change)
    strength: float  # |change| / noise scale (nan if unknown, inf if noise-free)
    tau: float  # Mann-Kendall tau in [-1, 1] (nan if unknown)
    significant: bool  # Mann-Kendall significant at ~95% and strength >= MIN_TREND_STRENGTH


UNKNOWN_TREND = Trend("unknown", NAN, NAN, NAN, NAN, False)


@functools.lru_cache(maxsize=8)
def _pair_indices(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) of all pairs i < j of ``n`` items (cached; n <= history_buckets).

    A small cache: at 128 buckets one entry is 130 KB, and the bucket count of a live metric
    walks through many values, so a large cache would look like memory growth.
    """
    first, second = np.triu_indices(n, k=1)
    return first, second


def _median(values: np.ndarray, scratch: bool = False) -> float:
    """Median of a 1-d array without NaN (``np.median`` with less overhead).

    ``scratch``: ``values`` is a temporary that may be reordered in place (no copy).
    """
    size = values.size
    half = size // 2
    if size <= 256:
        ordered = np.sort(values)
        if size % 2:
            return float(ordered[half])
        return (float(ordered[half - 1]) + float(ordered[half])) / 2.0
    if scratch:
        values.partition(half)
        parted = values
    else:
        parted = np.partition(values, half)
    if size % 2:
        return float(parted[half])
    return (float(parted[:half].max()) + float(parted[half])) / 2.0


#: recent x judged -> (their pairwise differences, whether none is 0): the metrics of a run
#: share their steps, and ``trend("all")`` / ``trend("recent")`` alternate; a few entries
_step_pair_cache: Dict[bytes, Tuple[np.ndarray, bool]] = {}


def _step_pairs(x: np.ndarray, first: np.ndarray, second: np.ndarray) -> Tuple[np.ndarray, bool]:
    """``x[j] - x[i]`` of every pair (read-only) and whether none is 0 (cached)."""
    key = x.tobytes()
    known = _step_pair_cache.get(key)
    if known is not None:
        return known
    dx = x.take(second) - x.take(first)
    dx.flags.writeable = False
    known = (dx, bool(np.count_nonzero(dx) == dx.size))
    if len(_step_pair_cache) >= 4:
        _step_pair_cache.clear()
    _step_pair_cache[key] = known
    return known


def robust_noise(values: np.ndarray) -> float:
    """Noise scale of a series from its successive differences (robust to trend and spikes).

    ``1.4826 * MAD(diff(y)) / sqrt(2)``: equals the std of white noise around any smooth
    curve; a single spike moves only two differences and hence barely the median.
    """
    diffs = np.diff(values)
    if diffs.size == 0:
        return 0.0
    mad = _median(np.abs(diffs - _median(diffs)))
    return _MAD_TO_STD * mad / math.sqrt(2.0)


def judge_trend(
    x: np.ndarray,
    y: np.ndarray,
    *,
    min_strength: float = MIN_TREND_STRENGTH,
    material_fraction: float = MATERIAL_CHANGE_FRACTION,
    volatile_fraction: float = VOLATILE_NOISE_FRACTION,
) -> Trend:
    """Judge the trend of points (x, y) in x order.

    * ``slope``: Theil-Sen (median of pairwise slopes); ``change = slope * (x[-1]-x[0])``.
    * ``noise``: :func:`robust_noise` of y -- the scatter around any smooth curve.
    * ``strength = |change| / noise`` (inf if the series is noise-free and changes).
    * ``tau``, ``significant``: Mann-Kendall S with tie-corrected variance
      ``(n(n-1)(2n+5) - sum t(t-1)(2t+5)) / 18``; significant when ``|Z| > 1.96``
      and ``strength >= min_strength``.
    * ``level = median(|y|)``.

    Label: "increasing"/"decreasing" (by the sign of the slope) when significant and
    ``|change| >= material_fraction * level``; otherwise "volatile" when
    ``noise > volatile_fraction * level``; otherwise "stable".  A series centred on 0
    has level ~ 0 and is therefore "volatile" unless it trends.  Fewer than
    :data:`MIN_TREND_BUCKETS` points, or all at one x: "unknown".
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = int(y.size)
    if n < MIN_TREND_BUCKETS:
        return UNKNOWN_TREND
    first, second = _pair_indices(n)
    dy = y.take(second) - y.take(first)
    dx, steps_differ = _step_pairs(x, first, second)
    if not steps_differ:  # pairs at one step have no slope
        valid = dx != 0
        if not valid.any():
            return UNKNOWN_TREND
        slope = _median(dy[valid] / dx[valid], scratch=True)
    else:
        slope = _median(dy / dx, scratch=True)
    change = slope * float(x[-1] - x[0])
    noise = robust_noise(y)
    if noise > 0:
        strength = abs(change) / noise
    else:
        strength = INF if change != 0 else 0.0
    ordered = np.sort(y)
    repeated = ordered[1:] == ordered[:-1]
    tied = bool(repeated.any())
    if not tied and math.isfinite(ordered[0]) and math.isfinite(ordered[-1]):
        # distinct finite values: no difference is 0 (nor NaN), so one count gives S
        s = float(2 * np.count_nonzero(dy > 0) - dy.size)
    else:
        s = float(np.count_nonzero(dy > 0) - np.count_nonzero(dy < 0))
    tie_term = 0.0
    if tied:  # groups of equal values lower the variance of S
        edges = np.flatnonzero(~repeated) + 1
        ties = np.diff(np.concatenate(([0], edges, [n]))).astype(np.float64)
        tie_term = float((ties * (ties - 1) * (2 * ties + 5)).sum())
    variance = (n * (n - 1) * (2 * n + 5) - tie_term) / 18.0
    z = (s - math.copysign(1.0, s)) / math.sqrt(variance) if variance > 0 and s != 0 else 0.0
    tau = s / (n * (n - 1) / 2.0)
    significant = abs(z) > _Z_95 and strength >= min_strength
    level = _median(np.abs(y))
    if significant and abs(change) >= material_fraction * level and slope != 0:
        label = "increasing" if slope > 0 else "decreasing"
    elif noise > volatile_fraction * level:
        label = "volatile"
    else:
        label = "stable"
    return Trend(label, slope, change, strength, tau, bool(significant))
