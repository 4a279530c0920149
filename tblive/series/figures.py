"""What a metric's statistics say: the read-only figures of :class:`MetricStats`.

:class:`MetricFigures` is the half of :class:`tblive.series.stats.MetricStats` that answers
questions (totals, moments, the recent window, the bounded history, smoothed head and tail,
the trend, the JSON summary and the one-line change); the other half, in ``stats.py``, feeds
and rewinds the state these figures read.  Costly figures (trend, head, tail, the recent
window's figures) are memoised until the statistics next change (see
:meth:`MetricStats.cached`).  Nothing here changes the statistics.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np

from tblive.series.buckets import History, chan, history_of, leading_mean
from tblive.series.trend import (
    MATERIAL_CHANGE_FRACTION,
    MIN_TREND_STRENGTH,
    RECENT_SPAN_FRACTION,
    VOLATILE_NOISE_FRACTION,
    Trend,
    judge_trend,
)
from tblive.textfmt import finite as _none_if_not_finite
from tblive.textfmt import format_number

__all__ = ["HEAD_TAIL_FRACTION", "MetricFigures", "RecentFigures"]

NAN = float("nan")

#: Share of the run (by finite points) averaged for the smoothed head and tail.
HEAD_TAIL_FRACTION = 0.10
_DEFAULTS = (MIN_TREND_STRENGTH, MATERIAL_CHANGE_FRACTION, VOLATILE_NOISE_FRACTION)


class RecentFigures(NamedTuple):
    """Figures over the recent window of finite values (nan / 0 when there are none)."""

    count: int
    mean: float
    std: float  # sample std (ddof=1); 0.0 for one value
    min: float
    max: float
    first: float
    last: float


class MetricFigures:
    """The figures of a metric's statistics (mixed into :class:`MetricStats`)."""

    __slots__ = ()
    # provided by MetricStats
    _n: int
    _width: int
    _nb: int
    _rsize: int
    _flen: int
    _fpos: int
    _fv: np.ndarray
    _rec: np.ndarray
    _first_step: Optional[int]
    _first_value: float
    _last_step: Optional[int]
    _last_value: float
    _ema: float
    _bad_step: Optional[int]
    _c_nf: int
    _c_mean: float
    _c_m2: float
    _c_min: float
    _c_max: float
    _c_nan: int
    _c_zero: int
    _o_n: int
    _o_nf: int
    _o_mean: float
    _o_m2: float
    _o_min: float
    _o_max: float
    _o_nan: int
    _o_zero: int
    _o_step_sum: float

    version: int
    _memo: Optional[Dict[Any, Any]]
    _m_version: int
    _m_head: Optional[float]
    _m_tail: Optional[float]
    _m_recent: Optional[RecentFigures]
    _m_all: Optional[Trend]
    _m_part: Optional[Trend]

    def _memo_valid(self) -> None:
        """Forget the memoised figures when the statistics changed since they were computed."""
        if self._m_version != self.version:
            self._m_version = self.version
            self._memo = None
            self._m_head = self._m_tail = self._m_recent = self._m_all = self._m_part = None

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, memoised under ``key`` until the statistics next change.

        For the judge's own costly figures (levels, roles of a tag set, ...).
        """
        self._memo_valid()
        memo = self._memo
        if memo is None:
            memo = self._memo = {}
        elif key in memo:
            return memo[key]
        value = memo[key] = compute()
        return value

    # ------------------------------------------------------------------ totals
    @property
    def count(self) -> int:
        """All points kept (finite and non-finite)."""
        return self._n

    @property
    def finite_count(self) -> int:
        return self._c_nf + self._o_nf

    @property
    def nan_count(self) -> int:
        return self._c_nan + self._o_nan

    @property
    def inf_count(self) -> int:
        return self._n - self.finite_count - self.nan_count

    @property
    def nonfinite_count(self) -> int:
        return self._n - self.finite_count

    @property
    def first_nonfinite_step(self) -> Optional[int]:
        return self._bad_step

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
    def width(self) -> int:
        """Points per history bucket (1, then doubling as the run grows)."""
        return self._width

    @property
    def bucket_count(self) -> int:
        """History buckets in use (closed ones plus a non-empty open one)."""
        return self._nb + (1 if self._o_n else 0)

    # ------------------------------------------------------------------ moments
    def _moments(self) -> Tuple[int, float, float]:
        return chan(self._c_nf, self._c_mean, self._c_m2, self._o_nf, self._o_mean, self._o_m2)

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
        """Figures of the recent window (memoised until the next change)."""
        self._memo_valid()
        if self._m_recent is None:
            self._m_recent = self._recent_figures()
        return self._m_recent

    def _recent_figures(self) -> RecentFigures:
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
        """The last (up to) ``recent_size`` finite values in arrival order (a copy)."""
        if self._flen < self._rsize:
            return self._fv[: self._flen].copy()
        return np.concatenate((self._fv[self._fpos :], self._fv[: self._fpos]))

    # ------------------------------------------------------------------ history
    def _history_arrays(self, include_partial: bool) -> History:
        open_bucket = None
        if self._o_nf and (include_partial or 2 * self._o_nf >= self._width):
            open_bucket = (
                self._o_nf,
                self._o_mean,
                self._o_min,
                self._o_max,
                self._o_step_sum,
                self._last_step,
            )
        return history_of(self._rec[: self._nb], open_bucket, self._first_step or 0)

    def _levels(self, include_partial: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(finite counts, means, mean steps) of the buckets with finite values, for reading
        right away (the arrays may be views of the live history)."""
        rec = self._rec[: self._nb]
        counts, means, sums = rec["nf"].astype(np.int64), rec["mean"], rec["step_sum"]
        if self._o_nf and (include_partial or 2 * self._o_nf >= self._width):
            counts = np.append(counts, self._o_nf)
            means = np.append(means, self._o_mean)
            sums = np.append(sums, self._o_step_sum)
        if np.count_nonzero(counts) < counts.size:
            keep = counts > 0
            counts, means, sums = counts[keep], means[keep], sums[keep]
        return counts, means, sums / np.maximum(counts, 1)

    def history(self) -> History:
        """The bounded history (<= history_buckets entries, step order, finite values only).

        Includes the open (partly filled) bucket when it holds finite values.
        """
        return self._history_arrays(include_partial=True)

    def head_value(self) -> float:
        """Smoothed start: mean of the first ~10% of finite points (memoised).

        From the history: whole buckets, then the needed share of the next one at its mean
        (at width 1 this is exactly the mean of the first 10% of points, at least one).
        """
        self._memo_valid()
        if self._m_head is None:
            self._m_head = self._head()
        return self._m_head

    def _head(self) -> float:
        counts, means, _ = self._levels(include_partial=True)
        if counts.size == 0:
            return NAN
        target = max(1, int(math.ceil(HEAD_TAIL_FRACTION * self.finite_count)))
        return leading_mean(counts, means, target)

    def tail_value(self) -> float:
        """Smoothed end: mean of the last ~10% of finite points (memoised).

        Taken from the recent window when it holds enough values (exact), otherwise from
        history buckets counted back from the end (the last one used contributes only the
        points still needed, at its mean).
        """
        self._memo_valid()
        if self._m_tail is None:
            self._m_tail = self._tail()
        return self._m_tail

    def _tail(self) -> float:
        total = self.finite_count
        if total == 0:
            return NAN
        target = max(1, int(math.ceil(HEAD_TAIL_FRACTION * total)))
        if target <= self._flen:
            return float(self.recent_values()[-target:].mean())
        counts, means, _ = self._levels(include_partial=True)
        return leading_mean(counts[::-1], means[::-1], target)

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
        """Robust trend of the bucket means (:func:`tblive.series.trend.judge_trend`).

        ``part="all"`` judges every history bucket; ``part="recent"`` the buckets in the
        last 25% of the history's step span (at least the last 4 buckets).  An open bucket
        less than half full is left out.  With fewer than 4 buckets the label is "unknown".
        Memoised until the statistics next change.
        """
        if part not in ("all", "recent"):
            raise ValueError("trend part must be 'all' or 'recent', got %r" % part)
        default = (min_strength, material_fraction, volatile_fraction) == _DEFAULTS
        if default:
            self._memo_valid()
            known = self._m_all if part == "all" else self._m_part
            if known is not None:
                return known
        else:
            key = ("trend", part, min_strength, material_fraction, volatile_fraction)
            if self._memo is not None and self._m_version == self.version and key in self._memo:
                return self._memo[key]
        x, y = self._trend_points(part)
        result = judge_trend(
            x,
            y,
            min_strength=min_strength,
            material_fraction=material_fraction,
            volatile_fraction=volatile_fraction,
        )
        if not default:
            return self.cached(key, lambda: result)
        if part == "all":
            self._m_all = result
        else:
            self._m_part = result
        return result

    def _trend_points(self, part: str) -> Tuple[np.ndarray, np.ndarray]:
        """(mean steps, means) of the buckets ``trend(part)`` judges."""
        _, y, x = self._levels(include_partial=False)
        if part == "recent" and x.size:
            cutoff = x[-1] - RECENT_SPAN_FRACTION * (x[-1] - x[0])
            start = min(int(np.searchsorted(x, cutoff, side="left")), max(0, x.size - 4))
            x, y = x[start:], y[start:]
        return x, y

    # ------------------------------------------------------------------ output
    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready summary; NaN/Inf become None."""
        change = self.relative_change()
        return {
            "count": self._n,
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
            "first_nonfinite_step": self._bad_step,
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
            self._n,
            self._last_step,
            format_number(self.mean),
            self._width,
        )
