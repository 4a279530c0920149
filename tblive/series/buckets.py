"""The bounded history's building blocks: bucket records and the arithmetic on them.

:class:`tblive.series.stats.MetricStats` keeps its closed history buckets in one numpy record
array, :data:`NARROW_BUCKET` (46 bytes a bucket) with each field widened to its :data:`BUCKET`
type (68 bytes) only once a figure needs it (:func:`fit`).  Every closed bucket holds exactly
``width`` consecutive points; the functions here append buckets from (k, width) blocks of
points, merge adjacent pairs when the history is full, aggregate them, and lay them out as
:class:`History`.
The EMA helpers give the exponential moving average of a block in closed form.  Pure
functions of numpy arrays, no I/O.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    "BUCKET",
    "NARROW_BUCKET",
    "History",
    "append_blocks",
    "chan",
    "fit",
    "merge_pairs",
    "merge_summaries",
]

INF = float("inf")
NAN = float("nan")

#: One closed history bucket at its widest (68 bytes).
BUCKET = np.dtype(
    [
        ("last_step", "<i8"),
        ("step_sum", "<f8"),  # sum of the steps of the finite points
        ("mean", "<f8"),
        ("m2", "<f8"),
        ("min", "<f8"),
        ("max", "<f8"),
        ("last_value", "<f8"),
        ("nf", "<i4"),
        ("nan", "<i4"),
        ("zero", "<i4"),
    ]
)
#: The same record as narrow as the figures allow (46 bytes): steps in int32, min / max /
#: last value in float32 (exact for values read from event files, which are float32), counts
#: in uint16.  A field widens to its :data:`BUCKET` type the first time a figure would not be
#: held exactly (:func:`fit`), so every stored figure is the one computed, bit for bit.
NARROW_BUCKET = np.dtype(
    [
        ("last_step", "<i4"),
        ("step_sum", "<f8"),
        ("mean", "<f8"),
        ("m2", "<f8"),
        ("min", "<f4"),
        ("max", "<f4"),
        ("last_value", "<f4"),
        ("nf", "<u2"),
        ("nan", "<u2"),
        ("zero", "<u2"),
    ]
)
_VALUE_FIELDS = ("min", "max", "last_value")
_COUNT_FIELDS = ("nf", "nan", "zero")
_F32 = struct.Struct("<f")
_I32 = np.iinfo(np.int32)


def _f32_exact(value: float) -> bool:
    """Whether float32 holds ``value`` exactly (NaN and +-Inf included)."""
    try:
        return _F32.unpack(_F32.pack(value))[0] == value or value != value
    except OverflowError:
        return False


def f32_exact_array(values: np.ndarray) -> bool:
    """Whether float32 holds every value of a float64 array exactly."""
    with np.errstate(over="ignore"):
        narrow = values.astype(np.float32)
    if (narrow == values).all():
        return True
    return bool(np.array_equal(narrow, values, equal_nan=True))  # NaN is held exactly too


def fit(
    rec: np.ndarray,
    exact_f32: bool = True,
    steps: Tuple[int, int] = (0, 0),
    counts: int = 0,
) -> np.ndarray:
    """``rec``, or a copy with wider fields, able to hold the figures about to be stored.

    ``exact_f32``: the min / max / last values to store are exact in float32; ``steps``:
    the lowest and highest step to store; ``counts``: the largest count to store.
    """
    dtype = rec.dtype
    wide = []
    if not exact_f32 and dtype["min"] != BUCKET["min"]:
        wide.extend(_VALUE_FIELDS)
    if dtype["last_step"] != BUCKET["last_step"] and (steps[0] < _I32.min or steps[1] > _I32.max):
        wide.append("last_step")
    if counts > np.iinfo(dtype["nf"]).max:
        wide.extend(_COUNT_FIELDS)
    if not wide:
        return rec
    out = np.zeros(
        rec.shape[0],
        np.dtype([(name, BUCKET[name] if name in wide else dtype[name]) for name in dtype.names]),
    )
    for name in dtype.names:
        out[name] = rec[name]
    return out


def fit_scalars(rec: np.ndarray, values: Tuple[float, ...], step: int, counts: int) -> np.ndarray:
    """:func:`fit` for one bucket's figures, checked without numpy (the per-point path)."""
    exact = rec.dtype["min"] == BUCKET["min"] or all(_f32_exact(value) for value in values)
    return fit(rec, exact, (step, step), counts)


class History(NamedTuple):
    """The bounded history as arrays in step order; buckets without finite values are left out.

    ``steps`` is the mean step of a bucket's finite points, ``means``/``mins``/``maxs`` are
    over its finite values, ``counts`` its number of finite values.  A bucket's points lie at
    steps in ``[first_steps, last_steps]``: ``last_steps`` is its last point's step,
    ``first_steps`` the previous bucket's last step (the series' first step for the first).
    """

    steps: np.ndarray
    means: np.ndarray
    counts: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    first_steps: np.ndarray
    last_steps: np.ndarray


def chan(
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


def merge_summaries(
    counts: np.ndarray, means: np.ndarray, m2s: np.ndarray
) -> Tuple[int, float, float]:
    """Merge many (count, mean, M2) summaries at once."""
    total = int(counts.sum())
    if total == 0:
        return 0, 0.0, 0.0
    mean = float((counts * means).sum() / total)
    m2 = float(m2s.sum() + (counts * (means - mean) ** 2).sum())
    return total, mean, m2


def leading_mean(counts: np.ndarray, means: np.ndarray, target: int) -> float:
    """Mean of the first ``target`` points of buckets (counts, means), in bucket order.

    The bucket reaching ``target`` contributes only the points still needed (at its mean).
    """
    before = np.cumsum(counts) - counts  # points in earlier buckets
    used = np.clip(target - before, 0, counts).astype(np.float64)
    return float((used * means).sum() / used.sum())


def merge_pairs(rec: np.ndarray, count: int) -> int:
    """Merge the first ``count`` records pairwise in place; return the new count."""
    half = count // 2
    a = rec[0 : 2 * half : 2].copy()
    b = rec[1 : 2 * half : 2].copy()
    nf_a = a["nf"].astype(np.float64)
    total = nf_a + b["nf"]
    delta = b["mean"] - a["mean"]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_b = np.where(total > 0, b["nf"] / np.where(total > 0, total, 1.0), 0.0)
    out = rec[:half]
    out["mean"] = a["mean"] + delta * frac_b
    out["m2"] = a["m2"] + b["m2"] + delta * delta * nf_a * frac_b
    out["min"] = np.minimum(a["min"], b["min"])
    out["max"] = np.maximum(a["max"], b["max"])
    out["step_sum"] = a["step_sum"] + b["step_sum"]
    for name in _COUNT_FIELDS:  # in int64: the sums may not fit the field (see fit)
        out[name] = a[name].astype(np.int64) + b[name]
    out["last_step"] = b["last_step"]
    out["last_value"] = b["last_value"]
    return half


def append_blocks(
    out: np.ndarray, steps: np.ndarray, values: np.ndarray, finite: np.ndarray, all_finite: bool
) -> Tuple[int, float, float, float, float, int, int]:
    """Fill ``out`` (k records) from (k, width) blocks of points.

    Returns the blocks' aggregate: (finite count, mean, M2, min, max, NaN count, zero count).
    """
    k, width = values.shape
    if all_finite:
        nf = np.full(k, width, np.int64)
        means = values.mean(axis=1)
        deviations = values - means[:, None]
        mins = values.min(axis=1)
        maxs = values.max(axis=1)
        nans = np.zeros(k, np.int64)
        step_sums = steps.sum(axis=1, dtype=np.float64)
    else:
        nf = finite.sum(axis=1)
        masked = np.where(finite, values, 0.0)
        means = np.where(nf > 0, masked.sum(axis=1) / np.maximum(nf, 1), 0.0)
        deviations = np.where(finite, values - means[:, None], 0.0)
        mins = np.where(finite, values, INF).min(axis=1)
        maxs = np.where(finite, values, -INF).max(axis=1)
        nans = np.isnan(values).sum(axis=1)
        step_sums = np.where(finite, steps, 0).sum(axis=1, dtype=np.float64)
    m2s = np.einsum("ij,ij->i", deviations, deviations)
    zeros = (values == 0.0).sum(axis=1)
    out["last_step"] = steps[:, -1]
    out["step_sum"] = step_sums
    out["mean"] = means
    out["m2"] = m2s
    out["min"] = mins
    out["max"] = maxs
    out["last_value"] = values[:, -1]
    out["nf"] = nf
    out["nan"] = nans
    out["zero"] = zeros
    n, mean, m2 = merge_summaries(nf.astype(np.float64), means, m2s)
    low, high = (float(mins.min()), float(maxs.max())) if n else (INF, -INF)
    return n, mean, m2, low, high, int(nans.sum()), int(zeros.sum())


def aggregate(rec: np.ndarray) -> Tuple[int, float, float, float, float, int, int]:
    """(finite count, mean, M2, min, max, NaN count, zero count) of records."""
    n, mean, m2 = merge_summaries(rec["nf"].astype(np.float64), rec["mean"], rec["m2"])
    low = float(rec["min"].min()) if rec.size else INF
    high = float(rec["max"].max()) if rec.size else -INF
    return int(n), mean, m2, low, high, int(rec["nan"].sum()), int(rec["zero"].sum())


def history_of(
    rec: np.ndarray, open_bucket: Optional[Tuple[int, float, float, float, float, int]], first: int
) -> History:
    """:class:`History` of closed records plus an optional open bucket.

    ``open_bucket`` is (finite count, mean, min, max, step sum, last step); ``first`` the
    series' first step.
    """
    counts = rec["nf"].astype(np.int64)
    means, step_sums = rec["mean"], rec["step_sum"]
    mins = rec["min"].astype(np.float64)
    maxs = rec["max"].astype(np.float64)
    last_steps = rec["last_step"].astype(np.int64)
    if open_bucket is not None:
        nf, mean, low, high, step_sum, last = open_bucket
        counts = np.append(counts, nf)
        means = np.append(means, mean)
        mins = np.append(mins, low)
        maxs = np.append(maxs, high)
        step_sums = np.append(step_sums, step_sum)
        last_steps = np.append(last_steps, last)
    first_steps = np.empty(last_steps.size, np.int64)
    if last_steps.size:
        first_steps[0] = first
        first_steps[1:] = last_steps[:-1]
    keep = counts > 0
    if not keep.all():
        counts, means, mins, maxs = counts[keep], means[keep], mins[keep], maxs[keep]
        step_sums, first_steps, last_steps = step_sums[keep], first_steps[keep], last_steps[keep]
    return History(
        steps=step_sums / np.maximum(counts, 1),
        means=np.array(means, dtype=np.float64),
        counts=counts,
        mins=np.array(mins, dtype=np.float64),
        maxs=np.array(maxs, dtype=np.float64),
        first_steps=first_steps,
        last_steps=np.array(last_steps, dtype=np.int64),
    )


def ema_after(ema: float, finite_values: np.ndarray, alpha: float) -> float:
    """EMA after feeding ``finite_values`` one by one (closed form, truncated tail)."""
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


def ema_of_buckets(counts: np.ndarray, means: np.ndarray, alpha: float) -> float:
    """The EMA as if each bucket's values all equalled its mean (exact at width 1)."""
    ema = NAN
    decay = 1.0 - alpha
    for nf, mean in zip(counts.tolist(), means.tolist()):
        if ema != ema:
            # the first finite value started the EMA; within the bucket it then decays
            ema, weight = mean, 1.0 - decay ** (nf - 1)
        else:
            weight = 1.0 - decay**nf
        ema += weight * (mean - ema)
    return ema
