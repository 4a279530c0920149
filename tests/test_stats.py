"""Tests of tblive.series.stats: bounded incremental per-metric statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tblive.series.stats import MetricStats, format_number, judge_trend


def feed_loop(stats: MetricStats, steps, values, walls=None) -> MetricStats:
    for i, (step, value) in enumerate(zip(steps, values)):
        wall = None if walls is None else walls[i]
        if wall is not None and wall != wall:
            wall = None
        stats.update(int(step), float(value), wall)
    return stats


def assert_same_stats(a: MetricStats, b: MetricStats) -> None:
    """Everything observable agrees (floating tolerance for sums)."""
    for name in (
        "count",
        "finite_count",
        "nan_count",
        "inf_count",
        "nonfinite_count",
        "zero_count",
        "first_nonfinite_step",
        "first_step",
        "last_step",
        "width",
        "bucket_count",
    ):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("first_value", "last_value", "min", "max", "mean", "std", "ema"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x != x and y != y) or x == pytest.approx(y, rel=1e-9, abs=1e-9), name
    np.testing.assert_array_equal(a.recent_values(), b.recent_values())
    ha, hb = a.history(), b.history()
    for field in ha._fields:
        np.testing.assert_allclose(getattr(ha, field), getattr(hb, field), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(a._rec[: a._nb]["last_value"], b._rec[: b._nb]["last_value"])
    np.testing.assert_array_equal(a._raw_window()[0], b._raw_window()[0])


# ---------------------------------------------------------------------------- moments


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 30_000])
def test_moments_match_numpy(size):
    rng = np.random.default_rng(size)
    values = rng.normal(3.0, 2.5, size) * rng.choice([1.0, 1e3], size)
    stats = feed_loop(MetricStats(history_buckets=16), range(size), values)
    assert stats.count == stats.finite_count == size
    assert stats.mean == pytest.approx(values.mean(), rel=1e-10, abs=1e-9)
    expected_std = values.std(ddof=1) if size > 1 else 0.0
    assert stats.std == pytest.approx(expected_std, rel=1e-9, abs=1e-12)
    assert stats.min == values.min() and stats.max == values.max()
    assert stats.first_value == values[0] and stats.last_value == values[-1]
    assert stats.first_step == 0 and stats.last_step == size - 1


def test_moments_stay_accurate_with_large_offset():
    rng = np.random.default_rng(5)
    values = 1e9 + rng.normal(0, 1e-3, 50_000)
    stats = MetricStats()
    stats.update_many(np.arange(values.size), values)
    assert stats.std == pytest.approx(values.std(ddof=1), rel=1e-5)


def test_empty_stats_are_nan_and_json_safe():
    stats = MetricStats()
    assert stats.count == 0 and stats.first_step is None and stats.last_step is None
    for value in (stats.mean, stats.std, stats.min, stats.max, stats.ema, stats.first_value):
        assert math.isnan(value)
    assert stats.recent.count == 0
    assert stats.relative_change() is None
    assert stats.trend().label == "unknown"
    assert math.isnan(stats.fraction_outside(0.0, 1.0))
    assert stats.format_change("Entropy") == "Entropy: no data"
    data = stats.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["count"] == 0 and data["mean"] is None and data["trend"] == "unknown"


def test_single_point_std_is_zero():
    stats = MetricStats()
    stats.update(10, 4.5)
    assert stats.std == 0.0 and stats.mean == 4.5 and stats.ema == 4.5
    assert stats.recent == (1, 4.5, 0.0, 4.5, 4.5, 4.5, 4.5)


def test_ema_matches_definition():
    alpha = 0.1
    values = np.random.default_rng(3).normal(size=500)
    stats = feed_loop(MetricStats(ema_alpha=alpha), range(500), values)
    ema = values[0]
    for value in values[1:]:
        ema += alpha * (value - ema)
    assert stats.ema == pytest.approx(ema, rel=1e-12)


def test_recent_window_figures():
    values = np.arange(100, dtype=float) ** 1.5
    stats = feed_loop(MetricStats(recent_size=16), range(100), values)
    window = values[-16:]
    recent = stats.recent
    assert recent.count == 16
    assert recent.mean == pytest.approx(window.mean())
    assert recent.std == pytest.approx(window.std(ddof=1))
    assert (recent.min, recent.max, recent.first, recent.last) == (
        window.min(),
        window.max(),
        window[0],
        window[-1],
    )
    np.testing.assert_array_equal(stats.recent_values(), window)


# ---------------------------------------------------------------------------- non-finite


def test_nan_and_inf_are_counted_but_excluded():
    values = [1.0, 2.0, float("nan"), 3.0, float("inf"), float("-inf"), 0.0, 0.0, float("nan")]
    stats = feed_loop(MetricStats(), range(100, 109), values)
    finite = np.array([1.0, 2.0, 3.0, 0.0, 0.0])
    assert stats.count == 9 and stats.finite_count == 5
    assert (stats.nan_count, stats.inf_count, stats.nonfinite_count) == (2, 2, 4)
    assert stats.first_nonfinite_step == 102
    assert stats.zero_count == 2
    assert stats.mean == pytest.approx(finite.mean())
    assert stats.std == pytest.approx(finite.std(ddof=1))
    assert (stats.min, stats.max) == (0.0, 3.0)
    assert math.isnan(stats.last_value)
    assert stats.recent.count == 5
    assert np.all(np.isfinite(stats.history().means))
    json.dumps(stats.to_dict(), allow_nan=False)
    assert stats.to_dict()["last_value"] is None


def test_all_nonfinite_metric():
    stats = MetricStats(history_buckets=8)
    stats.update_many(np.arange(100), np.full(100, np.nan))
    assert stats.count == 100 and stats.finite_count == 0 and stats.nan_count == 100
    assert stats.first_nonfinite_step == 0
    assert math.isnan(stats.mean) and math.isnan(stats.ema)
    assert stats.history().means.size == 0
    assert stats.trend().label == "unknown"
    assert stats.format_change("Loss") == "Loss: no data"


# ---------------------------------------------------------------------------- history


def test_bucket_bound_and_exact_merges_over_100k_points():
    bound = 16
    rng = np.random.default_rng(11)
    values = rng.normal(size=100_000)
    values[rng.random(values.size) < 0.01] = np.nan
    stats = MetricStats(history_buckets=bound, recent_size=32)
    most = 0
    for step, value in enumerate(values.tolist()):
        stats.update(step, value)
        most = max(most, stats.bucket_count)
    assert most <= bound
    assert stats._nb < bound and stats._rec.shape[0] <= bound and stats.recent_values().size <= 32
    # every closed bucket holds exactly `width` points, a power of two
    assert stats.count == stats._nb * stats.width + stats._o_n
    assert stats.width & (stats.width - 1) == 0
    hist = stats.history()
    finite = values[np.isfinite(values)]
    assert hist.counts.sum() == finite.size == stats.finite_count
    assert stats.count == values.size
    assert float((hist.counts * hist.means).sum() / hist.counts.sum()) == pytest.approx(
        finite.mean(), abs=1e-12
    )
    assert hist.mins.min() == finite.min() == stats.min
    assert hist.maxs.max() == finite.max() == stats.max
    assert stats.std == pytest.approx(finite.std(ddof=1), rel=1e-10)
    assert np.all(np.diff(hist.steps) > 0)
    assert np.all(hist.first_steps <= hist.last_steps)
    # bucket figures equal the raw points they cover
    width = stats.width
    for index in (0, 3, stats._nb - 1):
        chunk = values[index * width : (index + 1) * width]
        ok = chunk[np.isfinite(chunk)]
        bucket = stats._rec[index]
        assert bucket["mean"] == pytest.approx(ok.mean(), abs=1e-12)
        assert bucket["min"] == ok.min() and bucket["max"] == ok.max()
        assert bucket["last_step"] == (index + 1) * width - 1


def test_memory_is_bounded_by_constant():
    """Internal containers stay the same size from 20k to 400k points."""

    def sizes(stats):
        return (stats._rec.shape[0], stats._rs.shape[0], stats._fv.shape[0])

    small, large = MetricStats(), MetricStats()
    values = np.random.default_rng(0).normal(size=400_000)
    small.update_many(np.arange(20_000), values[:20_000])
    large.update_many(np.arange(400_000), values)
    assert max(sizes(large)) <= 128 and max(sizes(small)) <= 128
    assert large.bucket_count <= 256 and large.history().means.size <= 256


# ---------------------------------------------------------------------------- update_many


def test_update_many_matches_loop_with_merges_and_walls():
    rng = np.random.default_rng(7)
    n = 20_000
    values = rng.normal(1.0, 1.0, n)
    values[rng.random(n) < 0.03] = np.nan
    values[rng.random(n) < 0.01] = np.inf
    values[rng.random(n) < 0.01] = 0.0
    steps = np.cumsum(rng.integers(1, 5, n))
    walls = 1000.0 + np.cumsum(rng.random(n))
    walls[rng.random(n) < 0.2] = np.nan
    loop = feed_loop(MetricStats(history_buckets=16, recent_size=10), steps, values, walls)
    vec = MetricStats(history_buckets=16, recent_size=10)
    pos = 0
    while pos < n:
        size = int(rng.integers(1, 3000))
        vec.update_many(steps[pos : pos + size], values[pos : pos + size], walls[pos : pos + size])
        pos += size
    assert_same_stats(loop, vec)


def test_update_many_is_fast_enough_for_reports():
    """Feeding 40k-point series is vectorised (sanity bound, not a timing benchmark)."""
    import time

    values = np.random.default_rng(1).normal(size=40_000)
    steps = np.arange(40_000)
    start = time.perf_counter()
    for _ in range(50):
        MetricStats().update_many(steps, values)
    assert time.perf_counter() - start < 5.0  # target: well under 1 s; generous for CI noise


def test_update_many_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="3 steps but 2 values"):
        MetricStats().update_many([1, 2, 3], [1.0, 2.0])


finite_or_not = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(finite_or_not, min_size=0, max_size=400),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    buckets=st.sampled_from([8, 10, 16]),
    with_walls=st.booleans(),
    alpha=st.sampled_from([0.05, 0.5, 1.0]),
)
def test_property_update_many_equals_update_loop(values, cuts, buckets, with_walls, alpha):
    steps = np.arange(len(values)) * 3
    walls = (100.0 + np.arange(len(values)) * 0.5) if with_walls else None
    loop = feed_loop(MetricStats(buckets, 6, alpha), steps, values, walls)
    vec = MetricStats(buckets, 6, alpha)
    bounds = sorted({0, len(values), *[c for c in cuts if c <= len(values)]})
    for start, end in zip(bounds, bounds[1:]):
        vec.update_many(
            steps[start:end], values[start:end], None if walls is None else walls[start:end]
        )
    assert_same_stats(loop, vec)


# ---------------------------------------------------------------------------- rewind


def test_rewind_is_exact_while_width_is_one():
    rng = np.random.default_rng(2)
    values = rng.normal(size=100)
    values[[10, 70]] = np.nan
    walls = 50.0 + np.arange(100)
    stats = feed_loop(MetricStats(history_buckets=256, recent_size=8), range(100), values, walls)
    assert stats.rewind(60) == 40
    fresh = feed_loop(MetricStats(history_buckets=256, recent_size=8), range(60), values, walls)
    assert stats.width == 1
    assert_same_stats(stats, fresh)
    # the resumed run continues normally
    replay = rng.normal(size=30)
    feed_loop(stats, range(60, 90), replay)
    feed_loop(fresh, range(60, 90), replay)
    assert_same_stats(stats, fresh)


def test_rewind_far_back_after_merges_drops_the_bucket_holding_the_cut():
    rng = np.random.default_rng(4)
    n = 5000
    values = rng.normal(size=n)
    values[rng.random(n) < 0.05] = np.inf
    steps = np.arange(n) * 10
    stats = MetricStats(history_buckets=16, recent_size=8)
    stats.update_many(steps, values)
    width = stats.width
    assert width > 1
    gone = stats.rewind(31_234)  # step of point 3123.4 -> inside a bucket
    kept = stats.count
    assert kept == 3124 - 3124 % width and gone == n - kept
    assert stats.last_step < 31_234
    assert stats.last_step == steps[kept - 1] and stats.last_value == values[kept - 1]
    assert np.all(stats.history().last_steps < 31_234)
    part = values[:kept]
    finite = part[np.isfinite(part)]
    assert stats.finite_count == finite.size and stats.inf_count == kept - finite.size
    assert stats.mean == pytest.approx(finite.mean(), abs=1e-12)
    assert stats.std == pytest.approx(finite.std(ddof=1), rel=1e-10)
    assert (stats.min, stats.max) == (finite.min(), finite.max())
    assert stats.first_nonfinite_step == steps[np.argmax(~np.isfinite(values))]
    assert abs(stats.ema) < 1.0  # recomputed from bucket means of N(0,1) data
    # resumed points are accepted and appended after the kept ones
    stats.update_many(np.arange(31_234, 40_000, 10), rng.normal(size=877))
    assert stats.count == kept + 877
    assert np.all(np.diff(stats.history().steps) > 0)


def test_rewind_edges():
    stats = feed_loop(MetricStats(), range(10, 20), np.arange(10.0))
    assert stats.rewind(100) == 0  # nothing at or after step 100: no change
    assert stats.count == 10 and stats.last_step == 19
    assert stats.rewind(5) == 10  # before the first point: everything goes
    assert stats.count == 0 and stats.first_step is None and math.isnan(stats.mean)
    stats.update(3, 2.0)
    assert stats.count == 1 and stats.first_step == 3 and stats.mean == 2.0


# ---------------------------------------------------------------------------- trend


def series_stats(values, **kwargs) -> MetricStats:
    stats = MetricStats(**kwargs)
    stats.update_many(np.arange(len(values)) * 100, np.asarray(values, dtype=float))
    return stats


def test_trend_increasing_and_decreasing():
    rng = np.random.default_rng(8)
    n = 20_000
    rising = np.linspace(0.0, 50.0, n) + rng.normal(0, 20.0, n)  # noisy reward climbing
    trend = series_stats(rising).trend()
    assert trend.label == "increasing" and trend.significant and trend.tau > 0.5
    assert trend.change == pytest.approx(50.0, rel=0.1)
    entropy = 0.2 + 1.2 * np.exp(-np.linspace(0, 5, n)) + rng.normal(0, 0.05, n)
    trend = series_stats(entropy).trend()
    assert trend.label == "decreasing" and trend.slope < 0 and trend.tau < -0.5


def test_trend_stable_and_volatile():
    rng = np.random.default_rng(9)
    n = 20_000
    stable = 5.0 + rng.normal(0, 0.3, n)
    trend = series_stats(stable).trend()
    assert trend.label == "stable" and not trend.significant
    # few, wildly jumping points (e.g. evaluation returns): width 1, noise >> level
    jumpy = 10.0 + rng.normal(0, 8.0, 120)
    assert series_stats(jumpy).trend().label == "volatile"


def test_trend_small_drift_is_stable_not_trending():
    """A clear but immaterial drift (1% of the level) is 'stable'."""
    n = 10_000
    drift = 100.0 + np.linspace(0.0, 1.0, n) + np.random.default_rng(3).normal(0, 0.05, n)
    trend = series_stats(drift).trend()
    assert trend.significant and trend.label == "stable"


def test_trend_is_not_fooled_by_a_spike():
    rng = np.random.default_rng(10)
    n = 200  # width 1: the spike is a bucket of its own
    stable = 5.0 + rng.normal(0, 0.05, n)
    stable[-1] = 500.0
    assert series_stats(stable).trend().label == "stable"
    stable[-1] = 5.0
    stable[100] = -1e4
    assert series_stats(stable).trend().label == "stable"
    rising = np.linspace(1.0, 3.0, n) + rng.normal(0, 0.05, n)
    rising[-2] = -1e3
    assert series_stats(rising).trend().label == "increasing"


def test_trend_recent_part_sees_a_plateau():
    n = 20_000
    x = np.linspace(0.0, 1.0, n)
    curve = np.minimum(x, 0.5) * 4.0 + np.random.default_rng(12).normal(0, 0.02, n)
    stats = series_stats(curve)
    assert stats.trend("all").label == "increasing"
    assert stats.trend("recent").label == "stable"
    with pytest.raises(ValueError):
        stats.trend("middle")


def test_trend_unknown_with_too_few_buckets():
    assert series_stats([1.0, 2.0, 3.0]).trend().label == "unknown"
    trend = series_stats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).trend()
    assert trend.label == "increasing" and trend.tau == 1.0
    assert judge_trend(np.zeros(5), np.arange(5.0)).label == "unknown"  # no step span


def test_constant_series_is_stable():
    trend = series_stats(np.full(1000, 0.7)).trend()
    assert trend.label == "stable" and trend.slope == 0.0 and trend.tau == 0.0


# ---------------------------------------------------------------------------- head / tail


def test_format_change_of_smooth_rise():
    n = 10_000
    x = np.linspace(-1.0, 1.0, n)
    head, tail = 1.309, 2.1703
    curve = head + (tail - head) * 0.5 * (1.0 + np.tanh(12.0 * x))
    stats = series_stats(curve)
    assert stats.format_change("Entropy") == "Entropy: 1.31 \u2192 2.17 (+65.8%)"
    assert stats.head_value() == pytest.approx(head, abs=1e-4)
    assert stats.tail_value() == pytest.approx(tail, abs=1e-4)
    data = stats.to_dict()
    assert data["change_pct"] == pytest.approx(65.8, abs=0.05)
    assert data["trend"] == "increasing"


def test_head_tail_are_smoothed_not_raw_endpoints():
    values = np.full(1000, 2.0)
    values[0] = 100.0  # a wild first point
    values[-1] = -50.0  # and last point
    stats = series_stats(values)
    assert stats.head_value() == pytest.approx(2.0 + 98.0 / 100, rel=1e-9)  # mean of first 10%
    assert stats.tail_value() == pytest.approx(2.0 - 52.0 / 100, rel=1e-9)
    assert stats.relative_change() == pytest.approx((1.48 - 2.98) / 2.98)


def test_head_tail_from_buckets_on_long_run():
    n = 200_000
    values = np.linspace(0.0, 10.0, n)
    stats = series_stats(values, history_buckets=64)
    assert stats.head_value() == pytest.approx(values[: n // 10].mean(), rel=0.05)
    assert stats.tail_value() == pytest.approx(values[-n // 10 :].mean(), rel=0.01)


def test_tiny_negative_change_is_not_printed_as_minus_zero():
    stats = series_stats(np.r_[np.full(100, 1.0), np.full(100, 0.9999)])
    assert stats.format_change("Ratio") == "Ratio: 1.00 \u2192 1.00 (+0.0%)"


def test_relative_change_none_when_head_zero():
    stats = series_stats(np.r_[np.zeros(50), np.ones(50)])
    assert stats.relative_change() is None
    assert stats.format_change("Loss") == "Loss: 0 \u2192 1.00"
    assert stats.to_dict()["change_pct"] is None


@pytest.mark.parametrize(
    "value, text",
    [
        (1.3094, "1.31"),
        (2.1703, "2.17"),
        (0.012345, "0.0123"),
        (9.996, "10.0"),
        (1234.5, "1234"),
        (-0.5, "-0.500"),
        (1.5e-5, "1.5e-05"),
        (2.5e7, "2.5e+07"),
        (0.0, "0"),
        (float("nan"), "nan"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


# ---------------------------------------------------------------------------- other queries


def test_version_and_memoised_figures_follow_every_change():
    stats = series_stats(np.linspace(1.0, 2.0, 300))
    version = stats.version
    first = stats.trend()
    assert stats.trend() is first and stats.recent is stats.recent
    calls = []
    assert stats.cached("x", lambda: calls.append(1) or 5) == 5
    assert stats.cached("x", lambda: calls.append(1) or 6) == 5 and len(calls) == 1
    stats.update(30_000, 0.0)
    assert stats.version == version + 1 and stats.cached("x", lambda: 6) == 6
    assert stats.trend() is not first
    stats.rewind(30_000)
    assert stats.version == version + 2


def test_full_history_fits_in_a_few_kilobytes():
    import tracemalloc

    values = np.random.default_rng(3).normal(size=200_000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for _ in range(20):
        stats = MetricStats()
        stats.update_many(np.arange(values.size), values)
        kept.append(stats)
    per_stats = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    tracemalloc.stop()
    assert per_stats < 12_000  # float64 values: ~9 KB at the defaults (was ~49 KB)


def _history_bytes(values: np.ndarray) -> float:
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for _ in range(20):
        stats = MetricStats()
        stats.update_many(np.arange(values.size), values)
        kept.append(stats)
    per_stats = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    tracemalloc.stop()
    return per_stats


def test_float32_values_keep_a_narrower_history_than_float64():
    values = np.random.default_rng(5).normal(size=2_000)  # 125 buckets: the fullest history
    narrow = _history_bytes(values.astype(np.float32).astype(np.float64))
    wide = _history_bytes(values)
    assert narrow <= 8192 and narrow < wide - 1000  # event-file values: min/max/last in float32


@pytest.mark.parametrize("mode", ["many", "loop"])
def test_narrow_fields_widen_and_every_figure_stays_exact(mode):
    """Values float32 cannot hold, steps past int32 and counts past uint16 widen the field;
    each figure is then the one the plain float64 reference gives."""
    rng = np.random.default_rng(11)
    size = 4_000
    steps = np.arange(size, dtype=np.int64) * 3 + 2**31 - 6_000  # crosses the int32 limit
    values = rng.normal(size=size).astype(np.float32).astype(np.float64)
    values[2_500] = 50.0 + 2.0**-40  # not a float32, and its bucket's max
    values[3_100] = np.nan
    stats = MetricStats(history_buckets=8)
    if mode == "many":
        stats.update_many(steps[:2_000], values[:2_000])
        stats.update_many(steps[2_000:], values[2_000:])
    else:
        feed_loop(stats, steps, values)
    finite = values[np.isfinite(values)]
    assert stats.min == finite.min() and stats.max == finite.max()
    assert stats.last_step == steps[-1] and stats.first_nonfinite_step == steps[3_100]
    assert stats._rec.dtype["last_step"] == np.int64 and stats._rec.dtype["min"] == np.float64
    history = stats.history()
    assert history.last_steps[-1] == steps[-1] and history.first_steps[0] == steps[0]
    edges = np.searchsorted(steps, history.last_steps, side="right")
    starts = np.concatenate(([0], edges[:-1]))
    for lo, hi, low, high in zip(starts, edges, history.mins, history.maxs):
        part = values[lo:hi][np.isfinite(values[lo:hi])]
        assert low == part.min() and high == part.max()
    np.testing.assert_array_equal(stats._raw_window()[0], steps[-64:])
    # counts past uint16: width 2**17 needs one merge beyond 65,535 points a bucket
    big = MetricStats(history_buckets=8)
    count = 8 * 2**16 + 10
    big.update_many(np.arange(count), np.zeros(count))
    assert big.zero_count == count and big._rec.dtype["zero"].itemsize > 2
    assert int(big._rec["nf"][: big._nb].sum()) + big._o_nf == count


def test_recent_window_shares_the_raw_window_until_a_non_finite_value():
    stats = MetricStats(recent_size=8)
    stats.update_many(np.arange(30), np.arange(30.0))
    assert stats._fv is stats._rv
    np.testing.assert_array_equal(stats.recent_values(), np.arange(22.0, 30.0))
    stats.update(30, float("nan"))
    assert stats._fv is not stats._rv
    np.testing.assert_array_equal(stats.recent_values(), np.arange(22.0, 30.0))
    stats.update(31, 31.0)
    np.testing.assert_array_equal(stats.recent_values(), np.arange(23.0, 30.0).tolist() + [31.0])
    assert stats._raw_window()[1][-2] != stats._raw_window()[1][-2]  # the NaN is a raw point
    # a rewind keeps the windows exact whether they are shared or not
    shared = MetricStats(recent_size=8)
    shared.update_many(np.arange(100), np.arange(100.0))
    shared.rewind(97)
    assert shared._fv is shared._rv
    np.testing.assert_array_equal(shared.recent_values(), np.arange(97.0)[-8:])  # width 1: exact


def test_fraction_outside_is_exact_at_width_one():
    values = np.array([0.5, 1.0, 1.1, 2.5, 0.95, np.nan, 3.0, 1.0])
    stats = series_stats(values)
    finite = values[np.isfinite(values)]
    expected = np.mean((finite < 0.8) | (finite > 1.2))
    assert stats.fraction_outside(0.8, 1.2) == pytest.approx(expected)


def test_to_dict_keys_and_json():
    stats = series_stats(np.linspace(1.0, 2.0, 500))
    data = stats.to_dict()
    for key in (
        "count",
        "first_step",
        "last_step",
        "first_value",
        "last_value",
        "min",
        "max",
        "mean",
        "std",
        "ema",
        "nonfinite_count",
        "first_nonfinite_step",
        "zero_count",
        "head",
        "tail",
        "change_pct",
        "trend",
        "trend_recent",
    ):
        assert key in data
    json.dumps(data, allow_nan=False)
    assert data["trend"] == "increasing" and data["first_value"] == 1.0


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError):
        MetricStats(history_buckets=7)
    with pytest.raises(ValueError):
        MetricStats(recent_size=1)
    with pytest.raises(ValueError):
        MetricStats(ema_alpha=0.0)
