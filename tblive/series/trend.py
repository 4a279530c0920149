"""The robust trend test of a metric's bucketed history (Theil-Sen slope + Mann-Kendall).

:func:`judge_trend` labels points ``(x, y)`` in x order as "increasing", "decreasing",
"stable", "volatile" or "unknown" (fewer than :data:`MIN_TREND_BUCKETS` points).
:meth:`tblive.series.stats.MetricStats.trend` applies it to the bucket means of a metric
and memoises the result until the statistics change.  Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import math
from typing import List, NamedTuple, Tuple

import numpy as np

__all__ = [
    "MATERIAL_CHANGE_FRACTION",
    "MIN_TREND_BUCKETS",
    "MIN_TREND_STRENGTH",
    "RECENT_SPAN_FRACTION",
    "VOLATILE_NOISE_FRACTION",
    "Trend",
    "judge_trend",
    "judge_trends",
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


def _median(values: np.ndarray) -> float:
    """Median of a 1-d array without NaN (``np.median`` with less overhead)."""
    size = values.size
    half = size // 2
    if size <= 256:
        ordered = np.sort(values)
        if size % 2:
            return float(ordered[half])
        return (float(ordered[half - 1]) + float(ordered[half])) / 2.0
    parted = np.partition(values, half)
    if size % 2:
        return float(parted[half])
    return (float(parted[:half].max()) + float(parted[half])) / 2.0


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
    dx = x.take(second) - x.take(first)
    if np.count_nonzero(dx) < dx.size:  # pairs at one step have no slope
        valid = dx != 0
        if not valid.any():
            return UNKNOWN_TREND
        slope = _median(dy[valid] / dx[valid])
    else:
        slope = _median(dy / dx)
    change = slope * float(x[-1] - x[0])
    noise = robust_noise(y)
    if noise > 0:
        strength = abs(change) / noise
    else:
        strength = INF if change != 0 else 0.0
    s = float(np.count_nonzero(dy > 0) - np.count_nonzero(dy < 0))
    ordered = np.sort(y)
    repeated = ordered[1:] == ordered[:-1]
    tie_term = 0.0
    if repeated.any():  # groups of equal values lower the variance of S
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


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Median of each row of a 2-d array without NaN; the same numbers as :func:`_median`."""
    size = values.shape[1]
    half = size // 2
    if size % 2:
        return np.partition(values, half, axis=1)[:, half]
    parted = np.partition(values, half, axis=1)  # one kth: several times faster than two
    return (parted[:, :half].max(axis=1) + parted[:, half]) / 2.0


def judge_trends(x: np.ndarray, y: np.ndarray) -> List[Trend]:
    """:func:`judge_trend` (default thresholds) of each row of the (m, n) arrays ``x``, ``y``.

    Many series of one length at once, for a run's worth of metrics: the numbers are the
    ones :func:`judge_trend` gives row by row (order statistics and the same element-wise
    arithmetic); rows with pairs at one step or tied values go through :func:`judge_trend`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n = y.shape
    if n < MIN_TREND_BUCKETS or m == 0:
        return [judge_trend(x[row], y[row]) for row in range(m)]
    first, second = _pair_indices(n)
    dy = y.take(second, axis=1) - y.take(first, axis=1)
    if (x == x[0]).all():  # one set of steps for every series (metrics logged together)
        dx = np.broadcast_to(x[0].take(second) - x[0].take(first), dy.shape)
    else:
        dx = x.take(second, axis=1) - x.take(first, axis=1)
    ordered = np.sort(y, axis=1)
    special = (dx == 0).any(axis=1) | (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    slopes = _row_medians(dy / np.where(dx == 0, 1.0, dx))
    diffs = np.diff(y, axis=1)
    mads = _row_medians(np.abs(diffs - _row_medians(diffs)[:, None]))
    noises = _MAD_TO_STD * mads / math.sqrt(2.0)
    levels = _row_medians(np.abs(y))
    signs = np.count_nonzero(dy > 0, axis=1) - np.count_nonzero(dy < 0, axis=1)
    variance = (n * (n - 1) * (2 * n + 5) - 0.0) / 18.0
    results = []
    for row in range(m):
        if special[row]:
            results.append(judge_trend(x[row], y[row]))
            continue
        slope = float(slopes[row])
        change = slope * float(x[row, -1] - x[row, 0])
        noise = float(noises[row])
        if noise > 0:
            strength = abs(change) / noise
        else:
            strength = INF if change != 0 else 0.0
        s = float(signs[row])
        z = (s - math.copysign(1.0, s)) / math.sqrt(variance) if variance > 0 and s != 0 else 0.0
        tau = s / (n * (n - 1) / 2.0)
        significant = abs(z) > _Z_95 and strength >= MIN_TREND_STRENGTH
        level = float(levels[row])
        if significant and abs(change) >= MATERIAL_CHANGE_FRACTION * level and slope != 0:
            label = "increasing" if slope > 0 else "decreasing"
        elif noise > VOLATILE_NOISE_FRACTION * level:
            label = "volatile"
        else:
            label = "stable"
        results.append(Trend(label, slope, change, strength, tau, bool(significant)))
    return results
