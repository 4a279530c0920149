"""Read speed and peak memory of tblive's reader vs the tools users have today, side by side.

The log: ``_biglog.big_log()`` -- 50 tags x 40,000 steps = 2M scalars (~100 MB) written by
tensorboardX (cached in the temp directory; about a minute to write the first time).

Each reader runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own.  Peak RSS is read as ``VmHWM``
(``ru_maxrss`` where /proc is missing).  The time is
measured inside the child around the read alone (imports excluded) and includes getting every
point out (a list/array per tag, or a DataFrame).

* tblive, every point kept (``SeriesPoints``)          -- median of 3 runs
* tblive, bounded statistics (``MetricStats`` sinks)   -- median of 3 runs
* tblive, ``verify_payload=True``, every point kept     -- median of 3 runs
* tensorboard ``EventAccumulator`` (size_guidance 0)    -- 1 run (slow)
* tbparse ``SummaryReader(...).scalars``                -- 1 run (slow)

Targets (from the reader issue): faster than TensorBoard's Rust data server (1.41 s measured on
this machine for this log), i.e. at least 25x EventAccumulator; peak RSS under 200 MB.

Usage: ``python benchmarks/read_speed.py [--quick] [--skip-slow]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

RUST_DATA_SERVER_SECONDS = 1.41  # measured earlier on this machine for the full log
RSS_TARGET_MB = 200.0
SPEEDUP_TARGET = 25.0


def peak_rss_mb() -> float:
    """This process's peak RSS.

    ``ru_maxrss`` survives ``exec`` on Linux (it would report the parent's peak if that was
    higher), so the per-process ``VmHWM`` is preferred where /proc has it.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# -- children ----------------------------------------------------------------------------------


def read_tblive_points(directory: str, verify: bool = False) -> int:
    from tblive.read.runs import load_points

    runs = load_points(directory, verify_payload=verify)
    return sum(sink.arrays()[0].shape[0] for series in runs.values() for sink in series.values())


def read_tblive_stats(directory: str) -> int:
    from tblive.read.runs import LogDir
    from tblive.series.stats import MetricStats

    logdir = LogDir(directory, lambda name: MetricStats())
    logdir.rescan()
    logdir.poll()
    return sum(stats.count for run in logdir.runs.values() for stats in run.sinks.values())


def read_event_accumulator(directory: str) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(directory, size_guidance={"scalars": 0})
    accumulator.Reload()
    return sum(len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"])


def read_tbparse(directory: str) -> int:
    from tbparse import SummaryReader

    return int(len(SummaryReader(directory).scalars))


def warm_imports(reader: str) -> None:
    if reader.startswith("tblive"):
        from tensorboard.compat.proto import event_pb2  # noqa: F401

        import tblive.read.runs  # noqa: F401
        import tblive.series.stats  # noqa: F401
    elif reader == "event_accumulator":
        from tensorboard.backend.event_processing import event_accumulator  # noqa: F401
    elif reader == "tbparse":
        import tbparse  # noqa: F401


READERS = {
    "tblive_points": read_tblive_points,
    "tblive_stats": read_tblive_stats,
    "tblive_verify": lambda directory: read_tblive_points(directory, verify=True),
    "event_accumulator": read_event_accumulator,
    "tbparse": read_tbparse,
}


def child(reader: str, directory: str) -> None:
    warm_imports(reader)
    start = time.perf_counter()
    points = READERS[reader](directory)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "points": points}))


# -- parent ------------------------------------------------------------------------------------


def run_child(reader: str, directory: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", reader, directory],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(reader: str, directory: str, repeats: int) -> dict:
    results = [run_child(reader, directory) for _ in range(repeats)]
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
        "points": results[0]["points"],
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="10 tags x 20,000 steps instead of 50 x 40,000"
    )
    parser.add_argument("--skip-slow", action="store_true", help="tblive only")
    parser.add_argument("--child", nargs=2, metavar=("READER", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    # written in a subprocess so that this parent stays small (children inherit nothing)
    shape = "tags=10, steps=20_000" if args.quick else ""
    directory = (
        subprocess.run(
            [sys.executable, "-c", "from _biglog import big_log; print(big_log(%s))" % shape],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(HERE),
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    size_mb = sum(p.stat().st_size for p in Path(directory).iterdir()) / 2**20
    print("log: %s (%.0f MB)" % (directory, size_mb))
    plan = [("tblive_points", 3), ("tblive_stats", 3), ("tblive_verify", 3)]
    if not args.skip_slow:
        plan += [("event_accumulator", 1), ("tbparse", 1)]
    results = {}
    for reader, repeats in plan:
        results[reader] = measure(reader, directory, repeats)
        print("  measured %-18s %.2f s" % (reader, results[reader]["seconds"]), flush=True)
    base = results["tblive_points"]["seconds"]
    print()
    print(
        "%-18s %10s %8s %10s %12s %10s"
        % ("reader", "seconds", "runs", "x tblive", "peak RSS MB", "points")
    )
    for reader, result in results.items():
        print(
            "%-18s %10.3f %8s %10.1f %12.0f %10d"
            % (
                reader,
                result["seconds"],
                "median%d" % result["repeats"] if result["repeats"] > 1 else "1 run",
                result["seconds"] / base,
                result["rss_mb"],
                result["points"],
            )
        )
    counts = {r["points"] for r in results.values()}
    print("all readers agree on the point count: %s" % (len(counts) == 1))
    if not args.quick:
        print(
            "tblive vs Rust data server (%.2f s): %.1fx faster"
            % (RUST_DATA_SERVER_SECONDS, RUST_DATA_SERVER_SECONDS / base)
        )
    if "event_accumulator" in results:
        speedup = results["event_accumulator"]["seconds"] / base
        print("EventAccumulator / tblive: %.1fx (target >= %.0fx)" % (speedup, SPEEDUP_TARGET))
    worst = max(results[r]["rss_mb"] for r in results if r.startswith("tblive"))
    print("tblive peak RSS: %.0f MB (target < %.0f MB)" % (worst, RSS_TARGET_MB))


if __name__ == "__main__":
    main()
