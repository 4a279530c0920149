"""A sweep-sized results tree: tblive report / watch vs EventAccumulator and tbparse, side by side.

The tree (written once with tensorboardX, cached in the temp directory; a few minutes the
first time): 200 runs x 60 tags x 200 points = 2.4M scalars, SB3-like tag names (reward,
losses, entropy, KL, ...) and generic extras, every run a noisy rising reward.

Measured in one run, each reader in its own fresh process (imports excluded from the time,
peak RSS = the child's ``VmHWM``), median of ``--repeats`` (``--slow-repeats`` for the slow
readers); report and EventAccumulator runs alternate, and the ratio of each back-to-back pair
is printed too (the machine's load moves between runs):

* ``tblive report --json`` (the CLI's ``main``: read, judge, render JSON to a file; reading
  the file back to check it happens after the clock stops);
* TensorBoard's ``EventAccumulator``, run by run, every scalar taken out;
* tbparse ``SummaryReader(tree).scalars`` when tbparse is installed (the ``bench`` extra);
* ``tblive watch --poll``: its RSS once it has read the whole tree, and its CPU share while
  idle afterwards (then SIGTERM).

Targets (issue "sweeps at scale"): report >= 15x faster than EventAccumulator and <= 250 MB
peak; watch <= 250 MB once caught up, idle CPU < 1%.

``--json-scaling`` instead times ``render_json`` (and the verdict) on synthetic runs of 10k and
100k series, to show the JSON report is linear in the number of series.

Usage: ``python benchmarks/sweep.py [--repeats N] [--slow-repeats N] [--skip-slow]
[--skip-watch] [--json-scaling] [--profile]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

RUNS, TAGS, POINTS = 200, 60, 200
SPEEDUP_TARGET = 15.0
RSS_TARGET_MB = 250.0
NAMED_TAGS = [
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "train/entropy_loss",
    "train/value_loss",
    "train/policy_gradient_loss",
    "train/approx_kl",
    "train/clip_fraction",
    "train/explained_variance",
    "train/learning_rate",
    "train/loss",
    "train/std",
    "time/fps",
]


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- the tree ----------------------------------------------------------------------------------


def tree_path(runs: int = RUNS, tags: int = TAGS, points: int = POINTS) -> str:
    return os.path.join(tempfile.gettempdir(), "tblive-sweep-%dx%dx%d" % (runs, tags, points))


def write_tree(root: str, runs: int = RUNS, tags: int = TAGS, points: int = POINTS) -> None:
    """Write the tree with tensorboardX (skipped when a previous write completed)."""
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return
    import numpy as np
    from tensorboardX import SummaryWriter

    names = NAMED_TAGS[:tags] + ["extra/metric_%02d" % i for i in range(tags - len(NAMED_TAGS))]
    for run in range(runs):
        directory = os.path.join(root, "lr%d" % (run % 5), "seed_%03d" % run)
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                os.remove(os.path.join(directory, name))
        rng = np.random.default_rng(run)
        noise = rng.normal(0.0, 1.0, (points, len(names)))
        writer = SummaryWriter(directory, max_queue=100_000, flush_secs=3600)
        for i in range(points):
            step = (i + 1) * 2048
            progress = i / points
            for j, name in enumerate(names):
                if name == "rollout/ep_rew_mean":
                    value = 200.0 * (1 - math.exp(-3 * progress)) + 5 * noise[i, j]
                elif name == "train/entropy_loss":
                    value = -1.4 + 0.6 * progress + 0.02 * noise[i, j]
                else:
                    value = 1.0 + 0.1 * j + 0.05 * noise[i, j]
                writer.add_scalar(name, float(value), step)
        writer.close()
    open(done, "w").close()


def run_dirs(root: str) -> List[str]:
    return sorted(
        dirpath for dirpath, _, files in os.walk(root) if any("tfevents" in name for name in files)
    )


# -- children ----------------------------------------------------------------------------------


def child_report(root: str) -> int:
    """``tblive report ROOT --json FILE``; the check that the file is complete (it is read
    back) runs after the clock stops (see :func:`child`)."""
    from tblive.cli import main

    out = os.path.join(tempfile.mkdtemp(prefix="tblive-sweep-"), "report.json")
    with open(os.devnull, "w") as null:
        saved, sys.stdout = sys.stdout, null
        try:
            main(["report", root, "--json", out])
        finally:
            sys.stdout = saved
    _AFTER.append(lambda: _count_report(out))
    return -1


def _count_report(path: str) -> int:
    with open(path) as handle:
        report = json.load(handle)
    return sum(len(run.get("metric_stats", {})) for run in report.get("runs", []))


#: work a child does after its clock stopped (checking its own output)
_AFTER: list = []


def child_event_accumulator(root: str) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = 0
    for directory in run_dirs(root):
        accumulator = EventAccumulator(directory, size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            points += len(accumulator.Scalars(tag))
    return points


def child_tbparse(root: str) -> int:
    from tbparse import SummaryReader

    return int(len(SummaryReader(root, extra_columns={"dir_name"}).scalars))


CHILDREN = {
    "report": child_report,
    "event_accumulator": child_event_accumulator,
    "tbparse": child_tbparse,
}
IMPORTS = {
    "report": "tblive.cli",
    "event_accumulator": "tensorboard.backend.event_processing.event_accumulator",
    "tbparse": "tbparse",
}


def child(name: str, root: str, profile: bool) -> None:
    __import__(IMPORTS[name])
    start = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(CHILDREN[name], root)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats("tblive", 45)
    else:
        result = CHILDREN[name](root)
    seconds = time.perf_counter() - start
    for check in _AFTER:
        result = check()
    import resource

    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # KiB on Linux
    print(
        json.dumps(
            {"seconds": seconds, "rss_mb": peak_rss_mb(), "workers_mb": workers, "result": result}
        )
    )


def run_child(name: str, root: str, profile: bool = False) -> Dict[str, float]:
    command = [sys.executable, __file__, "--child", name, root] + (["--profile"] if profile else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, root: str, repeats: int) -> Dict[str, float]:
    return summarise([run_child(name, root) for _ in range(repeats)])


def summarise(samples: List[Dict[str, float]]) -> Dict[str, float]:
    """Medians of a reader's runs."""
    repeats = len(samples)
    return {
        "seconds": statistics.median(s["seconds"] for s in samples),
        "rss_mb": statistics.median(s["rss_mb"] for s in samples),
        "workers_mb": statistics.median(s["workers_mb"] for s in samples),
        "result": samples[-1]["result"],
        "repeats": repeats,
    }


# -- the daemon ----------------------------------------------------------------------------------


def measure_watch(root: str, settle: float = 10.0, idle: float = 30.0) -> Optional[dict]:
    """RSS of ``tblive watch --poll`` once caught up, and its CPU share while idle."""
    try:
        import psutil
    except ImportError:
        return None
    arguments = ["watch", root, "--poll", "2", "--interval", "3600"]
    with open(os.devnull, "w") as null:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from tblive.cli import main; sys.exit(main())"]
            + arguments,
            stdout=null,
            stderr=null,
            cwd=str(HERE.parent),
        )
    watched = psutil.Process(process.pid)
    start = time.monotonic()
    try:
        # caught up: CPU time has stopped growing for `settle` seconds
        last_cpu, quiet_since = -1.0, time.monotonic()
        while time.monotonic() - start < 900:
            time.sleep(1.0)
            cpu = sum(watched.cpu_times()[:2])
            if cpu - last_cpu > 0.05:
                last_cpu, quiet_since = cpu, time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                break
        caught_up = time.monotonic() - start - settle
        rss = watched.memory_info().rss / 2**20
        cpu_before = sum(watched.cpu_times()[:2])
        time.sleep(idle)
        idle_cpu = (sum(watched.cpu_times()[:2]) - cpu_before) / idle * 100.0
        rss_after = watched.memory_info().rss / 2**20
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {
        "caught_up_s": caught_up,
        "rss_mb": rss,
        "rss_after_idle_mb": rss_after,
        "idle_cpu_pct": idle_cpu,
        "exit": process.returncode,
    }


# -- JSON scaling ---------------------------------------------------------------------------------


def json_scaling(sizes: List[int]) -> None:
    import numpy as np

    from tblive.render.report import render_json
    from tblive.run import RunRecord
    from tblive.series.stats import MetricStats

    print("| series | build | verdict | render_json | json.dumps | per series (render) |")
    print("|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    steps = np.arange(50) * 100
    for size in sizes:
        start = time.perf_counter()
        series = {}
        for i in range(size):
            stats = MetricStats()
            stats.update_many(steps, rng.normal(1.0, 0.1, steps.size))
            series["group_%03d/metric_%06d" % (i % 500, i)] = stats
        record = RunRecord("synthetic", "/tmp/synthetic", series=series)
        built = time.perf_counter()
        record.judge()
        judged = time.perf_counter()
        report = render_json("/tmp/synthetic", [record])
        rendered = time.perf_counter()
        json.dumps(report)
        dumped = time.perf_counter()
        print(
            "| %d | %.1f s | %.1f s | %.2f s | %.2f s | %.0f us |"
            % (
                size,
                built - start,
                judged - built,
                rendered - judged,
                dumped - rendered,
                (rendered - judged) / size * 1e6,
            )
        )
        sys.stdout.flush()


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("NAME", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true", help="tblive only")
    parser.add_argument(
        "--slow-repeats", type=int, default=1, help="runs of EventAccumulator and tbparse"
    )
    parser.add_argument("--skip-watch", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile of one report run")
    parser.add_argument("--json-scaling", action="store_true")
    parser.add_argument("--root", help="tree location (default: the temp directory)")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.profile)
        return
    if args.json_scaling:
        json_scaling([10_000, 100_000])
        return
    root = args.root or tree_path()
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, %r); import sweep; "
            "sweep.write_tree(%r)" % (str(HERE), root),
        ],
        check=True,
    )
    size = sum(os.path.getsize(os.path.join(d, f)) for d in run_dirs(root) for f in os.listdir(d))
    print(
        "tree: %s, %d runs x %d tags x %d points = %.1fM scalars, %.0f MB (ready in %.0f s)"
        % (
            root,
            RUNS,
            TAGS,
            POINTS,
            RUNS * TAGS * POINTS / 1e6,
            size / 2**20,
            time.perf_counter() - started,
        )
    )
    if args.profile:
        run_child("report", root, profile=True)
        return
    # report and EventAccumulator alternate, so each ratio compares runs under the same load
    samples: Dict[str, List[Dict[str, float]]] = {"report": [], "event_accumulator": []}
    pair_ratios = []
    for index in range(args.repeats):
        samples["report"].append(run_child("report", root))
        if not args.skip_slow and index < args.slow_repeats:
            samples["event_accumulator"].append(run_child("event_accumulator", root))
            pair_ratios.append(
                samples["event_accumulator"][-1]["seconds"] / samples["report"][-1]["seconds"]
            )
    results = {"report": summarise(samples["report"])}
    if not args.skip_slow:
        results["event_accumulator"] = summarise(samples["event_accumulator"])
        try:
            __import__("tbparse")
            results["tbparse"] = measure("tbparse", root, args.slow_repeats)
        except ImportError:
            print("tbparse not installed (pip install 'tblive[bench]'): skipped")
    base = results["report"]["seconds"]
    print()
    print("| reader | time (median) | peak RSS | largest worker process | time vs tblive report |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (
        ("report", "`tblive report --json`"),
        ("event_accumulator", "EventAccumulator, run by run"),
        ("tbparse", "tbparse `SummaryReader(...).scalars`"),
    ):
        if name in results:
            r = results[name]
            print(
                "| %s (n=%d) | %.1f s | %.0f MB | %s | %.1fx |"
                % (
                    label,
                    r["repeats"],
                    r["seconds"],
                    r["rss_mb"],
                    "%.0f MB" % r["workers_mb"] if r["workers_mb"] else "-",
                    r["seconds"] / base,
                )
            )
    if "event_accumulator" in results:
        ratio = results["event_accumulator"]["seconds"] / base
        print(
            "\nreport vs EventAccumulator: %.1fx faster (ratio of medians; median of the %d "
            "back-to-back pairs %.1fx, range %.1f-%.1fx; target >= %.0fx): %s; peak %.0f MB "
            "(target <= %.0f MB): %s"
            % (
                ratio,
                len(pair_ratios),
                statistics.median(pair_ratios),
                min(pair_ratios),
                max(pair_ratios),
                SPEEDUP_TARGET,
                "met" if ratio >= SPEEDUP_TARGET else "NOT met",
                results["report"]["rss_mb"],
                RSS_TARGET_MB,
                "met" if results["report"]["rss_mb"] <= RSS_TARGET_MB else "NOT met",
            )
        )
    if not args.skip_watch:
        watch = measure_watch(root)
        if watch is None:
            print("watch: psutil not installed, skipped")
        else:
            print(
                "\n`tblive watch --poll 2`: caught up in ~%.0f s; RSS %.0f MB then (%.0f MB after "
                "%s s idle; target <= %.0f MB); idle CPU %.2f%% (target < 1%%); exit code %s"
                % (
                    watch["caught_up_s"],
                    watch["rss_mb"],
                    watch["rss_after_idle_mb"],
                    30,
                    RSS_TARGET_MB,
                    watch["idle_cpu_pct"],
                    watch["exit"],
                )
            )


if __name__ == "__main__":
    main()
