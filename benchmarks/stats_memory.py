"""Memory and speed of tblive.series.stats.MetricStats vs keeping every value in a list.

Measured side by side in one run:

* RSS of a fresh process after 1M and after 10M points fed (in 40k-point chunks via
  ``update_many``) to ONE metric -- target: ratio 10M/1M < 1.10 (bounded memory);
* the same for what users do today: append every value to a Python list and call
  ``np.mean`` / ``np.std`` at the end (memory grows with the run);
* microseconds per ``update()`` call (pure Python per-point path), per point of
  ``update_many``, and per ``list.append`` for comparison (median of several repeats);
* bytes held by one ``MetricStats`` (tracemalloc, 300 objects) at lengths from 200 to 200k
  points, for float32 values (what event files hold) and float64 values, with and without
  the memoised figures ``to_dict`` leaves -- target <= 8 KB;
* microseconds per ``update_many`` call on a fresh 200-point / 30-point series (the cost per
  series of a sweep: a batch per series) -- it was ~500 us for 200 points.

Each RSS measurement runs in its own subprocess so the numbers do not contaminate each
other.  Usage: ``python benchmarks/stats_memory.py`` (about 15 seconds).
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tblive.series.stats import MetricStats  # noqa: E402

CHUNK = 40_000
SMALL = 1_000_000
LARGE = 10_000_000
REPEATS = 5


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def chunks(total: int, seed: int = 0):
    """(steps, values) chunks of a noisy, slowly rising metric with a few NaNs."""
    rng = np.random.default_rng(seed)
    for start in range(0, total, CHUNK):
        steps = np.arange(start, start + CHUNK, dtype=np.int64) * 8
        values = 1.0 + steps * 1e-8 + rng.normal(0.0, 0.3, CHUNK)
        values[rng.random(CHUNK) < 1e-4] = np.nan
        yield steps, values


def measure_stats_rss() -> dict:
    """Child process: MetricStats fed 1M then 10M points."""
    stats = MetricStats()
    base = rss_mb()
    feed_seconds = 0.0
    result = {"base_mb": base}
    fed = 0
    for steps, values in chunks(LARGE):
        start = time.perf_counter()
        stats.update_many(steps, values)
        feed_seconds += time.perf_counter() - start
        fed += values.size
        if fed == SMALL:
            result["rss_1m_mb"] = rss_mb()
    result["rss_10m_mb"] = rss_mb()
    result["update_many_us_per_point"] = feed_seconds / fed * 1e6
    result["count"] = stats.count
    result["buckets"] = stats.bucket_count
    return result


def measure_stats_loop_rss() -> dict:
    """Child process: MetricStats fed 1M then 10M points one update() call at a time."""
    stats = MetricStats()
    update = stats.update
    base = rss_mb()
    result = {"base_mb": base}
    fed = 0
    for steps, values in chunks(LARGE):
        for step, value in zip(steps.tolist(), values.tolist()):
            update(step, value)
        fed += values.size
        if fed == SMALL:
            result["rss_1m_mb"] = rss_mb()
    result["rss_10m_mb"] = rss_mb()
    result["count"] = stats.count
    result["buckets"] = stats.bucket_count
    return result


def measure_list_rss() -> dict:
    """Child process: today's way -- every value in a Python list, numpy at the end."""
    kept = []
    base = rss_mb()
    result = {"base_mb": base}
    for steps, values in chunks(LARGE):
        kept.extend(values.tolist())
        if len(kept) == SMALL:
            result["rss_1m_mb"] = rss_mb()
    result["rss_10m_mb"] = rss_mb()
    start = time.perf_counter()
    array = np.asarray(kept, dtype=np.float64)
    finite = array[np.isfinite(array)]
    result["final_mean"] = float(np.mean(finite))
    result["final_std"] = float(np.std(finite, ddof=1))
    result["final_numpy_seconds"] = time.perf_counter() - start
    result["count"] = len(kept)
    return result


def run_child(mode: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, mode], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def time_update_loop(points: int = 200_000) -> float:
    """Median microseconds per MetricStats.update() call."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=points).tolist()
    values[::997] = [float("nan")] * len(values[::997])
    walls = (1e9 + np.arange(points) * 0.01).tolist()
    timings = []
    for _ in range(REPEATS):
        stats = MetricStats()
        update = stats.update
        start = time.perf_counter()
        for step in range(points):
            update(step, values[step], walls[step])
        timings.append((time.perf_counter() - start) / points * 1e6)
    return statistics.median(timings)


def time_list_append(points: int = 200_000) -> float:
    """Median microseconds per list.append (the per-point cost of today's way)."""
    values = np.random.default_rng(1).normal(size=points).tolist()
    timings = []
    for _ in range(REPEATS):
        kept = []
        append = kept.append
        start = time.perf_counter()
        for step in range(points):
            append(values[step])
        timings.append((time.perf_counter() - start) / points * 1e6)
    return statistics.median(timings)


def time_update_many(points: int = 2_000_000) -> float:
    """Median microseconds per point of update_many on 40k-point chunks (report path)."""
    prepared = list(chunks(points, seed=2))
    timings = []
    for _ in range(REPEATS):
        stats = MetricStats()
        start = time.perf_counter()
        for steps, values in prepared:
            stats.update_many(steps, values)
        timings.append((time.perf_counter() - start) / points * 1e6)
    return statistics.median(timings)


def time_report_series(series: int = 50, length: int = 40_000) -> float:
    """Median seconds to build MetricStats for 50 fresh 40k-point series (2M points)."""
    prepared = list(chunks(length, seed=3))[0]
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(series):
            MetricStats().update_many(*prepared)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def bytes_per_stats(
    length: int, objects: int = 300, float32: bool = True, figures: bool = True
) -> float:
    """Bytes one MetricStats holds after ``length`` points (tracemalloc).

    ``float32``: values as event files hold them (float32, what ``report`` and ``watch``
    read), otherwise arbitrary float64 (what the in-process monitor may be given);
    ``figures``: after ``to_dict()``, so the memoised figures count too.
    """
    import tracemalloc

    values = np.random.default_rng(4).normal(size=length)
    if float32:
        values = values.astype(np.float32).astype(np.float64)
    steps = np.arange(length)
    warm = MetricStats()  # shared caches (the trend's pair indices) stay outside the count
    warm.update_many(steps, values)
    warm.to_dict()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for _ in range(objects):
        stats = MetricStats()
        stats.update_many(steps, values)
        if figures:
            stats.to_dict()
        kept.append(stats)
    used = (tracemalloc.get_traced_memory()[0] - before) / objects
    tracemalloc.stop()
    return used


def time_small_batches(length: int) -> float:
    """Median microseconds for one update_many call of ``length`` points on a fresh series."""
    values = np.random.default_rng(5).normal(size=length)
    steps = np.arange(length)
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(2000):
            MetricStats().update_many(steps, values)
        timings.append((time.perf_counter() - start) / 2000 * 1e6)
    return statistics.median(timings)


def main() -> None:
    started = time.perf_counter()
    lengths = (200, 2_000, 12_700, 200_000)
    sizes = {
        (float32, figures): [bytes_per_stats(n, float32=float32, figures=figures) for n in lengths]
        for float32 in (True, False)
        for figures in (True, False)
    }
    small = {length: time_small_batches(length) for length in (30, 200)}
    stats_rss = run_child("--child-stats")
    loop_rss = run_child("--child-loop")
    list_rss = run_child("--child-list")
    us_update = time_update_loop()
    us_append = time_list_append()
    us_many = time_update_many()
    report_seconds = time_report_series()

    print("tblive.series.stats benchmark (python %s)" % sys.version.split()[0])
    print()
    print("RSS of one metric fed 1M / 10M points (fresh process each, MB)")
    print("  %-34s %9s %9s %9s %8s" % ("", "base", "1M", "10M", "10M/1M"))
    for name, data in (
        ("MetricStats (update_many, 40k)", stats_rss),
        ("MetricStats (update() loop)", loop_rss),
        ("list + numpy at end", list_rss),
    ):
        print(
            "  %-34s %9.1f %9.1f %9.1f %8.3f"
            % (
                name,
                data["base_mb"],
                data["rss_1m_mb"],
                data["rss_10m_mb"],
                data["rss_10m_mb"] / data["rss_1m_mb"],
            )
        )
    for name, data in (("update_many", stats_rss), ("update() loop", loop_rss)):
        ratio = data["rss_10m_mb"] / data["rss_1m_mb"]
        print(
            "  MetricStats (%s) 10M/1M RSS ratio %.3f (target < 1.10: %s); buckets used: %d"
            % (name, ratio, "OK" if ratio < 1.10 else "FAIL", data["buckets"])
        )
    growth_stats = stats_rss["rss_10m_mb"] - stats_rss["base_mb"]
    growth_list = list_rss["rss_10m_mb"] - list_rss["base_mb"]
    print(
        "  growth over base at 10M: MetricStats %.1f MB, list %.1f MB" % (growth_stats, growth_list)
    )
    print(
        "  RSS at 10M, list / MetricStats: %.1fx"
        % (list_rss["rss_10m_mb"] / stats_rss["rss_10m_mb"])
    )
    print("  list way: final np.mean/np.std over 10M took %.2f s" % list_rss["final_numpy_seconds"])
    print()
    print("Per-point cost (median of %d repeats)" % REPEATS)
    print("  MetricStats.update()            %7.3f us/call" % us_update)
    print(
        "  list.append (today's way)       %7.3f us/call   (update/append %.1fx)"
        % (us_append, us_update / us_append)
    )
    print("  MetricStats.update_many         %7.4f us/point (40k chunks, 2M points)" % us_many)
    print(
        "  update_many, 10M-point run      %7.4f us/point" % stats_rss["update_many_us_per_point"]
    )
    print(
        "  50 fresh 40k-point series       %7.3f s (report path, 2M points; target well < 1 s)"
        % report_seconds
    )
    print()
    print("Bytes per MetricStats (tracemalloc; target <= 8 KB)")
    print("  %-50s" % "" + "".join("%10d" % n for n in lengths))
    for (float32, figures), used in sizes.items():
        label = "%s values, %s" % (
            "float32" if float32 else "float64",
            "after to_dict (memoised figures)" if figures else "statistics only",
        )
        print("  %-50s" % label + "".join("%8.0f B" % b for b in used))
    print("update_many on a fresh series (one sweep series; was ~500 us for 200 points)")
    for length, micros in small.items():
        print("  %9d points  %7.1f us/call" % (length, micros))
    print()
    print("total benchmark time %.1f s" % (time.perf_counter() - started))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-stats":
        print(json.dumps(measure_stats_rss()))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-loop":
        print(json.dumps(measure_stats_loop_rss()))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-list":
        print(json.dumps(measure_list_rss()))
    else:
        main()
