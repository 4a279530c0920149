"""Cost per logged scalar of SummaryWriter.add_scalar with and without a tblive Monitor attached.

Measured side by side in one run, interleaved, median of repeats:

* ``add_scalar`` on a plain tensorboardX writer vs one with ``Monitor.attach`` (the monitor's
  thread running with its defaults, so its queue draining competes for the GIL as in training);
* the same for HARL's ``add_scalars(k, {k: v})`` and, when torch is installed, for
  ``torch.utils.tensorboard``;
* ``Monitor.log`` alone (10 scalars per call, per scalar) and ``Monitor.log_scalar``;
* the monitor thread's work per point (queue -> MetricStats), which runs off the training
  thread but shares the GIL.

Usage: ``python benchmarks/callback_overhead.py [--scalars 20000] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tblive.doors.monitor import Monitor  # noqa: E402


def per_item_us(run: Callable[[], None], items: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / items * 1e6


def scalar_loop(writer: Any, count: int, tags: List[str]) -> Callable[[], None]:
    def run() -> None:
        add = writer.add_scalar
        width = len(tags)
        for i in range(count):
            add(tags[i % width], 0.5 + (i % 7) * 0.01, i // width)

    return run


def scalars_loop(writer: Any, count: int, tags: List[str]) -> Callable[[], None]:
    def run() -> None:
        add = writer.add_scalars
        width = len(tags)
        for i in range(count):
            tag = tags[i % width]
            add(tag, {tag: 0.5 + (i % 7) * 0.01}, i // width)

    return run


def compare(name: str, make_writer: Callable[[str], Any], loop: Callable, args: Any) -> Dict:
    tags = ["agent%d/metric%d" % (a, m) for a in range(2) for m in range(5)]
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_writer(tmp + "/plain")
        attached = make_writer(tmp + "/attached")
        monitor = Monitor("bench", sinks=[], report_path=None)
        monitor.attach(attached)
        warm = max(args.scalars // 10, 100)
        loop(plain, warm, tags)()
        loop(attached, warm, tags)()
        times: Dict[str, List[float]] = {"plain": [], "attached": []}
        for repeat in range(args.repeats):
            order = [("plain", plain), ("attached", attached)]
            for label, writer in order if repeat % 2 else order[::-1]:
                times[label].append(per_item_us(loop(writer, args.scalars, tags), args.scalars))
        monitor.close(timeout=2.0)
        plain.close()
        attached.close()
    plain_us = statistics.median(times["plain"])
    attached_us = statistics.median(times["attached"])
    paired = [a - p for a, p in zip(times["attached"], times["plain"])]
    return {
        "name": name,
        "plain": plain_us,
        "attached": attached_us,
        "added": statistics.median(paired),
        "ratio": attached_us / plain_us,
    }


class NullWriter:
    """A writer that writes nothing: isolates what the wrappers themselves add."""

    def add_scalar(
        self, tag: str, value: Any, global_step: Any = None, walltime: Any = None
    ) -> None:
        return None

    def add_scalars(
        self, main_tag: str, values: Any, global_step: Any = None, walltime: Any = None
    ) -> None:
        return None

    def get_logdir(self) -> str:
        return "null"


def wrapper_alone(args: Any) -> Dict[str, float]:
    """Wrapped minus unwrapped cost on a writer that does nothing (training thread only)."""
    tags = ["agent%d/metric%d" % (a, m) for a in range(2) for m in range(5)]
    plain, wrapped = NullWriter(), NullWriter()
    monitor = Monitor("bench", sinks=[], report_path=None, start=False)
    monitor.attach(wrapped)
    result = {}
    for name, loop in (("add_scalar", scalar_loop), ("add_scalars", scalars_loop)):
        paired = []
        for _ in range(args.repeats):
            base = per_item_us(loop(plain, args.scalars, tags), args.scalars)
            paired.append(per_item_us(loop(wrapped, args.scalars, tags), args.scalars) - base)
            monitor._drain()
        result[name] = statistics.median(paired)
    monitor.close(timeout=1.0)
    return result


def monitor_alone(args: Any) -> Dict[str, float]:
    tags = ["agent%d/metric%d" % (a, m) for a in range(2) for m in range(5)]
    values = {tag: 0.5 for tag in tags}
    monitor = Monitor("bench", sinks=[], report_path=None, start=False)
    calls = args.scalars // len(tags)
    log_times, scalar_times, drain_times = [], [], []
    for _ in range(args.repeats):
        log = monitor.log

        def run_log() -> None:
            for step in range(calls):
                log(step, values)

        log_times.append(per_item_us(run_log, calls * len(tags)))
        queued = monitor.counters["queued"]
        drain_times.append(per_item_us(monitor._drain, queued))
        log_scalar = monitor.log_scalar

        def run_scalar() -> None:
            for i in range(args.scalars):
                log_scalar("loss", 0.5, i)

        scalar_times.append(per_item_us(run_scalar, args.scalars))
        monitor._drain()
    monitor.close(timeout=1.0)
    return {
        "log": statistics.median(log_times),
        "log_scalar": statistics.median(scalar_times),
        "drain": statistics.median(drain_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalars", type=int, default=5000, help="scalars per repeat")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from tensorboardX import SummaryWriter

    rows = [
        compare("tensorboardX add_scalar", SummaryWriter, scalar_loop, args),
        compare("tensorboardX add_scalars (HARL)", SummaryWriter, scalars_loop, args),
    ]
    try:
        from torch.utils.tensorboard import SummaryWriter as TorchWriter
    except ImportError:
        print("(torch not installed: torch.utils.tensorboard rows skipped)")
    else:
        rows.append(compare("torch add_scalar", TorchWriter, scalar_loop, args))
    print(
        "cost per logged scalar, median of %d repeats x %d scalars (us)"
        % (args.repeats, args.scalars)
    )
    print("%-34s %9s %9s %9s %7s" % ("", "plain", "+tblive", "added*", "ratio"))
    for row in rows:
        print(
            "%-34s %9.2f %9.2f %9.2f %6.2fx"
            % (row["name"], row["plain"], row["attached"], row["added"], row["ratio"])
        )
    print("* median of paired (interleaved) differences; the plain cost itself varies by tens of")
    print("  percent on a busy machine, so this column is noisy -- the rows below isolate tblive.")
    wrappers = wrapper_alone(args)
    alone = monitor_alone(args)
    print()
    print("wrapper alone (do-nothing writer), add_scalar:  %6.3f us" % wrappers["add_scalar"])
    print("wrapper alone (do-nothing writer), add_scalars: %6.3f us" % wrappers["add_scalars"])
    print("Monitor.log, 10 scalars per call, per scalar:  %6.3f us" % alone["log"])
    print("Monitor.log_scalar, per scalar:                %6.3f us" % alone["log_scalar"])
    print(
        "monitor thread, queue -> MetricStats, per point: %6.3f us (off the training thread, "
        "shares the GIL)" % alone["drain"]
    )
    print(
        "=> CPU added per scalar (wrapper + monitor thread): add_scalar %.2f us, add_scalars %.2f us"
        % (wrappers["add_scalar"] + alone["drain"], wrappers["add_scalars"] + alone["drain"])
    )


if __name__ == "__main__":
    main()
