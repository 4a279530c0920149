"""Incremental, bounded-memory statistics of one scalar metric.

One :class:`MetricStats` per (run, tag) serves the post-hoc report, the live daemon and the
in-process callback alike: points arrive one at a time (:meth:`MetricStats.update`, O(1)
amortised, pure Python) or in blocks (:meth:`MetricStats.update_many`, vectorised with numpy,
same result up to floating-point rounding).  Memory per metric is bounded by a constant that
depends only on ``history_buckets`` and ``recent_size`` (at the defaults about 8 KB for values
read from event files, which are float32, and 10 KB for arbitrary float64 values), never on
the number of points.

What is kept
------------
* Totals: counts of all / finite / NaN / +-Inf / exactly-zero values, first and last step
  and value, the first step with a non-finite value.
* Moments over finite values: min, max, mean and sample std (Welford / Chan merging).
* An exponential moving average (EMA) over finite values.
* Two windows: the last ``recent_size`` finite values (the *recent* window the rules read)
  and the last ``recent_size`` points of any kind with their steps (the *raw* window, which
  makes recent rewinds exact).  Until the first non-finite value both are one array; steps
  are held in int32 until one does not fit.
* A bounded history: at most ``history_buckets`` buckets in one numpy record array, each
  summarising ``width`` consecutive points (finite/NaN/zero counts, mean, M2, min, max, step
  sum, last step and value; each field as narrow as holds every figure exactly, see
  :data:`tblive.series.buckets.NARROW_BUCKET`), plus the open bucket still filling.  Width
  starts at 1; when the buckets are full, adjacent pairs merge and the width doubles.
  Trends, the smoothed head/tail and "share of the run outside a band" are computed from
  this history.

Rewinds (a training restart)
----------------------------
:meth:`MetricStats.rewind` forgets every point at a step >= the given one and returns how
many points it discarded.  The statistics then describe an exact *prefix* of the points fed,
figure for figure as if only that prefix had been fed at the current bucket width:

* The prefix is exactly the points at steps below the cut when the cut falls on a bucket
  boundary, or when the bucket holding the cut (closed or still filling) started within the
  raw window (its kept points are re-read from the window) -- always the case while the
  width is at most ``recent_size``.
* Otherwise a bucket cannot be split: the whole bucket holding the cut goes, so up to
  ``width - 1`` points before the cut are discarded too (and counted in the return value).
* The recent window keeps the finite values of the prefix it still holds, so it may hold
  fewer than ``recent_size`` values until new points arrive.  The EMA is exact when every
  discarded point was in the raw window; otherwise it is recomputed from the bucket means.

Steps are expected to be non-decreasing between rewinds (:class:`tblive.series.feed.SeriesFeed`
guarantees it).  Every change bumps :attr:`MetricStats.version`; trends, head and tail are
memoised until the next change, and :meth:`MetricStats.cached` memoises a caller's figure the
same way.

Nothing here prints, raises into a training loop on ordinary data, or does I/O.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from tblive.series.buckets import (
    BUCKET,
    NARROW_BUCKET,
    History,
    aggregate,
    append_blocks,
    chan,
    ema_after,
    ema_of_buckets,
    f32_exact_array,
    fit,
    fit_scalars,
    merge_pairs,
)
from tblive.series.figures import MetricFigures, RecentFigures
from tblive.series.trend import (
    Trend,
    judge_trend,
)
from tblive.textfmt import format_number

__all__ = ["History", "MetricStats", "RecentFigures", "Trend", "format_number", "judge_trend"]

INF = float("inf")
NAN = float("nan")

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1

#: Below this many points, :meth:`MetricStats.update_many` feeds them one by one (cheaper).
_LOOP_BELOW = 24


class MetricStats(MetricFigures):
    """Bounded incremental statistics of one scalar metric (see the module docstring).

    ``history_buckets`` must be an even number >= 8; ``recent_size`` >= 2;
    ``0 < ema_alpha <= 1``.
    """

    __slots__ = (
        "_bmax",
        "_rsize",
        "_alpha",
        "_width",
        "version",
        "_memo",  # memoised figures (see MetricFigures), valid while _m_version == version
        "_m_version",
        "_m_head",
        "_m_tail",
        "_m_recent",
        "_m_all",
        "_m_part",
        "_n",
        "_first_step",
        "_first_value",
        "_last_step",
        "_last_value",
        "_ema",
        "_bad_step",  # first non-finite point: step and ordinal
        "_bad_pos",
        # raw window (ring of the last recent_size points) and recent window (finite values)
        "_rs",
        "_rv",
        "_rpos",
        "_rlen",
        "_fv",
        "_fpos",
        "_flen",
        # closed buckets and their aggregate
        "_rec",
        "_nb",
        "_c_nf",
        "_c_mean",
        "_c_m2",
        "_c_min",
        "_c_max",
        "_c_nan",
        "_c_zero",
        # the open bucket
        "_o_n",
        "_o_nf",
        "_o_mean",
        "_o_m2",
        "_o_min",
        "_o_max",
        "_o_nan",
        "_o_zero",
        "_o_step_sum",
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
        self._bmax = int(history_buckets)
        self._rsize = int(recent_size)
        self._alpha = float(ema_alpha)
        self.version = 0
        self._rs = np.zeros(self._rsize, np.int32)  # widened to int64 by the first big step
        self._rv = np.zeros(self._rsize, np.float64)
        # the recent window is the raw window's values until a non-finite value arrives
        self._fv = self._rv
        self._rec = np.zeros(0, NARROW_BUCKET)
        self._reset()

    # ------------------------------------------------------------------ state management
    def _reset(self) -> None:
        self._memo: Optional[Dict[Any, Any]] = None
        self._m_version = -1
        self._width = 1
        self._n = 0
        self._first_step: Optional[int] = None
        self._first_value = NAN
        self._last_step: Optional[int] = None
        self._last_value = NAN
        self._ema = NAN
        self._bad_step: Optional[int] = None
        self._bad_pos = 0
        self._rpos = self._rlen = 0
        self._fpos = self._flen = 0
        self._nb = 0
        self._c_nf = self._c_nan = self._c_zero = 0
        self._c_mean = self._c_m2 = 0.0
        self._c_min, self._c_max = INF, -INF
        self._reset_open()

    def _reset_open(self) -> None:
        self._o_n = self._o_nf = self._o_nan = self._o_zero = 0
        self._o_mean = self._o_m2 = self._o_step_sum = 0.0
        self._o_min, self._o_max = INF, -INF

    def _changed(self) -> None:
        self.version += 1

    def _grow(self, needed: int) -> None:
        if needed > self._rec.shape[0]:
            size = min(self._bmax, -(-needed // 8) * 8)
            rec = np.zeros(size, self._rec.dtype)
            rec[: self._nb] = self._rec[: self._nb]
            self._rec = rec

    def _close_open_bucket(self) -> None:
        """Move the (full) open bucket into the closed history; merge pairs when full."""
        nb = self._nb
        self._grow(nb + 1)
        self._rec = fit_scalars(
            self._rec, (self._o_min, self._o_max, self._last_value), self._last_step, self._o_n
        )
        self._rec[nb] = (
            self._last_step,
            self._o_step_sum,
            self._o_mean,
            self._o_m2,
            self._o_min,
            self._o_max,
            self._last_value,
            self._o_nf,
            self._o_nan,
            self._o_zero,
        )
        self._nb = nb + 1
        self._c_nf, self._c_mean, self._c_m2 = chan(
            self._c_nf, self._c_mean, self._c_m2, self._o_nf, self._o_mean, self._o_m2
        )
        if self._o_min < self._c_min:
            self._c_min = self._o_min
        if self._o_max > self._c_max:
            self._c_max = self._o_max
        self._c_nan += self._o_nan
        self._c_zero += self._o_zero
        self._reset_open()
        if self._nb >= self._bmax:
            self._merge_pairs()

    def _merge_pairs(self) -> None:
        """Merge adjacent closed buckets pairwise; the bucket width doubles."""
        self._rec = fit(self._rec, counts=2 * self._width)
        self._nb = merge_pairs(self._rec, self._nb)
        self._width *= 2

    def _recompute_closed_aggregate(self) -> None:
        (
            self._c_nf,
            self._c_mean,
            self._c_m2,
            self._c_min,
            self._c_max,
            self._c_nan,
            self._c_zero,
        ) = aggregate(self._rec[: self._nb])

    # ------------------------------------------------------------------ feeding
    def update(self, step: int, value: float, wall_time: Optional[float] = None) -> None:
        """Add one point; O(1) amortised, no numpy arithmetic on this path.

        Non-finite values are counted (NaN vs Inf) and kept as ``last_value`` but do not
        enter min/max/mean/std/EMA/recent/history means.  ``wall_time`` is accepted for the
        sink protocol and ignored.  Steps should not decrease (see :meth:`rewind`).
        """
        step = int(step)
        value = float(value)
        if self._first_step is None:
            self._first_step = step
            self._first_value = value
        self._last_step = step
        self._last_value = value
        pos = self._rpos
        if self._fv is self._rv and value - value != 0.0:  # the first non-finite value
            self._fv = self._rv.copy()
        if (step > _I32_MAX or step < _I32_MIN) and self._rs.dtype != np.int64:
            self._rs = self._rs.astype(np.int64)
        self._rs[pos] = step
        self._rv[pos] = value
        self._rpos = (pos + 1) % self._rsize
        if self._rlen < self._rsize:
            self._rlen += 1
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
            self._ema = value if ema != ema else ema + self._alpha * (value - ema)
            pos = self._fpos
            self._fv[pos] = value
            self._fpos = (pos + 1) % self._rsize
            if self._flen < self._rsize:
                self._flen += 1
        else:
            if value != value:
                self._o_nan += 1
            if self._bad_step is None:
                self._bad_step, self._bad_pos = step, self._n
        self._n += 1
        self._o_n += 1
        if self._o_n >= self._width:
            self._close_open_bucket()
        self.version += 1

    def update_many(
        self,
        steps: Sequence[int],
        values: Sequence[float],
        wall_times: Optional[Sequence[float]] = None,
    ) -> None:
        """Add many points in order; same result as calling :meth:`update` for each.

        Vectorised with numpy.  ``wall_times`` is accepted for the sink protocol and
        ignored.  Raises ValueError if the lengths differ.
        """
        step_arr = np.asarray(steps).astype(np.int64, copy=False).ravel()
        value_arr = np.asarray(values, dtype=np.float64).ravel()
        if step_arr.shape != value_arr.shape:
            raise ValueError(
                "update_many: %d steps but %d values" % (step_arr.size, value_arr.size)
            )
        if wall_times is not None and np.size(wall_times) != value_arr.size:
            raise ValueError(
                "update_many: %d wall times but %d values" % (np.size(wall_times), value_arr.size)
            )
        total = value_arr.size
        if total < _LOOP_BELOW:
            update = self.update
            for step, value in zip(step_arr.tolist(), value_arr.tolist()):
                update(step, value)
            return
        finite = np.isfinite(value_arr)
        all_finite = bool(finite.all())
        if self._first_step is None:
            self._first_step = int(step_arr[0])
            self._first_value = float(value_arr[0])
        if not all_finite and self._bad_step is None:
            index = int(np.argmax(~finite))
            self._bad_step, self._bad_pos = int(step_arr[index]), self._n + index
        if not all_finite and self._fv is self._rv:
            self._fv = self._rv.copy()
        self._put_raw(step_arr, value_arr)
        finite_values = value_arr if all_finite else value_arr[finite]
        if finite_values.size:
            if self._fv is self._rv:  # the raw window holds the recent values already
                self._fpos, self._flen = self._rpos, self._rlen
            else:
                self._put_recent(finite_values)
            self._ema = ema_after(self._ema, finite_values, self._alpha)

        pos = 0
        width = self._width
        if self._o_n > 0:
            take = min(width - self._o_n, total)
            self._absorb_open(step_arr[:take], value_arr[:take], finite[:take])
            pos = take
            if self._o_n >= width:
                # the bucket records the "last" figures as of its own last point
                self._last_step = int(step_arr[pos - 1])
                self._last_value = float(value_arr[pos - 1])
                self._close_open_bucket()
        while total - pos >= self._width:
            if self._nb == 0:
                # an empty history takes the block at the width it would end at after merging
                while (total - pos) // self._width >= self._bmax:
                    self._width *= 2
            width = self._width
            k = min((total - pos) // width, self._bmax - self._nb)
            end = pos + k * width
            self._append_full_buckets(
                step_arr[pos:end].reshape(k, width),
                value_arr[pos:end].reshape(k, width),
                finite[pos:end].reshape(k, width),
                all_finite,
            )
            pos = end
            if self._nb >= self._bmax:
                self._merge_pairs()
        if pos < total:
            self._absorb_open(step_arr[pos:], value_arr[pos:], finite[pos:])
        self._n += total
        self._last_step = int(step_arr[-1])
        self._last_value = float(value_arr[-1])
        self._changed()

    def _put_raw(self, steps: np.ndarray, values: np.ndarray) -> None:
        size = self._rsize
        count = min(size, steps.size)
        if self._rs.dtype != np.int64 and (
            int(steps.min()) < _I32_MIN or int(steps.max()) > _I32_MAX
        ):
            self._rs = self._rs.astype(np.int64)
        _ring_put(self._rs, self._rpos, steps[-count:])
        _ring_put(self._rv, self._rpos, values[-count:])
        self._rpos = (self._rpos + count) % size
        self._rlen = min(size, self._rlen + count)

    def _put_recent(self, finite_values: np.ndarray) -> None:
        size = self._rsize
        count = min(size, finite_values.size)
        _ring_put(self._fv, self._fpos, finite_values[-count:])
        self._fpos = (self._fpos + count) % size
        self._flen = min(size, self._flen + count)

    def _absorb_open(self, step_arr: np.ndarray, value_arr: np.ndarray, finite: np.ndarray) -> None:
        """Add a block (shorter than what closes the bucket, or exactly it) to the open bucket."""
        count = int(value_arr.size)
        finite_values = value_arr[finite]
        nf = int(finite_values.size)
        if nf:
            block_mean = float(finite_values.mean())
            block_m2 = float(((finite_values - block_mean) ** 2).sum())
            self._o_nf, self._o_mean, self._o_m2 = chan(
                self._o_nf, self._o_mean, self._o_m2, nf, block_mean, block_m2
            )
            self._o_min = min(self._o_min, float(finite_values.min()))
            self._o_max = max(self._o_max, float(finite_values.max()))
            self._o_zero += int(np.count_nonzero(finite_values == 0.0))
            self._o_step_sum += float(step_arr[finite].sum(dtype=np.float64))
        if nf < count:
            self._o_nan += int(np.count_nonzero(np.isnan(value_arr)))
        self._o_n += count

    def _append_full_buckets(
        self, steps: np.ndarray, values: np.ndarray, finite: np.ndarray, all_finite: bool
    ) -> None:
        """Append k full buckets given as (k, width) blocks; the open bucket is empty."""
        k, width = values.shape
        nb = self._nb
        self._grow(nb + k)
        rec = self._rec
        last_steps = steps[:, -1]
        self._rec = fit(
            rec,
            rec.dtype["min"] == BUCKET["min"] or f32_exact_array(values),
            (int(last_steps.min()), int(last_steps.max())),
            width,
        )
        n, mean, m2, low, high, nans, zeros = append_blocks(
            self._rec[nb : nb + k], steps, values, finite, all_finite
        )
        self._nb = nb + k
        self._c_nf, self._c_mean, self._c_m2 = chan(
            self._c_nf, self._c_mean, self._c_m2, n, mean, m2
        )
        self._c_min = min(self._c_min, low)
        self._c_max = max(self._c_max, high)
        self._c_nan += nans
        self._c_zero += zeros

    # ------------------------------------------------------------------ rewind
    def _raw_window(self) -> Tuple[np.ndarray, np.ndarray]:
        """(steps, values) of the raw window, oldest first."""
        if self._rlen < self._rsize:
            return self._rs[: self._rlen].astype(np.int64), self._rv[: self._rlen].copy()
        pos = self._rpos
        return (
            np.concatenate((self._rs[pos:], self._rs[:pos])).astype(np.int64, copy=False),
            np.concatenate((self._rv[pos:], self._rv[:pos])),
        )

    def rewind(self, step: int) -> int:
        """Forget the points at steps >= ``step`` (a restart); return how many were discarded.

        See the module docstring for when the result is exact and what else may go.
        """
        step = int(step)
        if self._last_step is None or self._last_step < step:
            return 0
        total, width = self._n, self._width
        raw_steps, raw_values = self._raw_window()
        raw_start = total - raw_steps.size
        if raw_steps.size and raw_steps[0] < step:
            cut = raw_start + int(np.searchsorted(raw_steps, step, side="left"))
            start = cut - cut % width  # first point of the bucket holding the cut
            keep = cut if start >= raw_start or start == cut else start
        elif raw_start == 0:
            keep = 0
        else:
            last_steps = self._rec["last_step"][: self._nb].astype(np.int64)
            keep = int(np.searchsorted(last_steps, step, side="left")) * width
        if keep == 0:
            self._reset()
            self._changed()
            return total
        self._truncate(keep, raw_start, raw_steps, raw_values)
        self._changed()
        return total - keep

    def _truncate(
        self, keep: int, raw_start: int, raw_steps: np.ndarray, raw_values: np.ndarray
    ) -> None:
        """Keep the first ``keep`` points (0 < keep < count); buckets are rebuilt or cut."""
        width = self._width
        whole = keep // width  # closed buckets kept whole
        old_finite, old_ema = self.finite_count, self._ema
        self._nb = min(self._nb, whole)
        self._recompute_closed_aggregate()
        self._reset_open()
        self._n = whole * width
        rebuild = keep - whole * width  # points re-read from the raw window into the open bucket
        if rebuild:
            lo, hi = whole * width - raw_start, keep - raw_start
            part_values = raw_values[lo:hi]
            self._absorb_open(raw_steps[lo:hi], part_values, np.isfinite(part_values))
            self._n = keep
        if keep > raw_start:
            self._last_step = int(raw_steps[keep - raw_start - 1])
            self._last_value = float(raw_values[keep - raw_start - 1])
        else:
            last = self._rec[self._nb - 1]
            self._last_step, self._last_value = int(last["last_step"]), float(last["last_value"])
        if self._bad_step is not None and self._bad_pos >= keep:
            self._bad_step = None
        # windows: the raw window keeps its points before the cut, the recent window its
        # oldest values (the newest finite values are the ones discarded)
        if width == 1:  # each bucket is one point: both windows are rebuilt exactly
            rec = self._rec[: self._nb]
            window_steps, window_values = rec["last_step"], rec["last_value"]
            recent = rec["mean"][rec["nf"] > 0][-self._rsize :]
        else:
            window_steps, window_values = raw_steps[: max(0, keep - raw_start)], raw_values
            dropped_finite = old_finite - self.finite_count
            recent = self.recent_values()[: max(0, self._flen - dropped_finite)]
        kept_raw = min(self._rsize, max(0, window_steps.size))
        if kept_raw:
            self._rs[:kept_raw] = window_steps[-kept_raw:]
            self._rv[:kept_raw] = window_values[: window_steps.size][-kept_raw:]
        self._rlen, self._rpos = kept_raw, kept_raw % self._rsize
        if self._fv is self._rv and not (
            recent.size == kept_raw and np.array_equal(recent, self._rv[:kept_raw])
        ):
            self._fv = np.zeros(self._rsize, np.float64)
        self._fv[: recent.size] = recent
        self._flen, self._fpos = recent.size, recent.size % self._rsize
        # EMA: undo the discarded finite values when the raw window held them all
        if self.finite_count == 0:
            self._ema = NAN
        elif width == 1:
            self._ema = self._ema_from_history()
        elif keep >= raw_start and self._alpha < 1.0:
            gone = raw_values[keep - raw_start :]
            ema, alpha = old_ema, self._alpha
            for value in gone[np.isfinite(gone)][::-1].tolist():
                ema = (ema - alpha * value) / (1.0 - alpha)
            self._ema = ema
        elif keep >= raw_start:
            self._ema = float(recent[-1]) if recent.size else self._ema_from_history()
        else:
            self._ema = self._ema_from_history()

    def _ema_from_history(self) -> float:
        """The EMA recomputed from the bucket means (approximate beyond width 1)."""
        hist = self.history()
        return ema_of_buckets(hist.counts, hist.means, self._alpha)


def _ring_put(ring: np.ndarray, pos: int, data: np.ndarray) -> None:
    """Write ``data`` (at most ``ring.size`` items) into the ring buffer from ``pos`` on."""
    first = min(data.size, ring.size - pos)
    ring[pos : pos + first] = data[:first]
    if first < data.size:
        ring[: data.size - first] = data[first:]
