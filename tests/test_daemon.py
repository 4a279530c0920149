"""The live daemon: real tensorboardX writers, real watchdog (inotify and polling), slack-sdk to a
local HTTP server.  Lifecycle timing runs on an injected clock (no test waits out a stall
threshold); a few end-to-end runs keep real time: the failure pattern, discovery, the CLI under
SIGTERM/SIGHUP."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from harl_writer import HarlWriter
from slack_server import (
    slack_server_fixture,  # noqa: F401 (registers the fixture)
)

from tblive.alert.tracker import CHECK_KINDS
from tblive.cli import _bare_poll, build_parser
from tblive.doors.watch import Watcher, WatchOptions

MODES = {"inotify": None, "poll": 0.2}
CRITICAL_CHECKS = ("Entropy", "Success Rate")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path, monkeypatch):
    """The daemon keeps its alert state under $XDG_STATE_HOME: one per test."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def no_thread_leak():
    """Every thread a test starts (watchdog, sinks, the daemon loop) must be gone after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        left = [
            t
            for t in set(threading.enumerate()) - before
            if t.is_alive() and "process_request_thread" not in t.name  # the test HTTP server
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == [], "threads left behind: %s" % [t.name for t in left]


class Clock:
    """An injected monotonic clock: the daemon sees time move only when the test says so."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float, watcher: Watcher) -> None:
        self.now += seconds
        watcher.changes.wake()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def events(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # the sink may be writing the last line right now
    return [json.loads(line) for line in complete.splitlines() if line]


def has_event(path: Path, **fields: Any) -> Callable[[], bool]:
    def check() -> bool:
        return any(all(e.get(k) == v for k, v in fields.items()) for e in events(path))

    return check


def run_kinds(path: Path) -> List[str]:
    return [e["kind"] for e in events(path) if e["check"] == "Run"]


def changed_checks(event: Dict[str, Any]) -> Dict[str, str]:
    return {c["check"]: c["status"] for c in event.get("changes") or []}


def options(tmp_path: Path, mode: str, **kwargs: Any) -> WatchOptions:
    values: Dict[str, Any] = dict(
        logdir=str(tmp_path / "logs"),
        interval=0.3,
        poll_interval=MODES[mode],
        events_log=str(tmp_path / "events.jsonl"),
        final_report=str(tmp_path / "final.json"),
        stall_after=600.0,
        shutdown_timeout=5.0,
        rescan_interval=0.5,
        host="test-host",
    )
    values.update(kwargs)
    return WatchOptions(**values)


# -- the failure pattern, end to end (real time) -----------------------------------------------


def test_failure_pattern_is_one_critical_digest_then_recovers(tmp_path, slack_server):
    # (polling reads the same files: the discovery and lifecycle tests below run it too)
    log = tmp_path / "events.jsonl"
    opts = options(tmp_path, "inotify", slack_webhook=slack_server.webhook_url())
    watcher = Watcher(opts).start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "mapush_seed1"))
        writer.write_failure()
        wait_until(has_event(log, status="CRITICAL"), what="CRITICAL digest")
        writer.write_recovery()
        wait_until(
            lambda: any(changed_checks(e).get("Entropy") == "OK" for e in events(log)),
            what="Entropy recovered",
        )
        writer.close()
    finally:
        assert watcher.stop()
    check_events = [e for e in events(log) if e["kind"] in CHECK_KINDS]
    critical = [e for e in check_events if e["status"] == "CRITICAL"]
    first = critical[0]
    assert {c: changed_checks(first).get(c) for c in CRITICAL_CHECKS} == {
        c: "CRITICAL" for c in CRITICAL_CHECKS
    }  # both checks in one digest, not one message each
    assert len(critical) == 1, [e["title"] for e in check_events]
    # Slack received what the events log recorded, in the same order
    posted = [r.body["text"].splitlines()[0].split(" ", 1)[1] for r in slack_server.messages]
    assert [t for t in posted if not t.startswith("Run '")] == [e["title"] for e in check_events]
    report = json.loads((tmp_path / "final.json").read_text())
    assert report["run"] == "mapush_seed1"
    assert report["points"] == 120 * 5  # every point of the 5 series, nothing twice


# -- lifecycle on an injected clock ------------------------------------------------------------


def test_stalled_resumed_finished_and_restart_on_an_injected_clock(tmp_path):
    log = tmp_path / "events.jsonl"
    clock = Clock()
    watcher = Watcher(options(tmp_path, "inotify", finish_settle=2.0), clock=clock).start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure(10, pause=0.0)
        state = wait_until(lambda: watcher.states.get("run"), what="run followed")
        wait_until(lambda: state.run.points == 50, what="50 points")
        clock.advance(599.0, watcher)
        time.sleep(0.3)
        assert run_kinds(log) == [] and watcher.lifecycle_of("run") == "live"
        clock.advance(2.0, watcher)
        wait_until(has_event(log, kind="stalled"), what="stalled")
        stalled = [e for e in events(log) if e["kind"] == "stalled"][0]
        assert stalled["status"] == "WARNING" and "no new data for 10 min" in stalled["message"]
        writer.write_failure(5, pause=0.0)
        wait_until(has_event(log, kind="resumed"), what="resumed")
        writer.close()  # IN_CLOSE_WRITE on every event file
        wait_until(lambda: state.life.closed_at is not None and not state.life.open_files, 10.0)
        clock.advance(2.5, watcher)
        wait_until(has_event(log, kind="finished"), what="finished")
        finished = [e for e in events(log) if e["kind"] == "finished"][0]
        assert "its writer closed the event files" in finished["message"]
        report = tmp_path / "final.json"
        wait_until(lambda: report.exists() and json.loads(report.read_text())["points"] == 75)
        # a restart: a new writer (new event files) in the same run directory
        time.sleep(1.1)  # tensorboardX names its file after the current second
        again = HarlWriter(str(tmp_path / "logs" / "run"), seed=1)
        again.step = 15_000
        again.write_failure(5, pause=0.0)
        again.close()
        wait_until(lambda: state.run.points == 100 and not state.life.open_files, what="restart")
        clock.advance(2.5, watcher)
        wait_until(lambda: run_kinds(log).count("finished") == 2, what="second finish")
    finally:
        assert watcher.stop()
    assert run_kinds(log) == ["stalled", "resumed", "finished", "resumed", "finished"]
    assert json.loads((tmp_path / "final.json").read_text())["points"] == 20 * 5


def test_a_writer_that_reopens_its_file_at_every_flush_is_not_finished_by_a_pause(tmp_path):
    """tensorboard's EventFileWriter (what torch's SummaryWriter uses) closes the file after
    every flush; a pause between two flushes is not the end of the run."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    log = tmp_path / "events.jsonl"
    clock = Clock()
    watcher = Watcher(options(tmp_path, "inotify"), clock=clock).start()
    writer = EventFileWriter(str(tmp_path / "logs" / "torch_run"))

    def flush_points(start: int) -> None:
        for step in range(start, start + 5):
            value = summary_pb2.Summary.Value(tag="losses/entropy", simple_value=1.0)
            summary = summary_pb2.Summary(value=[value])
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        writer.flush()

    try:
        flush_points(0)
        state = wait_until(lambda: watcher.states.get("torch_run"), what="run followed")
        wait_until(lambda: state.run.points == 5, what="5 points")
        flush_points(5)  # the second flush reopens the file the first one closed
        wait_until(lambda: state.run.points == 10 and state.life.reopening, what="reopened")
        clock.advance(30.0, watcher)  # a pause far longer than the 2 s finish settle
        time.sleep(0.3)
        assert watcher.lifecycle_of("torch_run") == "live"
    finally:
        writer.close()
        assert watcher.stop()
    assert run_kinds(log) == []


CRASHING_WRITER = textwrap.dedent(
    """
    import glob, os, signal, struct, sys, time
    from tensorboardX import SummaryWriter
    from tblive.read.crc import masked_crc32c

    writer = SummaryWriter(sys.argv[1], flush_secs=1)
    for step in range(30):
        writer.add_scalar("charts/episodic_return", float(step), step)
    writer.flush()
    time.sleep(0.5)  # tensorboardX writes from a queue: let it drain
    payload = b"x" * 40  # the record the writer was in the middle of writing
    header = struct.pack("<Q", len(payload))
    (path,) = glob.glob(os.path.join(sys.argv[1], "events.out.tfevents.*"))
    with open(path, "ab") as handle:
        handle.write(header + struct.pack("<I", masked_crc32c(header)) + payload[:15])
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # dies mid-record; the kernel closes its files
    """
)


def test_writer_killed_mid_record_is_announced_as_a_crash(tmp_path):
    log = tmp_path / "events.jsonl"
    clock = Clock()
    watcher = Watcher(options(tmp_path, "inotify"), clock=clock).start()
    run_dir = tmp_path / "logs" / "ppo"
    try:
        run_dir.mkdir(parents=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + sys.path))
        process = subprocess.run(
            [sys.executable, "-c", CRASHING_WRITER, str(run_dir)], env=env, timeout=60
        )
        assert process.returncode == -signal.SIGKILL
        state = wait_until(lambda: watcher.states.get("ppo"), what="run followed")
        wait_until(
            lambda: (
                state.run.points >= 20
                and state.life.closed_at is not None
                and state.life.tail_since is not None
            ),
            10.0,
            "the kernel's close and the half-written tail",
        )
        clock.advance(2.5, watcher)
        wait_until(has_event(log, kind="crashed"), what="crashed")
    finally:
        assert watcher.stop()
    (crash,) = [e for e in events(log) if e["check"] == "Run"]
    assert crash["title"] == "Run 'ppo' stopped mid-write (crash?)"
    assert crash["message"].count("stopped mid-write (crash?)") >= 1
    assert "nothing more came" not in crash["message"]
    assert watcher.lifecycle_of("ppo") == "crashed"
    report = json.loads((tmp_path / "final.json").read_text())
    assert report["points"] == state.run.points  # every complete record, nothing of the torn one


def test_polling_normal_end_is_finished_without_a_stalled_first(tmp_path):
    log = tmp_path / "events.jsonl"
    clock = Clock()
    writer = HarlWriter(str(tmp_path / "logs" / "run"))
    writer.write_failure(20, pause=0.0)
    writer.close()
    watcher = Watcher(options(tmp_path, "poll", exit_when_finished=True), clock=clock)
    result: List[int] = []
    thread = threading.Thread(target=lambda: result.append(watcher.run()))
    thread.start()
    try:
        state = wait_until(lambda: watcher.states.get("run"), what="run followed")
        wait_until(lambda: state.run.points == 100, what="points")
        clock.advance(601.0, watcher)
        wait_until(lambda: watcher.lifecycle_of("run") == "stalled", what="silent stall")
        time.sleep(0.2)
        assert run_kinds(log) == []  # the judge knows; nobody was told "stalled"
        clock.advance(1200.0, watcher)
        thread.join(15.0)
    finally:
        watcher.request_stop()
        thread.join(15.0)
    assert not thread.is_alive() and result == [0]  # --exit-when-finished
    assert run_kinds(log) == ["finished"]
    assert "presumed finished" in [e for e in events(log) if e["kind"] == "finished"][0]["message"]


def test_idle_finished_runs_are_not_judged_again_and_get_no_reminders(tmp_path):
    log = tmp_path / "events.jsonl"
    for seed in range(3):
        writer = HarlWriter(str(tmp_path / "logs" / ("seed%d" % seed)), seed=seed)
        writer.write_failure(40, pause=0.0)
        writer.close()
    old = time.time() - 7200  # finished two hours ago
    for root, _, files in os.walk(tmp_path / "logs"):
        for name in files:
            os.utime(os.path.join(root, name), (old, old))
    clock = Clock()
    opts = options(tmp_path, "inotify", interval=60.0, cooldown=10.0, rescan_interval=30.0)
    watcher = Watcher(opts, clock=clock).start()
    try:
        wait_until(
            lambda: (
                len(watcher.states) == 3
                and all(watcher.lifecycle_of(n) == "finished" for n in watcher.states)
            ),
            what="three adopted finished runs",
        )
        judged = watcher.judgements
        assert judged >= 3
        for _ in range(20):  # 20 intervals, far past the 10 s cooldown
            clock.advance(60.0, watcher)
            time.sleep(0.02)
        time.sleep(0.3)
        assert watcher.judgements == judged
    finally:
        assert watcher.stop()
    assert [e for e in events(log) if e["kind"] == "reminder"] == []


def test_live_critical_run_still_gets_reminders(tmp_path):
    log = tmp_path / "events.jsonl"
    clock = Clock()
    opts = options(tmp_path, "inotify", interval=60.0, cooldown=100.0, stall_after=1e6)
    watcher = Watcher(opts, clock=clock).start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure(40, pause=0.0)  # the writer stays open: a live run
        wait_until(lambda: watcher.states.get("run") and watcher.states["run"].run.points == 200)
        clock.advance(1.0, watcher)  # the judge runs at most every min_judge_gap (daemon clock)
        wait_until(has_event(log, status="CRITICAL"), what="CRITICAL")
        for _ in range(3):
            clock.advance(61.0, watcher)
            time.sleep(0.1)
        wait_until(has_event(log, kind="reminder"), what="reminder")
        writer.close()
    finally:
        assert watcher.stop()


# -- discovery (real time) ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_logdir_created_later_is_followed_within_seconds(tmp_path, mode):
    # default interval: the backstop rescan is 30 s away, so only the quick pickup can pass
    watcher = Watcher(
        options(
            tmp_path,
            mode,
            interval=60.0,
            rescan_interval=None,
            logdir=str(tmp_path / "a" / "b" / "logs"),
        )
    ).start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        writer = HarlWriter(str(tmp_path / "a" / "b" / "logs" / "seed1"))
        writer.write_failure(3, pause=0.0)
        wait_until(lambda: "seed1" in watcher.states, 10.0, "seed1")
        picked_up = time.monotonic() - started
        second = HarlWriter(str(tmp_path / "a" / "b" / "logs" / "seed2"))
        second.write_failure(3, pause=0.0)
        wait_until(lambda: "seed2" in watcher.states, 10.0, "seed2")
        writer.close()
        second.close()
    finally:
        assert watcher.stop()
    assert picked_up < 3.0


@pytest.mark.parametrize("mode", sorted(MODES))
def test_new_runs_nested_folders_and_deleted_run(tmp_path, mode, caplog):
    caplog.set_level(logging.INFO, logger="tblive")
    watcher = Watcher(options(tmp_path, mode)).start()
    try:
        first = HarlWriter(str(tmp_path / "logs" / "seed1"))
        first.write_failure(5, pause=0.0)
        wait_until(lambda: "seed1" in watcher.states, what="seed1")
        second = HarlWriter(str(tmp_path / "logs" / "seed2"), agents=1)
        second.write_failure(5, pause=0.0)
        wait_until(lambda: "seed2" in watcher.states, what="seed2")
        for _ in range(3):  # a third agent appears mid-run: a new nested add_scalars folder
            second.point(1.5, 0.0, 1e-5, 0.01, agents=3)
        second.close()

        def third_agent() -> bool:
            sink = watcher.states["seed2"].run.sinks.get("agent2/dist_entropy")
            return sink is not None and sink.count == 3

        wait_until(third_agent, what="agent2 series")
        first.close()
        wait_until(lambda: watcher.states["seed1"].run.points == 25, what="seed1 points")
        shutil.rmtree(tmp_path / "logs" / "seed1")
        wait_until(lambda: "seed1" not in watcher.states, what="seed1 dropped")
    finally:
        assert watcher.stop()
    assert "run 'seed1' is gone (its directory was removed" in caplog.text
    assert watcher.states["seed2"].run.points == 5 * 4 + 3 * 6
    assert sorted(watcher.verdicts) == ["seed2"]


def test_bad_setup_is_one_clear_error(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        Watcher(WatchOptions(logdir=str(afile)))
    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN"):
        Watcher(WatchOptions(logdir=str(tmp_path), slack_channel="#alerts"))
    with pytest.raises(ValueError, match="HOST:PORT"):
        Watcher(WatchOptions(logdir=str(tmp_path), prometheus="localhost:http"))


def test_judging_rule_of_a_followed_run(tmp_path):
    """When the daemon judges a run again (doors.followed), on made-up times."""
    from tblive.doors.followed import FollowedRun
    from tblive.doors.lifecycle import LifecyclePolicy, RunLifecycle
    from tblive.read.runs import LogDir
    from tblive.read.tail import CLOSED, Change
    from tblive.run import RunRecord, new_stats

    writer = HarlWriter(str(tmp_path / "run"))
    writer.write_failure(3, pause=0.0)
    writer.close()
    logdir = LogDir(str(tmp_path), new_stats)
    logdir.rescan()
    run = logdir.runs["run"]
    assert run.poll() > 0
    life = RunLifecycle(LifecyclePolicy(settle=2.0), 100.0)
    followed = FollowedRun(run, RunRecord.from_reader(run), life, 0.0)

    def due(problems: bool = False) -> float:
        return followed.judge_due(0.25, 60.0, lambda: problems)

    assert due() == float("-inf")  # new points, never judged: now
    followed.judged_points, followed.last_judge = run.points, 200.0
    assert due() == float("inf") and due(problems=True) == 260.0  # same data: reminders only
    followed.judged_points = run.points - 1
    assert due() == 200.25
    followed.judge_cost = 0.1  # a slow verdict: at most every 10x its cost
    assert due() == 201.0
    followed.stale = True  # the configuration was reloaded
    assert due() == 200.0
    followed.stale, followed.judged_points = False, run.points
    event_file = run.files[0].path
    followed.observe(Change(event_file, CLOSED), 300.0, closes_visible=True)
    assert followed.life.closed_at == 300.0
    assert followed.life.tick(302.5) is not None and followed.life.ended
    assert due(problems=True) == float("inf")  # an ended run gets no reminders


def test_poll_without_seconds_before_or_after_logdir():
    parser = build_parser()
    for argv, poll in (
        (["watch", "--poll", "runs/"], 5.0),
        (["watch", "runs/", "--poll"], 5.0),
        (["watch", "--poll", "0.5", "runs/"], 0.5),
        (["watch", "--poll", "--interval", "3", "runs/"], 5.0),
    ):
        args = parser.parse_args(_bare_poll(argv))
        assert (args.logdir, args.poll) == ("runs/", poll), argv


# -- the command line in a subprocess: SIGTERM, SIGHUP, bot token, --on-critical ----------------


def start_cli(tmp_path: Path, *extra: str, env: Dict[str, str] = None) -> subprocess.Popen:
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO)] + sys.path)
    return subprocess.Popen(
        [sys.executable, "-m", "tblive.cli", "--log-level", "INFO", "watch", str(tmp_path / "logs")]
        + list(extra),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_cli_watch_stops_cleanly_on_sigterm(tmp_path, slack_server):
    log = tmp_path / "events.jsonl"
    report = tmp_path / "final.json"
    env_dump = tmp_path / "on_critical.json"
    dump = (
        "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith('TBLIVE_')}, open(sys.argv[1], 'w'))"
    )
    command = "%s -c %s %s" % (shlex.quote(sys.executable), shlex.quote(dump), env_dump)
    process = start_cli(
        tmp_path,
        "--interval", "0.3",
        "--slack-channel", "#rl-alerts",
        "--slack-base-url", slack_server.api_base_url,
        "--events-log", str(log),
        "--final-report", str(report),
        "--on-critical", command,
        env=dict(os.environ, SLACK_BOT_TOKEN="xoxb-0-0-TESTTOKEN"),
    )  # fmt: skip
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure()
        wait_until(has_event(log, status="CRITICAL"), 30.0, "CRITICAL")
        wait_until(env_dump.exists, what="--on-critical command")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        writer.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(report.read_text())["run"] == "run"
    assert json.loads(env_dump.read_text())["TBLIVE_STATUS"] == "CRITICAL"
    posted = slack_server.messages  # the messages (a CRITICAL one also uploads its picture)
    assert posted and all(r.path == "/api/chat.postMessage" for r in posted)
    assert posted[0].body["channel"] == "#rl-alerts"
    assert "Bearer xoxb-0-0-TESTTOKEN" in posted[0].headers.get("Authorization", "")
    assert b"TESTTOKEN" not in stderr
    assert b"signal 15 received" in stderr


def test_cli_sighup_reloads_the_config_and_keeps_running(tmp_path):
    config = tmp_path / "tblive.toml"
    config.write_text("[grace]\nmin_points = 25\n")
    (tmp_path / "logs").mkdir()
    process = start_cli(tmp_path, "--config", str(config), "--interval", "0.3")
    lines: List[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()

    def logged(text: str) -> Callable[[], bool]:
        return lambda: any(text.encode() in line for line in list(lines))

    try:
        wait_until(logged("following"), 30.0, "daemon started")
        config.write_text("[grace]\nmin_points = 10\n")
        process.send_signal(signal.SIGHUP)
        wait_until(logged("configuration reloaded from"), 10.0, "reload")
        config.write_text("[grace\nbroken")
        process.send_signal(signal.SIGHUP)
        wait_until(logged("keeping the previous configuration"), 10.0, "bad config kept out")
        assert process.poll() is None  # SIGHUP never ends it
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    reader.join(5.0)
    assert process.returncode == 0, b"".join(lines).decode()
