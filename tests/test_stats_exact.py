"""Property test: after any mix of points and rewinds, MetricStats describes its kept points.

A plain Python list is the reference.  Random sequences with repeated steps, non-finite
values and zeros are fed (one by one or in random blocks) into small histories that merge
many times; rewinds cut at random steps.  After every operation the statistics must equal
what the list says about the points the documented rule keeps (see the module docstring of
``tblive.series.stats``):

* everything at steps below the cut when the cut's bucket starts inside the raw window or
  the cut is on a bucket boundary, otherwise everything before the cut's bucket;
* count, finite/NaN/Inf/zero counts, first/last step and value, first non-finite step, min,
  max, mean, std: as computed from the kept points;
* head, tail, history and recent window: as computed from the kept points grouped into
  consecutive buckets of the current width; the EMA whenever every discarded point was in
  the raw window.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tblive.judge.verdict import evaluate
from tblive.series.feed import SeriesFeed, SeriesPoints
from tblive.series.stats import MetricStats

Point = Tuple[int, float]


class Reference:
    """The kept points as a list, with the raw-window length the rule depends on."""

    def __init__(self, raw_size: int, alpha: float) -> None:
        self.points: List[Point] = []
        self.raw_size = raw_size
        self.raw_len = 0
        self.alpha = alpha
        self.ema_known = True
        self.full_recent = True  # the recent window holds all it can (no rewind emptied it)

    def add(self, points: List[Point]) -> None:
        self.points.extend(points)
        self.raw_len = min(self.raw_size, self.raw_len + len(points))

    def rewind(self, step: int, width: int) -> int:
        """Apply the documented rule; return how many points go."""
        total = len(self.points)
        if not total or self.points[-1][0] < step:
            return 0
        cut = next(i for i, (s, _) in enumerate(self.points) if s >= step)
        start = cut - cut % width
        raw_start = total - self.raw_len
        keep = cut if (cut == start or start >= raw_start) else start
        if width == 1:  # one point a bucket: the windows are rebuilt from the buckets
            self.raw_len = min(self.raw_size, keep)
            self.ema_known = True
            self.full_recent = True
        else:
            if keep < raw_start:
                self.ema_known = False
            self.raw_len = max(0, keep - raw_start)
            self.full_recent = False
        del self.points[keep:]
        if not keep:
            self.ema_known = True
        return total - keep


def finite_of(points: List[Point]) -> np.ndarray:
    values = np.array([v for _, v in points], dtype=np.float64)
    return values[np.isfinite(values)]


def buckets_of(points: List[Point], width: int):
    """(counts, means, mean steps) of consecutive width-point buckets with finite values."""
    counts, means, steps = [], [], []
    for lo in range(0, len(points), width):
        chunk = points[lo : lo + width]
        good = [(s, v) for s, v in chunk if math.isfinite(v)]
        if good:
            counts.append(len(good))
            means.append(float(np.mean([v for _, v in good])))
            steps.append(float(np.mean([s for s, _ in good])))
    return np.array(counts), np.array(means), np.array(steps)


def leading_mean(counts: np.ndarray, means: np.ndarray, target: int) -> float:
    total, remaining = 0.0, target
    for count, mean in zip(counts.tolist(), means.tolist()):
        used = min(count, remaining)
        total += used * mean
        remaining -= used
        if not remaining:
            break
    return total / target


def close(a: float, b: float, rel: float = 1e-9, scale: float = 1.0) -> bool:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= rel * max(abs(a), abs(b), scale)


def check(stats: MetricStats, ref: Reference) -> None:
    points = ref.points
    assert stats.count == len(points)
    values = np.array([v for _, v in points], dtype=np.float64)
    finite = finite_of(points)
    assert stats.finite_count == finite.size
    assert stats.nan_count == int(np.isnan(values).sum())
    assert stats.inf_count == int(np.isinf(values).sum())
    assert stats.zero_count == int((values == 0.0).sum())
    if not points:
        assert stats.first_step is None and stats.last_step is None
        assert math.isnan(stats.mean) and stats.history().counts.size == 0
        return
    assert (stats.first_step, stats.last_step) == (points[0][0], points[-1][0])
    assert close(stats.first_value, points[0][1], 0.0) and close(stats.last_value, values[-1], 0)
    bad = [s for s, v in points if not math.isfinite(v)]
    assert stats.first_nonfinite_step == (bad[0] if bad else None)
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    if finite.size:
        assert stats.min == finite.min() and stats.max == finite.max()
        assert close(stats.mean, float(finite.mean()), 1e-9, scale)
        std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
        assert close(stats.std, std, 1e-6, scale)
    width = stats.width
    counts, means, steps = buckets_of(points, width)
    hist = stats.history()
    assert hist.counts.tolist() == counts.tolist()
    assert np.allclose(hist.means, means, rtol=1e-9, atol=1e-9 * scale)
    assert np.allclose(hist.steps, steps, rtol=1e-12)
    assert stats.bucket_count <= 8
    recent = stats.recent_values()
    assert (
        recent.size <= ref.raw_size
        and recent.tolist() == finite[finite.size - recent.size :].tolist()
    )
    if ref.full_recent:
        assert recent.size == min(ref.raw_size, finite.size)
    if finite.size:
        target = max(1, int(math.ceil(0.1 * finite.size)))
        head = leading_mean(counts, means, target)
        assert close(stats.head_value(), head, 1e-9, scale)
        if target <= recent.size:
            tail = float(finite[-target:].mean())
        else:
            tail = leading_mean(counts[::-1], means[::-1], target)
        assert close(stats.tail_value(), tail, 1e-9, scale)
        if ref.ema_known:
            ema = float(finite[0])
            for value in finite[1:].tolist():
                ema += ref.alpha * (value - ema)
            assert close(stats.ema, ema, 1e-6, scale)
    else:
        assert math.isnan(stats.head_value()) and math.isnan(stats.ema)


VALUES = np.array([0.0, np.nan, np.inf, -np.inf, 1.5, -2.25, 3.0, 1e6, -1e-3])

operation = st.tuples(
    st.sampled_from(["add", "add", "add", "rewind"]),
    st.integers(min_value=1, max_value=400),
    st.integers(min_value=0, max_value=2**31),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    operations=st.lists(operation, min_size=1, max_size=25),
    one_by_one=st.booleans(),
    alpha=st.sampled_from([0.05, 0.5, 1.0]),
    window=st.sampled_from([3, 20]),
)
def test_rewinds_keep_an_exact_prefix(operations, one_by_one, alpha, window):
    stats = MetricStats(history_buckets=8, recent_size=window, ema_alpha=alpha)
    ref = Reference(raw_size=window, alpha=alpha)
    for kind, size, seed in operations:
        rng = np.random.default_rng(seed)
        last = ref.points[-1][0] if ref.points else int(rng.integers(0, 5))
        if kind == "add":
            size = size if seed % 3 else size % 12 + 1  # small batches too
            # steps rise by 0 (a repeat), 1 or 2; values normal, with specials mixed in
            steps = last + np.cumsum(rng.integers(0, 3, size))
            values = rng.normal(0.0, 2.0, size)
            special = rng.random(size) < 0.15
            values[special] = rng.choice(VALUES, int(special.sum()))
            if one_by_one:
                for step, value in zip(steps.tolist(), values.tolist()):
                    stats.update(step, value)
            else:
                cuts = np.sort(rng.integers(0, size, 3))
                for part_s, part_v in zip(np.split(steps, cuts), np.split(values, cuts)):
                    stats.update_many(part_s, part_v)
            ref.add(list(zip(steps.tolist(), values.tolist())))
        else:
            first = ref.points[0][0] if ref.points else 0
            if ref.points and size % 2:  # near the end: inside the raw window or just before
                step = ref.points[max(0, len(ref.points) - 1 - size % 9)][0]
            else:
                step = int(rng.integers(first - 1, last + 2))
            width = stats.width
            before = sum(1 for s, _ in ref.points if s < step)
            expected = ref.rewind(step, width)
            exact = before == len(ref.points)
            event("rewind at width %s: %s" % (min(width, 32), "exact" if exact else "cut"))
            assert stats.rewind(step) == expected
            assert not ref.points or ref.points[-1][0] < step
        check(stats, ref)


def test_rewind_inside_the_filling_bucket_and_far_back():
    """Concrete cases of the rule, at width 64 with a 64-point raw window."""
    values = np.sin(np.arange(10_000) / 50.0) + np.arange(10_000) * 1e-4
    steps = np.arange(10_000) * 10
    stats = MetricStats()
    stats.update_many(steps, values)
    width = stats.width
    assert width == 128
    # inside the filling bucket, within the raw window: exact
    assert stats.rewind(int(steps[9_990])) == 10
    assert stats.count == 9_990 and stats.last_value == values[9_989]
    assert stats.max == values[:9_990].max() and math.isclose(stats.mean, values[:9_990].mean())
    # far back, mid-bucket: the whole bucket holding the cut goes (and is counted)
    cut = 3_000
    gone = stats.rewind(int(steps[cut]))
    kept = cut - cut % width
    assert gone == 9_990 - kept and stats.count == kept
    assert stats.min == values[:kept].min() and stats.max == values[:kept].max()
    assert math.isclose(stats.std, values[:kept].std(ddof=1), rel_tol=1e-9)
    assert stats.last_step == steps[kept - 1] and stats.last_value == values[kept - 1]
    # far back, on a bucket boundary: exact
    assert stats.rewind(int(steps[width * 3])) == kept - width * 3
    assert stats.count == width * 3


def _collapse(repeat_every: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """A reward that rises for 6,000 steps then collapses; optionally every n-th step twice."""
    rng = np.random.default_rng(7)
    steps = np.arange(10_000)
    level = np.where(steps < 6_000, steps / 6_000 * 100.0, 100.0 - (steps - 6_000) / 4_000 * 190)
    values = level + rng.normal(0.0, 3.0, steps.size)
    if repeat_every:
        again = steps[::repeat_every]
        order = np.argsort(np.concatenate([steps, again]), kind="stable")
        extra = values[::repeat_every] + rng.normal(0.0, 3.0, again.size)
        steps = np.concatenate([steps, again])[order]
        values = np.concatenate([values, extra])[order]
    return steps, values


@pytest.mark.parametrize("repeat_every", [None, 10])
def test_collapse_with_repeated_steps_stays_critical(repeat_every):
    steps, values = _collapse(repeat_every)
    stats = MetricStats()
    feed = SeriesFeed(stats)
    for lo in range(0, steps.size, 700):  # batches as the reader hands them over
        feed.add_many(steps[lo : lo + 700], values[lo : lo + 700], np.zeros(700))
    feed.flush()
    assert feed.rewinds == 0 and feed.discarded == 0
    assert stats.count == steps.size
    assert stats.tail_value() < -50
    verdict = evaluate("collapse", {"rollout/ep_rew_mean": stats})
    assert verdict.status.name == "CRITICAL", [f.message for f in verdict.findings]


def test_feed_keeps_repeats_and_rewinds_only_below_the_last_step():
    points = SeriesPoints()
    stats = MetricStats()
    feeds = [SeriesFeed(points), SeriesFeed(stats)]
    steps = np.array([0, 1, 1, 2, 3, 3, 3, 1, 2, 2, 5])
    values = np.arange(steps.size, dtype=np.float64)
    for feed in feeds:
        feed.add_many(steps[:5], values[:5], np.zeros(5))
        for step, value in zip(steps[5:].tolist(), values[5:].tolist()):
            feed.add(step, value)
    kept_steps, kept_values, _ = points.arrays()
    # the step-1 point after step 3 drops steps 1..3 (six points); repeats are kept
    assert kept_steps.tolist() == [0, 1, 2, 2, 5]
    assert kept_values.tolist() == [0.0, 7.0, 8.0, 9.0, 10.0]
    assert stats.recent_values().tolist() == kept_values.tolist()
    for feed in feeds:
        assert feed.rewinds == 1 and feed.discarded == 6 and feed.last_step == 5


REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "realworld"


@pytest.mark.parametrize(
    "case, tag",
    [
        ("lightning_naf_dqn", "epoch"),  # logged at repeated steps
        ("rsl_rl_legged_gym_biped", "Train/mean_reward/time"),  # whole seconds as the step
    ],
)
def test_real_series_with_repeated_steps_keep_every_point(case, tag):
    """Statistics of real series logged at repeated steps hold every point the reader keeps."""
    if not (REALWORLD / case).is_dir():
        pytest.skip("../shared/realworld is not present")
    from tblive.read.runs import LogDir

    logdir = LogDir(str(REALWORLD / case), lambda name: MetricStats())
    logdir.rescan()
    feeds = []
    for run in logdir.runs.values():
        run.poll()
        if tag in run.feeds:
            run.feeds[tag].flush()
            feeds.append(run.feeds[tag])
    (feed,) = feeds
    stats = feed.sink
    steps, kept = _points_of(str(REALWORLD / case), tag)[:2]
    assert np.count_nonzero(np.diff(steps) == 0) > kept.size // 100  # repeats all along
    assert feed.rewinds == 0 and feed.discarded == 0
    assert stats.count == kept.size and stats.last_value == kept[-1]
    assert stats.max == kept.max() and math.isclose(stats.mean, kept.mean(), rel_tol=1e-9)
    assert math.isclose(stats.std, kept.std(ddof=1), rel_tol=1e-6)
    width = stats.width
    counts, means, _ = buckets_of(list(zip(steps.tolist(), kept.tolist())), width)
    target = max(1, int(math.ceil(0.1 * kept.size)))
    assert math.isclose(stats.head_value(), leading_mean(counts, means, target), rel_tol=1e-9)
    assert math.isclose(stats.tail_value(), float(kept[-target:].mean()), rel_tol=1e-9) or (
        target > stats.recent_values().size
    )


def _points_of(path: str, tag: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    from tblive.read.runs import load_points

    (series,) = [s for s in load_points(path).values() if tag in s]
    return series[tag].arrays()
