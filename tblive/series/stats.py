"""Incremental, bounded-memory statistics of one scalar metric.

One :class:`MetricStats` per (run, tag) serves the post-hoc report, the live daemon and the
in-process callback alike: points arrive one at a time (:meth:`MetricStats.update`, O(1)
amortised, pure Python) or in blocks (:meth:`MetricStats.update_many`, vectorised with numpy,
same result up to floating-point rounding).  Memory per metric is bounded by a constant that
depends only on ``history_buckets`` and ``recent_size``, never on the number of points.

What is kept
------------
* Totals: counts of all / finite / NaN / +-Inf / exactly-zero values, first and last step,
  value and wall time, the first step with a non-finite value.
* Moments over finite values: min, max, mean and sample std (Welford / Chan merging).
* An exponential moving average (EMA) over finite values.
* A recent window: the last ``recent_size`` finite values (and, separately, the last
  ``recent_size`` raw points with their wall times, for stall detection).
* A bounded history: at most ``history_buckets`` buckets, each summarising ``width``
  consecutive points (count, mean, M2, min, max, first/last step, mean step, non-finite
  counts).  Width starts at 1; when the buckets are full, adjacent pairs merge and the width
  doubles.  Trends, the smoothed head/tail and "share of the run outside a band" are computed
  from this history.

Steps are expected to be non-decreasing; a training resume (step going back) is the caller's
to detect and announce with :meth:`MetricStats.rewind`.

Nothing here prints, raises into a training loop on ordinary data, or does I/O.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from typing import Any, Deque, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = ["History", "MetricStats", "RecentFigures", "Trend", "format_number", "judge_trend"]

INF = float("inf")
NAN = float("nan")

#: Share of the run (by finite points) averaged for the smoothed head and tail.
HEAD_TAIL_FRACTION = 0.10
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


class Trend(NamedTuple):
    """A robust trend judgement of (a part of) a metric's history; see :meth:`MetricStats.trend`."""

    label: str  # "increasing" | "decreasing" | "stable" | "volatile" | "unknown"
    slope: float  # Theil-Sen slope, value units per step (nan if unknown)
    change: float  # slope * step span of the part judged (fitted total change)
    strength: float  # |change| / noise scale (nan if unknown, inf if noise-free)
    tau: float  # Mann-Kendall tau in [-1, 1] (nan if unknown)
    significant: bool  # Mann-Kendall significant at ~95% and strength >= MIN_TREND_STRENGTH


class RecentFigures(NamedTuple):
    """Figures over the last ``recent_size`` finite values (nan / 0 when there are none)."""

    count: int
    mean: float
    std: float  # sample std (ddof=1); 0.0 for one value
    min: float
    max: float
    first: float
    last: float


class History(NamedTuple):
    """The bounded history as arrays in step order; buckets without finite values are left out.

    ``steps`` is the mean step of a bucket's finite points, ``means``/``mins``/``maxs`` are
    over its finite values, ``counts`` its number of finite values, ``first_steps`` /
    ``last_steps`` the first and last step of all its points.
    """

    steps: np.ndarray
    means: np.ndarray
    counts: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    first_steps: np.ndarray
    last_steps: np.ndarray


_UNKNOWN_TREND = Trend("unknown", NAN, NAN, NAN, NAN, False)


def _chan(
    n_a: int, mean_a: float, m2_a: float, n_b: int, mean_b: float, m2_b: float
) -> Tuple[int, float, float]:
    """Merge two (count, mean, M2) summaries (Chan et al.)."""
    if n_b == 0:
        return n_a, mean_a, m2_a
    if n_a == 0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


def _merge_summaries(
    counts: np.ndarray, means: np.ndarray, m2s: np.ndarray
) -> Tuple[int, float, float]:
    """Merge many (count, mean, M2) summaries at once."""
    total = int(counts.sum())
    if total == 0:
        return 0, 0.0, 0.0
    mean = float((counts * means).sum() / total)
    m2 = float(m2s.sum() + (counts * (means - mean) ** 2).sum())
    return total, mean, m2


def _leading_mean(counts: np.ndarray, means: np.ndarray, target: int) -> float:
    """Mean of the first ``target`` points of buckets (counts, means), in bucket order.

    The bucket reaching ``target`` contributes only the points still needed (at its mean).
    """
    before = np.cumsum(counts) - counts  # points in earlier buckets
    used = np.clip(target - before, 0, counts).astype(np.float64)
    return float((used * means).sum() / used.sum())


def _none_if_not_finite(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_number(value: float) -> str:
    """Short human form: 3 significant digits, plain notation for 1e-3 <= |x| < 1e6.

    ``1.3094 -> "1.31"``, ``0.01234 -> "0.0123"``, ``1234.5 -> "1234"`` (integer digits are
    never rounded away), ``1.5e-5 -> "1.5e-05"``, ``nan -> "nan"``.
    """
    if not math.isfinite(value):
        return str(float(value))
    if value == 0.0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return "%.3g" % value
    if magnitude >= 100.0:
        return "%.0f" % value
    rounded = float("%.3g" % value)
    exponent = int(math.floor(math.log10(abs(rounded))))
    return "%.*f" % (max(0, 2 - exponent), rounded)


@functools.lru_cache(maxsize=8)
def _pair_indices(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) of all pairs i < j of ``n`` items (cached; n <= history_buckets).

    int32 and a small cache: at 128 buckets one entry is 65 KB, and the bucket count of a
    live metric walks through many values, so a large cache would look like memory growth.
    """
    first, second = np.triu_indices(n, k=1)
    return first.astype(np.int32), second.astype(np.int32)


def _robust_noise(values: np.ndarray) -> float:
    """Noise scale of a series from its successive differences (robust to trend and spikes).

    ``1.4826 * MAD(diff(y)) / sqrt(2)``: equals the std of white noise around any smooth
    curve; a single spike moves only two differences and hence barely the median.
    """
    diffs = np.diff(values)
    if diffs.size == 0:
        return 0.0
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return _MAD_TO_STD * mad / math.sqrt(2.0)


class MetricStats:
    """Bounded incremental statistics of one scalar metric (see the module docstring).

    Memory is O(history_buckets + recent_size) whatever the number of points.
    ``history_buckets`` must be an even number >= 8; ``recent_size`` >= 2;
    ``0 < ema_alpha <= 1``.
    """

    __slots__ = (
        "_buckets_max",
        "_recent_size",
        "_alpha",
        "_width",
        # first / last
        "_first_step",
        "_first_value",
        "_first_wall",
        "_last_step",
        "_last_value",
        "_last_wall",
        "_last_point_wall",
        "_ema",
        "_recent",
        "_raw",
        # closed buckets (parallel lists)
        "_b_n",
        "_b_nf",
        "_b_mean",
        "_b_m2",
        "_b_min",
        "_b_max",
        "_b_nan",
        "_b_inf",
        "_b_zero",
        "_b_first_step",
        "_b_last_step",
        "_b_step_sum",
        "_b_first_nonfinite",
        "_b_last_value",
        "_b_last_wall",
        # aggregate of the closed buckets
        "_c_n",
        "_c_nf",
        "_c_mean",
        "_c_m2",
        "_c_min",
        "_c_max",
        "_c_nan",
        "_c_inf",
        "_c_zero",
        "_c_first_nonfinite",
        # the open bucket
        "_o_n",
        "_o_nf",
        "_o_mean",
        "_o_m2",
        "_o_min",
        "_o_max",
        "_o_nan",
        "_o_inf",
        "_o_zero",
        "_o_first_step",
        "_o_step_sum",
        "_o_first_nonfinite",
    )

    def __init__(
        self, history_buckets: int = 128, recent_size: int = 64, ema_alpha: float = 0.05
    ) -> None:
        if history_buckets < 8 or history_buckets % 2:
            raise ValueError(
                "history_buckets must be an even number >= 8, got %r" % history_buckets
            )
        if recent_size < 2:
            raise ValueError("recent_size must be >= 2, got %r" % recent_size)
        if not 0.0 < ema_alpha <= 1.0:
            raise ValueError("ema_alpha must be in (0, 1], got %r" % ema_alpha)
        self._buckets_max = int(history_buckets)
        self._recent_size = int(recent_size)
        self._alpha = float(ema_alpha)
        self._reset()

    # ------------------------------------------------------------------ state management
    def _reset(self) -> None:
        self._width = 1
        self._first_step: Optional[int] = None
        self._first_value = NAN
        self._first_wall: Optional[float] = None
        self._last_step: Optional[int] = None
        self._last_value = NAN
        self._last_wall: Optional[float] = None
        self._last_point_wall: Optional[float] = None  # wall time of the very last point
        self._ema = NAN
        # (step, value) of the last recent_size finite points
        self._recent: Deque[Tuple[int, float]] = deque(maxlen=self._recent_size)
        # (step, value, wall_time) of the last recent_size points of any kind
        self._raw: Deque[Tuple[int, float, Optional[float]]] = deque(maxlen=self._recent_size)
        self._b_n: List[int] = []
        self._b_nf: List[int] = []
        self._b_mean: List[float] = []
        self._b_m2: List[float] = []
        self._b_min: List[float] = []
        self._b_max: List[float] = []
        self._b_nan: List[int] = []
        self._b_inf: List[int] = []
        self._b_zero: List[int] = []
        self._b_first_step: List[int] = []
        self._b_last_step: List[int] = []
        self._b_step_sum: List[float] = []
        self._b_first_nonfinite: List[Optional[int]] = []
        self._b_last_value: List[float] = []
        self._b_last_wall: List[Optional[float]] = []
        self._c_n = 0
        self._c_nf = 0
        self._c_mean = 0.0
        self._c_m2 = 0.0
        self._c_min = INF
        self._c_max = -INF
        self._c_nan = 0
        self._c_inf = 0
        self._c_zero = 0
        self._c_first_nonfinite: Optional[int] = None
        self._reset_open()

    def _reset_open(self) -> None:
        self._o_n = 0
        self._o_nf = 0
        self._o_mean = 0.0
        self._o_m2 = 0.0
        self._o_min = INF
        self._o_max = -INF
        self._o_nan = 0
        self._o_inf = 0
        self._o_zero = 0
        self._o_first_step = 0
        self._o_step_sum = 0.0
        self._o_first_nonfinite: Optional[int] = None

    def _close_open_bucket(self) -> None:
        """Move the (full) open bucket into the closed history; merge pairs when full."""
        self._b_n.append(self._o_n)
        self._b_nf.append(self._o_nf)
        self._b_mean.append(self._o_mean)
        self._b_m2.append(self._o_m2)
        self._b_min.append(self._o_min)
        self._b_max.append(self._o_max)
        self._b_nan.append(self._o_nan)
        self._b_inf.append(self._o_inf)
        self._b_zero.append(self._o_zero)
        self._b_first_step.append(self._o_first_step)
        self._b_last_step.append(self._last_step)  # type: ignore[arg-type]
        self._b_step_sum.append(self._o_step_sum)
        self._b_first_nonfinite.append(self._o_first_nonfinite)
        self._b_last_value.append(self._last_value)
        self._b_last_wall.append(self._last_point_wall)
        self._c_n += self._o_n
        self._c_nf, self._c_mean, self._c_m2 = _chan(
            self._c_nf, self._c_mean, self._c_m2, self._o_nf, self._o_mean, self._o_m2
        )
        if self._o_min < self._c_min:
            self._c_min = self._o_min
        if self._o_max > self._c_max:
            self._c_max = self._o_max
        self._c_nan += self._o_nan
        self._c_inf += self._o_inf
        self._c_zero += self._o_zero
        if self._c_first_nonfinite is None:
            self._c_first_nonfinite = self._o_first_nonfinite
        self._reset_open()
        if len(self._b_n) >= self._buckets_max:
            self._merge_pairs()

    def _merge_pairs(self) -> None:
        """Merge adjacent closed buckets pairwise; the bucket width doubles."""
        nf = np.asarray(self._b_nf, dtype=np.float64)
        mean = np.asarray(self._b_mean, dtype=np.float64)
        m2 = np.asarray(self._b_m2, dtype=np.float64)
        nf_a, nf_b = nf[0::2], nf[1::2]
        total = nf_a + nf_b
        delta = mean[1::2] - mean[0::2]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac_b = np.where(total > 0, nf_b / np.where(total > 0, total, 1.0), 0.0)
        merged_mean = mean[0::2] + delta * frac_b
        merged_m2 = m2[0::2] + m2[1::2] + delta * delta * nf_a * frac_b

        def pair_sum(items: List[Any]) -> List[Any]:
            return [a + b for a, b in zip(items[0::2], items[1::2])]

        self._b_n = pair_sum(self._b_n)
        self._b_nf = pair_sum(self._b_nf)
        self._b_mean = merged_mean.tolist()
        self._b_m2 = merged_m2.tolist()
        self._b_min = [min(a, b) for a, b in zip(self._b_min[0::2], self._b_min[1::2])]
        self._b_max = [max(a, b) for a, b in zip(self._b_max[0::2], self._b_max[1::2])]
        self._b_nan = pair_sum(self._b_nan)
        self._b_inf = pair_sum(self._b_inf)
        self._b_zero = pair_sum(self._b_zero)
        self._b_first_step = self._b_first_step[0::2]
        self._b_last_step = self._b_last_step[1::2]
        self._b_step_sum = pair_sum(self._b_step_sum)
        self._b_first_nonfinite = [
            a if a is not None else b
            for a, b in zip(self._b_first_nonfinite[0::2], self._b_first_nonfinite[1::2])
        ]
        self._b_last_value = self._b_last_value[1::2]
        self._b_last_wall = [
            b if b is not None else a
            for a, b in zip(self._b_last_wall[0::2], self._b_last_wall[1::2])
        ]
        self._width *= 2

    def _recompute_closed_aggregate(self) -> None:
        counts = np.asarray(self._b_nf, dtype=np.float64)
        self._c_n = sum(self._b_n)
        nf, self._c_mean, self._c_m2 = _merge_summaries(
            counts, np.asarray(self._b_mean, dtype=np.float64), np.asarray(self._b_m2)
        )
        self._c_nf = int(nf)
        self._c_min = min(self._b_min, default=INF)
        self._c_max = max(self._b_max, default=-INF)
        self._c_nan = sum(self._b_nan)
        self._c_inf = sum(self._b_inf)
        self._c_zero = sum(self._b_zero)
        self._c_first_nonfinite = next((s for s in self._b_first_nonfinite if s is not None), None)

    # ------------------------------------------------------------------ feeding
    def update(self, step: int, value: float, wall_time: Optional[float] = None) -> None:
        """Add one point; O(1) amortised, no numpy on this path.

        Non-finite values are counted (NaN vs Inf) and kept as ``last_value`` but do not
        enter min/max/mean/std/EMA/recent/history means.  ``wall_time=None`` (or NaN) leaves
        the wall-time figures unchanged.  Steps should not decrease (see :meth:`rewind`).
        """
        step = int(step)
        value = float(value)
        if self._o_n == 0:
            self._o_first_step = step
            if self._first_step is None:
                self._first_step = step
                self._first_value = value
        self._last_step = step
        self._last_value = value
        if wall_time is not None:
            wall_time = float(wall_time)
            if wall_time == wall_time:
                if self._first_wall is None:
                    self._first_wall = wall_time
                self._last_wall = wall_time
            else:
                wall_time = None  # NaN wall time means "unknown", as in update_many
        self._last_point_wall = wall_time
        self._raw.append((step, value, wall_time))
        if value - value == 0.0:  # finite (nan - nan and inf - inf are nan)
            nf = self._o_nf + 1
            self._o_nf = nf
            mean = self._o_mean
            delta = value - mean
            mean += delta / nf
            self._o_m2 += delta * (value - mean)
            self._o_mean = mean
            if value < self._o_min:
                self._o_min = value
            if value > self._o_max:
                self._o_max = value
            if value == 0.0:
                self._o_zero += 1
            self._o_step_sum += step
            ema = self._ema
            if ema != ema:
                self._ema = value
            else:
                self._ema = ema + self._alpha * (value - ema)
            self._recent.append((step, value))
        else:
            if value != value:
                self._o_nan += 1
            else:
                self._o_inf += 1
            if self._o_first_nonfinite is None:
                self._o_first_nonfinite = step
        n = self._o_n + 1
        self._o_n = n
        if n >= self._width:
            self._close_open_bucket()

    def update_many(
        self,
        steps: Sequence[int],
        values: Sequence[float],
        wall_times: Optional[Sequence[float]] = None,
    ) -> None:
        """Add many points in order; same result as calling :meth:`update` for each.

        Vectorised with numpy (about a few ms for 40k points).  ``wall_times`` may contain
        NaN for "no wall time" (the equivalent of ``wall_time=None``).
        Raises ValueError if the lengths differ.
        """
        step_arr = np.asarray(steps).astype(np.int64, copy=False).ravel()
        value_arr = np.asarray(values, dtype=np.float64).ravel()
        if step_arr.shape != value_arr.shape:
            raise ValueError(
                "update_many: %d steps but %d values" % (step_arr.size, value_arr.size)
            )
        wall_arr: Optional[np.ndarray] = None
        if wall_times is not None:
            wall_arr = np.asarray(wall_times, dtype=np.float64).ravel()
            if wall_arr.shape != value_arr.shape:
                raise ValueError(
                    "update_many: %d wall times but %d values" % (wall_arr.size, value_arr.size)
                )
        total = value_arr.size
        if total == 0:
            return
        if total < 16:
            walls_list = wall_arr.tolist() if wall_arr is not None else [None] * total
            for step, value, wall in zip(step_arr.tolist(), value_arr.tolist(), walls_list):
                self.update(step, value, None if wall is None or wall != wall else wall)
            return

        finite = np.isfinite(value_arr)
        if self._first_step is None:
            self._first_step = int(step_arr[0])
            self._first_value = float(value_arr[0])
        wall_last = self._last_wall
        if wall_arr is not None:
            known = wall_arr[~np.isnan(wall_arr)]
            if known.size:
                if self._first_wall is None:
                    self._first_wall = float(known[0])
                wall_last = float(known[-1])

        # windows
        keep = self._recent_size
        tail_walls: List[Optional[float]]
        if wall_arr is not None:
            tail_walls = [None if w != w else w for w in wall_arr[-keep:].tolist()]
        else:
            tail_walls = [None] * min(keep, total)
        self._raw.extend(zip(step_arr[-keep:].tolist(), value_arr[-keep:].tolist(), tail_walls))
        finite_values = value_arr[finite]
        if finite_values.size:
            finite_steps = step_arr[finite]
            self._recent.extend(zip(finite_steps[-keep:].tolist(), finite_values[-keep:].tolist()))
            self._ema = self._ema_after(self._ema, finite_values)

        # buckets
        pos = 0
        if self._o_n > 0:
            take = min(self._width - self._o_n, total)
            self._absorb_open(step_arr[:take], value_arr[:take], finite[:take])
            pos = take
            if self._o_n >= self._width:
                # the bucket records the "last" figures as of its own last point
                self._last_step = int(step_arr[pos - 1])
                self._last_value = float(value_arr[pos - 1])
                self._last_point_wall = self._wall_at(wall_arr, pos - 1)
                self._close_open_bucket()
        while total - pos >= self._width:
            width = self._width
            room = self._buckets_max - len(self._b_n)
            k = min((total - pos) // width, room)
            end = pos + k * width
            last_walls: List[Optional[float]]
            if wall_arr is None:
                last_walls = [None] * k
            else:
                picked = wall_arr[pos + width - 1 : end : width]
                last_walls = [None if w != w else w for w in picked.tolist()]
            self._append_full_buckets(
                step_arr[pos:end].reshape(k, width),
                value_arr[pos:end].reshape(k, width),
                finite[pos:end].reshape(k, width),
                last_walls,
            )
            pos = end
            if len(self._b_n) >= self._buckets_max:
                self._merge_pairs()
        if pos < total:
            self._absorb_open(step_arr[pos:], value_arr[pos:], finite[pos:])
        self._last_step = int(step_arr[-1])
        self._last_value = float(value_arr[-1])
        self._last_wall = wall_last
        self._last_point_wall = self._wall_at(wall_arr, total - 1)

    @staticmethod
    def _wall_at(wall_arr: Optional[np.ndarray], index: int) -> Optional[float]:
        if wall_arr is None:
            return None
        wall = float(wall_arr[index])
        return None if wall != wall else wall

    def _absorb_open(self, step_arr: np.ndarray, value_arr: np.ndarray, finite: np.ndarray) -> None:
        """Add a block (shorter than what closes the bucket, or exactly it) to the open bucket."""
        count = int(value_arr.size)
        if self._o_n == 0:
            self._o_first_step = int(step_arr[0])
        finite_values = value_arr[finite]
        nf = int(finite_values.size)
        if nf:
            block_mean = float(finite_values.mean())
            block_m2 = float(((finite_values - block_mean) ** 2).sum())
            self._o_nf, self._o_mean, self._o_m2 = _chan(
                self._o_nf, self._o_mean, self._o_m2, nf, block_mean, block_m2
            )
            self._o_min = min(self._o_min, float(finite_values.min()))
            self._o_max = max(self._o_max, float(finite_values.max()))
            self._o_zero += int(np.count_nonzero(finite_values == 0.0))
            self._o_step_sum += float(step_arr[finite].sum(dtype=np.float64))
        if nf < count:
            bad = ~finite
            nan_count = int(np.count_nonzero(np.isnan(value_arr)))
            self._o_nan += nan_count
            self._o_inf += count - nf - nan_count
            if self._o_first_nonfinite is None:
                self._o_first_nonfinite = int(step_arr[int(np.argmax(bad))])
        self._o_n += count

    def _append_full_buckets(
        self,
        steps: np.ndarray,
        values: np.ndarray,
        finite: np.ndarray,
        last_walls: List[Optional[float]],
    ) -> None:
        """Append k full buckets given as (k, width) blocks; the open bucket is empty."""
        nf = finite.sum(axis=1)
        masked = np.where(finite, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(nf > 0, masked.sum(axis=1) / np.maximum(nf, 1), 0.0)
        deviations = np.where(finite, values - means[:, None], 0.0)
        m2s = (deviations * deviations).sum(axis=1)
        mins = np.where(finite, values, INF).min(axis=1)
        maxs = np.where(finite, values, -INF).max(axis=1)
        nans = np.isnan(values).sum(axis=1)
        infs = values.shape[1] - nf - nans
        zeros = (values == 0.0).sum(axis=1)
        step_sums = np.where(finite, steps, 0).sum(axis=1, dtype=np.float64)
        first_nonfinite: List[Optional[int]]
        if bool(finite.all()):
            first_nonfinite = [None] * len(nf)
        else:
            bad = ~finite
            has_bad = bad.any(axis=1)
            where = steps[np.arange(len(nf)), np.argmax(bad, axis=1)]
            first_nonfinite = [
                int(s) if b else None for s, b in zip(where.tolist(), has_bad.tolist())
            ]
        self._b_n.extend([int(values.shape[1])] * len(nf))
        self._b_nf.extend(nf.tolist())
        self._b_mean.extend(means.tolist())
        self._b_m2.extend(m2s.tolist())
        self._b_min.extend(mins.tolist())
        self._b_max.extend(maxs.tolist())
        self._b_nan.extend(nans.tolist())
        self._b_inf.extend(infs.tolist())
        self._b_zero.extend(zeros.tolist())
        self._b_first_step.extend(steps[:, 0].tolist())
        self._b_last_step.extend(steps[:, -1].tolist())
        self._b_step_sum.extend(step_sums.tolist())
        self._b_first_nonfinite.extend(first_nonfinite)
        self._b_last_value.extend(values[:, -1].tolist())
        self._b_last_wall.extend(last_walls)
        # closed aggregate
        self._c_n += int(values.size)
        block_n, block_mean, block_m2 = _merge_summaries(nf.astype(np.float64), means, m2s)
        self._c_nf, self._c_mean, self._c_m2 = _chan(
            self._c_nf, self._c_mean, self._c_m2, block_n, block_mean, block_m2
        )
        self._c_min = min(self._c_min, float(mins.min()))
        self._c_max = max(self._c_max, float(maxs.max()))
        self._c_nan += int(nans.sum())
        self._c_inf += int(infs.sum())
        self._c_zero += int(zeros.sum())
        if self._c_first_nonfinite is None:
            self._c_first_nonfinite = next((s for s in first_nonfinite if s is not None), None)

    def _ema_after(self, ema: float, finite_values: np.ndarray) -> float:
        """EMA after feeding ``finite_values`` one by one (closed form, truncated tail)."""
        alpha = self._alpha
        if ema != ema:
            ema = float(finite_values[0])
            finite_values = finite_values[1:]
        count = finite_values.size
        if count == 0:
            return ema
        if alpha >= 1.0:
            return float(finite_values[-1])
        decay = 1.0 - alpha
        # terms older than this contribute less than 1e-17 of the result
        horizon = int(math.ceil(math.log(1e-17) / math.log(decay))) + 1
        used = finite_values[-horizon:]
        powers = decay ** np.arange(used.size - 1, -1, -1, dtype=np.float64)
        carried = decay**count * ema if count < horizon else 0.0
        return float(carried + alpha * float(np.dot(powers, used)))

    def rewind(self, step: int) -> None:
        """Forget every point with step >= ``step`` (a training resume from a checkpoint).

        Exact while the bucket width is 1.  Afterwards whole buckets are dropped: every
        closed bucket whose last step is >= ``step`` (this includes a bucket straddling
        ``step``, so a few earlier points may go too) and the open bucket.  Totals, moments,
        non-finite and zero counts are recomputed from the remaining buckets; the windows
        keep only points up to the last kept step; the EMA is recomputed from the remaining
        bucket means (exact at width 1, where each bucket is one point).  Steps are assumed
        non-decreasing between rewinds.
        """
        step = int(step)
        if self._last_step is None or self._last_step < step:
            return
        keep = 0
        for last in self._b_last_step:
            if last >= step:
                break
            keep += 1
        if keep == 0:
            self._reset()
            return
        width = self._width
        first_step, first_value, first_wall = self._first_step, self._first_value, self._first_wall
        buckets = [
            name for name in self.__slots__ if name.startswith("_b_")
        ]  # parallel lists to cut
        for name in buckets:
            setattr(self, name, getattr(self, name)[:keep])
        self._width = width
        self._reset_open()
        self._recompute_closed_aggregate()
        self._first_step, self._first_value, self._first_wall = first_step, first_value, first_wall
        self._last_step = self._b_last_step[-1]
        self._last_value = self._b_last_value[-1]
        self._last_point_wall = self._b_last_wall[-1]
        self._last_wall = next((w for w in reversed(self._b_last_wall) if w is not None), None)
        limit = self._last_step
        size = self._recent_size
        if self._width == 1:
            # each bucket is one point: rebuild the windows exactly
            recent = [
                (s, m) for s, m, nf in zip(self._b_first_step, self._b_mean, self._b_nf) if nf
            ]
            self._recent = deque(recent[-size:], maxlen=size)
            self._raw = deque(
                zip(
                    self._b_first_step[-size:],
                    self._b_last_value[-size:],
                    self._b_last_wall[-size:],
                ),
                maxlen=size,
            )
        else:
            self._recent = deque((p for p in self._recent if p[0] <= limit), maxlen=size)
            self._raw = deque((p for p in self._raw if p[0] <= limit), maxlen=size)
        ema = NAN
        decay = 1.0 - self._alpha
        for nf, mean in zip(self._b_nf, self._b_mean):
            if nf == 0:
                continue
            if ema != ema:
                # the first finite value started the EMA; within the bucket it then decays
                ema = mean
                weight = 1.0 - decay ** (nf - 1)
            else:
                weight = 1.0 - decay**nf
            ema += weight * (mean - ema)
        self._ema = ema

    # ------------------------------------------------------------------ totals
    @property
    def count(self) -> int:
        """All points kept (finite and non-finite)."""
        return self._c_n + self._o_n

    @property
    def finite_count(self) -> int:
        return self._c_nf + self._o_nf

    @property
    def nan_count(self) -> int:
        return self._c_nan + self._o_nan

    @property
    def inf_count(self) -> int:
        return self._c_inf + self._o_inf

    @property
    def nonfinite_count(self) -> int:
        return self.nan_count + self.inf_count

    @property
    def first_nonfinite_step(self) -> Optional[int]:
        if self._c_first_nonfinite is not None:
            return self._c_first_nonfinite
        return self._o_first_nonfinite

    @property
    def zero_count(self) -> int:
        """Values exactly equal to 0.0."""
        return self._c_zero + self._o_zero

    @property
    def first_step(self) -> Optional[int]:
        return self._first_step

    @property
    def last_step(self) -> Optional[int]:
        return self._last_step

    @property
    def first_value(self) -> float:
        return self._first_value

    @property
    def last_value(self) -> float:
        """The last value as logged (may be NaN/Inf); NaN when there are no points."""
        return self._last_value

    @property
    def first_wall_time(self) -> Optional[float]:
        return self._first_wall

    @property
    def last_wall_time(self) -> Optional[float]:
        return self._last_wall

    @property
    def width(self) -> int:
        """Points per history bucket (1, then doubling as the run grows)."""
        return self._width

    @property
    def bucket_count(self) -> int:
        """History buckets in use (closed ones plus a non-empty open one)."""
        return len(self._b_n) + (1 if self._o_n else 0)

    # ------------------------------------------------------------------ moments
    def _moments(self) -> Tuple[int, float, float]:
        return _chan(self._c_nf, self._c_mean, self._c_m2, self._o_nf, self._o_mean, self._o_m2)

    @property
    def min(self) -> float:
        return min(self._c_min, self._o_min) if self.finite_count else NAN

    @property
    def max(self) -> float:
        return max(self._c_max, self._o_max) if self.finite_count else NAN

    @property
    def mean(self) -> float:
        n, mean, _ = self._moments()
        return mean if n else NAN

    @property
    def std(self) -> float:
        """Sample std (ddof=1) of finite values; 0.0 for one value, NaN for none."""
        n, _, m2 = self._moments()
        if n == 0:
            return NAN
        if n == 1:
            return 0.0
        return math.sqrt(max(m2, 0.0) / (n - 1))

    @property
    def ema(self) -> float:
        return self._ema

    # ------------------------------------------------------------------ recent window
    @property
    def recent(self) -> RecentFigures:
        values = self.recent_values()
        if values.size == 0:
            return RecentFigures(0, NAN, NAN, NAN, NAN, NAN, NAN)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return RecentFigures(
            int(values.size),
            float(values.mean()),
            std,
            float(values.min()),
            float(values.max()),
            float(values[0]),
            float(values[-1]),
        )

    def recent_values(self) -> np.ndarray:
        """The last ``recent_size`` finite values in arrival order (for sparklines)."""
        return np.fromiter((v for _, v in self._recent), dtype=np.float64, count=len(self._recent))

    def recent_steps(self) -> np.ndarray:
        """Steps of :meth:`recent_values`."""
        return np.fromiter((s for s, _ in self._recent), dtype=np.int64, count=len(self._recent))

    def median_wall_gap(self) -> Optional[float]:
        """Median wall-time gap between consecutive points of the recent raw window.

        Points without a wall time are skipped; None when fewer than two have one.
        """
        walls = [w for _, _, w in self._raw if w is not None]
        if len(walls) < 2:
            return None
        return float(np.median(np.diff(np.asarray(walls, dtype=np.float64))))

    # ------------------------------------------------------------------ history
    def _history_arrays(self, include_partial: bool) -> History:
        nf = list(self._b_nf)
        means = list(self._b_mean)
        mins = list(self._b_min)
        maxs = list(self._b_max)
        step_sums = list(self._b_step_sum)
        first_steps = list(self._b_first_step)
        last_steps = list(self._b_last_step)
        if self._o_nf and (include_partial or 2 * self._o_nf >= self._width):
            nf.append(self._o_nf)
            means.append(self._o_mean)
            mins.append(self._o_min)
            maxs.append(self._o_max)
            step_sums.append(self._o_step_sum)
            first_steps.append(self._o_first_step)
            last_steps.append(self._last_step)
        counts = np.asarray(nf, dtype=np.int64)
        keep = counts > 0
        counts = counts[keep]
        return History(
            steps=np.asarray(step_sums, dtype=np.float64)[keep] / np.maximum(counts, 1),
            means=np.asarray(means, dtype=np.float64)[keep],
            counts=counts,
            mins=np.asarray(mins, dtype=np.float64)[keep],
            maxs=np.asarray(maxs, dtype=np.float64)[keep],
            first_steps=np.asarray(first_steps, dtype=np.int64)[keep],
            last_steps=np.asarray(last_steps, dtype=np.int64)[keep],
        )

    def history(self) -> History:
        """The bounded history (<= history_buckets entries, step order, finite values only).

        Includes the open (partly filled) bucket when it holds finite values.
        """
        return self._history_arrays(include_partial=True)

    def head_value(self) -> float:
        """Smoothed start: mean of the first ~10% of finite points.

        From the history: whole buckets, then the needed share of the next one at its mean
        (at width 1 this is exactly the mean of the first 10% of points, at least one).
        """
        hist = self.history()
        if hist.counts.size == 0:
            return NAN
        target = max(1, int(math.ceil(HEAD_TAIL_FRACTION * self.finite_count)))
        return _leading_mean(hist.counts, hist.means, target)

    def tail_value(self) -> float:
        """Smoothed end: mean of the last ~10% of finite points.

        Taken from the recent window when it holds enough points (exact), otherwise from
        history buckets counted back from the end (the last one used contributes only the
        points still needed, at its mean).
        """
        total = self.finite_count
        if total == 0:
            return NAN
        target = max(1, int(math.ceil(HEAD_TAIL_FRACTION * total)))
        if target <= len(self._recent):
            values = self.recent_values()[-target:]
            return float(values.mean())
        hist = self.history()
        return _leading_mean(hist.counts[::-1], hist.means[::-1], target)

    def relative_change(self) -> Optional[float]:
        """(tail - head) / |head|; None when there is no data or head is 0."""
        head = self.head_value()
        tail = self.tail_value()
        if not (math.isfinite(head) and math.isfinite(tail)) or head == 0.0:
            return None
        return (tail - head) / abs(head)

    def fraction_outside(self, low: float, high: float) -> float:
        """Share of finite points whose *history bucket mean* lies outside ``[low, high]``.

        Each bucket counts with its number of finite points (so at width 1 this is exactly
        the share of finite values outside the band; later it is the share of the run
        spent, on bucket average, outside it).  NaN when there are no finite points.
        """
        hist = self.history()
        total = int(hist.counts.sum())
        if total == 0:
            return NAN
        outside = (hist.means < low) | (hist.means > high)
        return float(hist.counts[outside].sum() / total)

    # ------------------------------------------------------------------ trend
    def trend(
        self,
        part: str = "all",
        *,
        min_strength: float = MIN_TREND_STRENGTH,
        material_fraction: float = MATERIAL_CHANGE_FRACTION,
        volatile_fraction: float = VOLATILE_NOISE_FRACTION,
    ) -> Trend:
        """Robust trend of the bucket means over the whole history or its recent part.

        ``part="all"`` judges every history bucket; ``part="recent"`` the buckets in the
        last 25% of the history's step span (at least the last 4 buckets).  An open bucket
        less than half full is left out.  With fewer than 4 buckets the label is "unknown".

        On the bucket series (x = bucket mean step, y = bucket mean):

        * ``slope``: Theil-Sen (median of pairwise slopes); ``change = slope * (x[-1]-x[0])``.
        * ``noise``: 1.4826 * MAD of successive differences / sqrt(2) -- the scatter of the
          series around any smooth curve, robust to a spike and to the trend itself.
        * ``strength = |change| / noise`` (inf if the series is noise-free and changes).
        * ``tau``, ``significant``: Mann-Kendall S with tie-corrected variance
          ``(n(n-1)(2n+5) - sum t(t-1)(2t+5)) / 18``; significant when ``|Z| > 1.96``
          and ``strength >= min_strength``.
        * ``level = median(|y|)``.

        Label: "increasing"/"decreasing" (by the sign of the slope) when significant and
        ``|change| >= material_fraction * level``; otherwise "volatile" when
        ``noise > volatile_fraction * level``; otherwise "stable".  A series centred on 0
        has level ~ 0 and is therefore "volatile" unless it trends.
        """
        if part not in ("all", "recent"):
            raise ValueError("trend part must be 'all' or 'recent', got %r" % part)
        hist = self._history_arrays(include_partial=False)
        x, y = hist.steps, hist.means
        if part == "recent" and x.size:
            cutoff = x[-1] - RECENT_SPAN_FRACTION * (x[-1] - x[0])
            start = min(int(np.searchsorted(x, cutoff, side="left")), max(0, x.size - 4))
            x, y = x[start:], y[start:]
        return judge_trend(
            x,
            y,
            min_strength=min_strength,
            material_fraction=material_fraction,
            volatile_fraction=volatile_fraction,
        )

    # ------------------------------------------------------------------ output
    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready summary; NaN/Inf become None."""
        change = self.relative_change()
        return {
            "count": self.count,
            "finite_count": self.finite_count,
            "first_step": self._first_step,
            "last_step": self._last_step,
            "first_value": _none_if_not_finite(self._first_value),
            "last_value": _none_if_not_finite(self._last_value),
            "min": _none_if_not_finite(self.min),
            "max": _none_if_not_finite(self.max),
            "mean": _none_if_not_finite(self.mean),
            "std": _none_if_not_finite(self.std),
            "ema": _none_if_not_finite(self._ema),
            "nonfinite_count": self.nonfinite_count,
            "nan_count": self.nan_count,
            "inf_count": self.inf_count,
            "first_nonfinite_step": self.first_nonfinite_step,
            "zero_count": self.zero_count,
            "head": _none_if_not_finite(self.head_value()),
            "tail": _none_if_not_finite(self.tail_value()),
            "change_pct": None if change is None else _none_if_not_finite(100.0 * change),
            "trend": self.trend("all").label,
            "trend_recent": self.trend("recent").label,
        }

    def format_change(self, name: str) -> str:
        """``"Entropy: 1.31 → 2.17 (+65.8%)"`` from the smoothed head and tail.

        Without finite points: ``"Entropy: no data"``; when the change is undefined (head
        is 0) the percentage is left out.
        """
        head = self.head_value()
        tail = self.tail_value()
        if not (math.isfinite(head) and math.isfinite(tail)):
            return "%s: no data" % name
        text = "%s: %s \u2192 %s" % (name, format_number(head), format_number(tail))
        change = self.relative_change()
        if change is not None:
            percent = 100.0 * change
            text += " (%+.1f%%)" % (0.0 if abs(percent) < 0.05 else percent)  # no "-0.0%"
        return text

    def __repr__(self) -> str:
        return "MetricStats(count=%d, last_step=%r, mean=%s, width=%d)" % (
            self.count,
            self._last_step,
            format_number(self.mean),
            self._width,
        )


def judge_trend(
    x: np.ndarray,
    y: np.ndarray,
    *,
    min_strength: float = MIN_TREND_STRENGTH,
    material_fraction: float = MATERIAL_CHANGE_FRACTION,
    volatile_fraction: float = VOLATILE_NOISE_FRACTION,
) -> Trend:
    """Judge the trend of points (x, y) in x order; the rule of :meth:`MetricStats.trend`."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = int(y.size)
    if n < MIN_TREND_BUCKETS:
        return _UNKNOWN_TREND
    first, second = _pair_indices(n)
    dx = x[second] - x[first]
    dy = y[second] - y[first]
    valid = dx != 0
    if not valid.any():
        return _UNKNOWN_TREND
    slope = float(np.median(dy[valid] / dx[valid]))
    change = slope * float(x[-1] - x[0])
    noise = _robust_noise(y)
    if noise > 0:
        strength = abs(change) / noise
    else:
        strength = INF if change != 0 else 0.0
    s = float(np.sign(dy).sum())
    _, tie_counts = np.unique(y, return_counts=True)
    ties = tie_counts.astype(np.float64)
    variance = (
        n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())
    ) / 18.0
    z = (s - math.copysign(1.0, s)) / math.sqrt(variance) if variance > 0 and s != 0 else 0.0
    tau = s / (n * (n - 1) / 2.0)
    significant = abs(z) > _Z_95 and strength >= min_strength
    level = float(np.median(np.abs(y)))
    if significant and abs(change) >= material_fraction * level and slope != 0:
        label = "increasing" if slope > 0 else "decreasing"
    elif noise > volatile_fraction * level:
        label = "volatile"
    else:
        label = "stable"
    return Trend(label, slope, change, strength, tau, bool(significant))
