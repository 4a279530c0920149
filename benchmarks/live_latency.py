"""How fast and how light is ``tblive watch``?  Measured in one run, daemon in a subprocess.

1. Latency: time from a writer's flush of the point that makes a check CRITICAL (the point that
   ends grace in the MAPush failure pattern) to the alert's arrival at a local Slack
   server (slack-sdk webhook), median and p95 over TRIALS runs, with inotify and with polling.
   Reference: TensorBoard reloads its data every 5 s (``--reload_interval``), before a human looks.
2. CPU share of one core of the daemon while a writer logs 50 scalars a second, and idle; and
   idle with 200 runs that finished while watched (finished runs must not be re-judged).
3. RSS of the daemon after following 100k points and after 1M points (appended live).

The writer for (1) and (2) is tensorboard's ``EventFileWriter`` (what torch's SummaryWriter
uses; its ``flush()`` waits until the queued events are on disk, so the flush time is exact)
in HARL's nested ``add_scalars`` layout.  For (3) records are framed directly (CRC-32C via
tblive.read.crc) so that writing 1M points takes seconds, not minutes.

Run: ``python benchmarks/live_latency.py [--trials 15] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from slack_server import RecordingSlackServer  # noqa: E402

from tblive.judge.config import Config  # noqa: E402

GRACE_POINTS = Config.default().grace.min_points  # the point that ends grace turns it CRITICAL


# -- writers -------------------------------------------------------------------------------------


class HarlEventWriter:
    """tensorboard EventFileWriters in HARL's layout (root + one per add_scalars tag)."""

    def __init__(self, run_dir: str, agents: int = 2) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.root = EventFileWriter(run_dir)
        self.nested = []
        for agent in range(agents):
            tag = "agent%d/dist_entropy" % agent
            directory = os.path.join(run_dir, tag, tag)  # tensorboardX/HARL nesting
            self.nested.append((tag, EventFileWriter(directory)))
        self.rng = np.random.default_rng(len(run_dir))

    @staticmethod
    def _event(tag: str, value: float, step: int):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]
        )
        return event_pb2.Event(wall_time=time.time(), step=step, summary=summary)

    def failure_point(self, index: int, total: int = 60) -> None:
        step = (index + 1) * 1000
        entropy = 1.31 + (2.17 - 1.31) * index / (total - 1)
        for tag, writer in self.nested:
            writer.add_event(self._event(tag, entropy + self.rng.normal(0, 0.01), step))
        self.root.add_event(self._event("mapush/success_rate", 0.0, step))
        self.root.add_event(
            self._event("rewards/push_reward", 1e-5 + self.rng.normal(0, 1e-7), step)
        )
        self.root.add_event(
            self._event("average_step_reward", 0.01 + self.rng.normal(0, 1e-3), step)
        )

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.root.add_event(self._event(tag, value, step))

    def flush(self) -> None:
        for _, writer in self.nested:
            writer.flush()
        self.root.flush()

    def close(self) -> None:
        for _, writer in self.nested:
            writer.close()
        self.root.close()


def framed_points(tags: int, steps: range) -> bytes:
    """TFRecord bytes of ``tags`` scalars per step (records framed with CRC-32C)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    from tblive.read.crc import masked_crc32c

    out = bytearray()
    event = event_pb2.Event()
    value = summary_pb2.Summary.Value()
    for step in steps:
        for tag in range(tags):
            value.tag = "train/metric_%02d" % tag
            value.simple_value = float(np.sin(step / 300.0 + tag))
            event.Clear()
            event.wall_time = 1.7e9 + step
            event.step = step
            event.summary.value.add().CopyFrom(value)
            payload = event.SerializeToString()
            header = struct.pack("<Q", len(payload))
            out += header + struct.pack("<I", masked_crc32c(header))
            out += payload + struct.pack("<I", masked_crc32c(payload))
    return bytes(out)


# -- the daemon ----------------------------------------------------------------------------------


def start_daemon(
    logdir: str, webhook: str, poll: Optional[float], extra: List[str]
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "tblive.cli", "watch", logdir, "--interval", "60",
        "--slack-webhook", webhook, "--stall-after", "3600",
    ] + extra  # fmt: skip
    if poll is not None:
        command += ["--poll", str(poll)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # imports + first scan
    return process


def stop_daemon(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    return process.returncode


def critical_posts(server: RecordingSlackServer, run: str) -> int:
    marker = "CRITICAL run '%s'" % run
    return sum(1 for r in list(server.requests) if marker in (r.body or {}).get("text", ""))


def latency_trials(
    server: RecordingSlackServer, base: str, poll: Optional[float], trials: int
) -> List[float]:
    logdir = os.path.join(base, "latency-%s" % ("poll" if poll else "inotify"))
    os.makedirs(logdir)
    daemon = start_daemon(logdir, server.webhook_url(), poll, [])
    latencies = []
    try:
        for trial in range(trials):
            run = "%s-trial%02d" % ("poll" if poll else "inotify", trial)
            writer = HarlEventWriter(os.path.join(logdir, run))
            for index in range(GRACE_POINTS - 1):  # still in grace: nothing is announced
                writer.failure_point(index)
            writer.flush()
            time.sleep(1.0 + 2 * (poll or 0))  # the daemon reads and judges the in-grace points
            if critical_posts(server, run):
                print("  trial %d: CRITICAL before the grace-ending point; skipped" % trial)
                writer.close()
                continue
            writer.failure_point(GRACE_POINTS - 1)
            flushed = time.monotonic()
            writer.flush()
            while not critical_posts(server, run) and time.monotonic() - flushed < 10 + (poll or 0):
                time.sleep(0.001)
            arrived = time.monotonic()
            if critical_posts(server, run):
                latencies.append(arrived - flushed)
            else:
                print("  trial %d: no CRITICAL alert within the timeout" % trial)
            writer.close()
    finally:
        stop_daemon(daemon)
    return latencies


def cpu_share(process: psutil.Process, seconds: float, during=None) -> float:
    before = process.cpu_times()
    started = time.monotonic()
    if during is not None:
        during(seconds)
    else:
        time.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return used / (time.monotonic() - started)


def cpu_trials(
    server: RecordingSlackServer, base: str, poll: Optional[float], seconds: float
) -> Dict[str, float]:
    logdir = os.path.join(base, "cpu-%s" % ("poll" if poll else "inotify"))
    os.makedirs(logdir)
    daemon = start_daemon(logdir, server.webhook_url(), poll, [])
    try:
        process = psutil.Process(daemon.pid)
        writer = HarlEventWriter(os.path.join(logdir, "busy"))

        def log_50_per_second(duration: float) -> None:
            step = 0
            end = time.monotonic() + duration
            while time.monotonic() < end:
                tick = time.monotonic()
                for tag in range(10):  # 10 scalars x 5 steps a second, flushed each step
                    writer.scalar("train/metric_%d" % tag, float(np.sin(step / 50 + tag)), step)
                writer.flush()
                step += 1
                time.sleep(max(0.2 - (time.monotonic() - tick), 0.0))

        busy = cpu_share(process, seconds, log_50_per_second)
        writer.close()
        time.sleep(2.0)
        idle = cpu_share(process, seconds)
    finally:
        stop_daemon(daemon)
    return {"busy": busy, "idle": idle}


def sweep_idle_trial(server: RecordingSlackServer, base: str, seconds: float, runs: int = 200):
    """Idle CPU once ``runs`` runs were written while watched and have finished (their files
    closed): the daemon must not keep re-judging them every interval."""
    logdir = os.path.join(base, "sweep")
    os.makedirs(logdir)
    state = os.path.join(base, "sweep-state.json")
    daemon = start_daemon(logdir, server.webhook_url(), None, ["--state-file", state])
    try:
        process = psutil.Process(daemon.pid)
        data = framed_points(20, range(200))  # 20 tags x 200 points a run
        for index in range(runs):
            run_dir = os.path.join(logdir, "seed-%03d" % index)
            os.makedirs(run_dir)
            path = os.path.join(run_dir, "events.out.tfevents.1700000000.bench")
            with open(path, "wb") as handle:  # written and closed: the run finishes
                handle.write(data)
        time.sleep(5.0)  # finish settle (2 s) after the last close
        wait_idle(process)
        return cpu_share(process, seconds)
    finally:
        stop_daemon(daemon)


def wait_idle(process: psutil.Process, quiet: float = 1.0, timeout: float = 300.0) -> float:
    """Wait until the process used < 2% CPU over ``quiet`` seconds; returns the time waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if cpu_share(process, quiet) < 0.02:
            break
    return time.monotonic() - started


def rss_trial(server: RecordingSlackServer, base: str, quick: bool) -> Dict[str, float]:
    logdir = os.path.join(base, "rss")
    run_dir = os.path.join(logdir, "big")
    os.makedirs(run_dir)
    tags, total_steps = 20, (5_000 if quick else 50_000)  # 100k (quick: 10k) -> 1M (100k) points
    path = os.path.join(run_dir, "events.out.tfevents.1700000000.bench")
    with open(path, "wb") as handle:
        handle.write(framed_points(0, range(0)))
    report = os.path.join(base, "rss-final.json")
    daemon = start_daemon(logdir, server.webhook_url(), None, ["--final-report", report])
    result: Dict[str, float] = {}
    try:
        process = psutil.Process(daemon.pid)
        chunk = total_steps // 10
        for part in range(10):
            data = framed_points(tags, range(part * chunk, (part + 1) * chunk))
            with open(path, "ab") as handle:  # appended in flushed pieces, as a writer does
                for offset in range(0, len(data), 1 << 20):
                    handle.write(data[offset : offset + (1 << 20)])
                    handle.flush()
            if part in (0, 4):
                wait_idle(process)
                key = "first" if part == 0 else "half"
                result["rss_" + key] = process.memory_info().rss
                result["points_" + key] = (part + 1) * chunk * tags
        wait_idle(process)
        result["rss_last"] = process.memory_info().rss
        result["points_last"] = total_steps * tags
    finally:
        stop_daemon(daemon)
    with open(report, encoding="utf-8") as handle:
        result["points_seen"] = json.load(handle)["points"]
    return result


def percentile(values: List[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument(
        "--poll", type=float, default=1.0, help="poll interval for the polling runs"
    )
    parser.add_argument("--cpu-seconds", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="10x smaller RSS run, 5 trials")
    args = parser.parse_args()
    trials = 5 if args.quick else args.trials
    base = tempfile.mkdtemp(prefix="tblive-live-")
    try:
        with RecordingSlackServer() as server:
            print("tblive watch, daemon in a subprocess; Slack = local slack-sdk webhook server")
            print(
                "\n1. flush of the point that makes a check CRITICAL -> alert at Slack (%d trials)"
                % trials
            )
            for label, poll in (("inotify", None), ("poll %gs" % args.poll, args.poll)):
                lat = latency_trials(server, base, poll, trials)
                target = 0.5 + (poll or 0.0)
                median = statistics.median(lat) if lat else float("nan")
                print(
                    "   %-9s median %6.3f s  p95 %6.3f s  (n=%d; target < %.1f s: %s; "
                    "TensorBoard reload 5 s = %.0fx slower)"
                    % (label, median, percentile(lat, 95), len(lat), target,
                       "met" if median < target else "MISSED", 5.0 / median if median else 0)
                )  # fmt: skip
            print("\n2. daemon CPU, share of one core (%.0f s windows)" % args.cpu_seconds)
            for label, poll in (("inotify", None), ("poll 5s", 5.0)):
                cpu = cpu_trials(server, base, poll, args.cpu_seconds)
                print(
                    "   %-9s writer logging 50 scalars/s: %5.2f%%   idle: %5.2f%% (target < 1%%: %s)"
                    % (label, 100 * cpu["busy"], 100 * cpu["idle"], "met" if cpu["idle"] < 0.01 else "MISSED")
                )  # fmt: skip
            window = max(args.cpu_seconds, 60.0)  # spans two backstop rescans (every 30 s)
            idle = sweep_idle_trial(server, base, window)
            print(
                "   inotify   200 finished runs (20 tags x 200 points each), idle over %.0f s: "
                "%5.2f%% (target < 0.5%%: %s)"
                % (window, 100 * idle, "met" if idle < 0.005 else "MISSED")
            )
            print("\n3. daemon RSS while following a growing log")
            rss = rss_trial(server, base, args.quick)
            print(
                "   after %7d points: %6.1f MiB" % (rss["points_first"], rss["rss_first"] / 2**20)
            )
            growth = rss["rss_last"] / rss["rss_first"] - 1.0
            print("   after %7d points: %6.1f MiB" % (rss["points_half"], rss["rss_half"] / 2**20))
            print(
                "   after %7d points: %6.1f MiB  (%+.1f%% vs the first; target within 10%%: %s); "
                "final report counts %d points"
                % (rss["points_last"], rss["rss_last"] / 2**20, 100 * growth,
                   "met" if abs(growth) <= 0.10 else "MISSED", rss["points_seen"])
            )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
