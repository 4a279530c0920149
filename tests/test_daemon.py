"""The live daemon, for real: a tensorboardX writer (HARL layout) appends while the daemon follows
the directory with watchdog (inotify, and polling), and slack-sdk posts to a local HTTP server."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from harl_writer import HarlWriter
from slack_server import (
    RecordingSlackServer,
    Reply,
    slack_server_fixture,  # noqa: F401 (registers the fixture)
)

from tblive.alert.tracker import CHECK_KINDS
from tblive.doors.watch import Watcher, WatchOptions, watch

MODES = {"inotify": None, "poll": 0.2}
CRITICAL_CHECKS = ("Entropy", "Success Rate")


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


def slack_titles(server: RecordingSlackServer, skip: int = 0) -> List[str]:
    """First line of each posted message's text, without the emoji (after ``skip`` requests)."""
    titles = []
    for request in server.requests[skip:]:
        first = request.body["text"].splitlines()[0]
        titles.append(first.split(" ", 1)[1])
    return titles


def critical_counts(log: Path) -> Counter:
    return Counter(
        e["check"] for e in events(log) if e["status"] == "CRITICAL" and e["kind"] in CHECK_KINDS
    )


def options(tmp_path: Path, mode: str, **kwargs: Any) -> WatchOptions:
    values: Dict[str, Any] = dict(
        logdir=str(tmp_path / "logs"),
        interval=0.3,
        poll_interval=MODES[mode],
        events_log=str(tmp_path / "events.jsonl"),
        final_report=str(tmp_path / "final.json"),
        stall_after=30.0,
        shutdown_timeout=5.0,
        rescan_interval=0.5,
        host="test-host",
    )
    values.update(kwargs)
    return WatchOptions(**values)


# -- the failure pattern, end to end -----------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_failure_pattern_alerts_once_per_check_then_recovers(tmp_path, slack_server, mode):
    log = tmp_path / "events.jsonl"
    opts = options(tmp_path, mode, slack_webhook=slack_server.webhook_url())
    watcher = Watcher(opts).start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "mapush_seed1"))
        writer.write_failure()
        for check in CRITICAL_CHECKS:
            wait_until(has_event(log, check=check, status="CRITICAL"), what="CRITICAL " + check)
        writer.write_recovery()
        wait_until(has_event(log, check="Entropy", kind="recovered"), what="recovery")
        writer.close()
    finally:
        assert watcher.stop()
    counts = critical_counts(log)
    assert {check: counts[check] for check in CRITICAL_CHECKS} == {c: 1 for c in CRITICAL_CHECKS}
    assert all(n == 1 for n in counts.values()), counts  # one per check, not one per point
    recovered = Counter(e["check"] for e in events(log) if e["kind"] == "recovered")
    assert recovered["Entropy"] == 1 and max(recovered.values()) == 1
    # Slack received exactly what the events log recorded, in the same order
    check_titles = [e["message"] for e in events(log) if e["kind"] in CHECK_KINDS]
    posted = [t for t in slack_titles(slack_server) if not t.startswith("Run '")]
    assert posted == check_titles
    assert watcher.engine.dispatcher.given_up == 0
    report = json.loads((tmp_path / "final.json").read_text())
    assert report["run"] == "mapush_seed1"
    assert report["points"] == 120 * 5  # every point of the 5 series, nothing twice
    assert {"agent0/dist_entropy", "agent1/dist_entropy", "mapush/success_rate"} <= set(
        report["metric_stats"]
    )


def test_slack_429_and_500_are_retried_and_delivered(tmp_path, slack_server):
    slack_server.answer(Reply(429, {"Retry-After": "1"}), Reply(500), default=Reply(200))
    log = tmp_path / "events.jsonl"
    watcher = Watcher(options(tmp_path, "inotify", slack_webhook=slack_server.webhook_url()))
    watcher.start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure()
        writer.close()
        for check in CRITICAL_CHECKS:
            wait_until(has_event(log, check=check, status="CRITICAL"), what="CRITICAL " + check)
        expected = len(events(log))
        wait_until(lambda: len(slack_server.requests) >= expected + 2, what="retried posts")
    finally:
        assert watcher.stop()
    counters = watcher.engine.dispatcher.counters["slack"]
    assert counters.given_up == 0 and counters.dropped == 0
    first = slack_server.requests[0].body["text"]
    assert [r.body["text"] for r in slack_server.requests[:3]] == [first] * 3  # same alert, 3 tries
    assert slack_titles(slack_server, skip=2) == [e["title"] for e in events(log)]


def test_dead_slack_does_not_stop_detection_or_the_events_log(tmp_path, caplog):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d/services/T0/B0/DEADSECRET" % sock.getsockname()[1]
    sock.close()
    log = tmp_path / "events.jsonl"
    watcher = Watcher(options(tmp_path, "inotify", slack_webhook=dead, shutdown_timeout=1.0))
    watcher.start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure()
        writer.close()
        for check in CRITICAL_CHECKS:
            wait_until(has_event(log, check=check, status="CRITICAL"), what="CRITICAL " + check)
        wait_until(has_event(log, kind="finished"), what="finished")
    finally:
        started = time.monotonic()
        assert watcher.stop()
        assert time.monotonic() - started < 5.0  # bounded flush at shutdown
    assert critical_counts(log) == Counter({c: 1 for c in CRITICAL_CHECKS})
    assert watcher.engine.dispatcher.counters["slack"].delivered == 0
    assert (tmp_path / "final.json").exists()
    assert "alert sink 'slack' failed" in caplog.text and "DEADSECRET" not in caplog.text


# -- lifecycle -------------------------------------------------------------------------------


def test_stalled_resumed_finished_and_restart(tmp_path):
    log = tmp_path / "events.jsonl"
    report = tmp_path / "final.json"
    watcher = Watcher(options(tmp_path, "inotify", stall_after=0.8, finish_settle=0.3)).start()
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure(10, pause=0.0)
        wait_until(has_event(log, kind="stalled"), what="stalled")
        stalled = [e for e in events(log) if e["kind"] == "stalled"][0]
        assert stalled["status"] == "WARNING" and "no new data" in stalled["message"]
        writer.write_failure(5, pause=0.0)
        wait_until(has_event(log, kind="resumed"), what="resumed")
        writer.close()  # IN_CLOSE_WRITE on every event file -> finished
        wait_until(has_event(log, kind="finished"), what="finished")
        finished = [e for e in events(log) if e["kind"] == "finished"][0]
        assert "writer closed" in finished["message"]
        first = json.loads(
            wait_until(lambda: report.exists() and report.read_text(), what="report")
        )
        assert first["points"] == 15 * 5
        # a restart: a new writer (new event files) in the same run directory
        time.sleep(1.1)  # a new tensorboardX file name (it has the time in seconds)
        again = HarlWriter(str(tmp_path / "logs" / "run"), seed=1)
        again.step = 15_000
        again.write_failure(5, pause=0.0)
        again.close()
        wait_until(lambda: [e["kind"] for e in events(log)].count("finished") == 2, what="2nd end")
    finally:
        assert watcher.stop()
    kinds = [e["kind"] for e in events(log) if e["check"] == "Run"]
    assert kinds == ["stalled", "resumed", "finished", "resumed", "finished"]
    assert json.loads(report.read_text())["points"] == 20 * 5


def test_polling_presumes_finished_and_exit_when_finished(tmp_path):
    log = tmp_path / "events.jsonl"
    opts = options(tmp_path, "poll", stall_after=0.4, exit_when_finished=True)
    writer = HarlWriter(str(tmp_path / "logs" / "run"))
    writer.write_failure(20, pause=0.0)
    writer.close()
    result: List[int] = []
    thread = threading.Thread(target=lambda: result.append(watch(opts)))
    thread.start()
    thread.join(15.0)
    assert not thread.is_alive() and result == [0]
    assert [e["kind"] for e in events(log) if e["check"] == "Run"] == ["stalled", "finished"]
    finished = [e for e in events(log) if e["kind"] == "finished"][0]
    assert "presumed" in finished["message"]
    assert json.loads((tmp_path / "final.json").read_text())["points"] == 20 * 5


def test_run_quiet_for_long_at_start_is_finished_without_an_alert(tmp_path):
    writer = HarlWriter(str(tmp_path / "logs" / "old"))
    writer.write_failure(5, pause=0.0)
    writer.close()
    old = time.time() - 3600
    for root, _, files in os.walk(tmp_path / "logs"):
        for name in files:
            os.utime(os.path.join(root, name), (old, old))
    log = tmp_path / "events.jsonl"
    watcher = Watcher(options(tmp_path, "inotify", stall_after=60.0)).start()
    try:
        wait_until(lambda: watcher.lifecycle_of("old") == "finished", what="adopted")
        new = HarlWriter(str(tmp_path / "logs" / "old"), seed=2)
        new.step = 5000
        new.write_failure(3, pause=0.0)
        new.close()
        wait_until(has_event(log, kind="finished"), what="finished after resume")
    finally:
        assert watcher.stop()
    assert [e["kind"] for e in events(log) if e["check"] == "Run"] == ["resumed", "finished"]


# -- discovery -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_logdir_created_later_new_runs_nested_folders_and_deleted_run(tmp_path, mode, caplog):
    caplog.set_level(logging.INFO, logger="tblive")
    watcher = Watcher(options(tmp_path, mode)).start()
    try:
        time.sleep(0.3)
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
            run = watcher.states["seed2"].run
            sink = run.sinks.get("agent2/dist_entropy")
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


# -- the command line in a subprocess: SIGTERM, bot token, --on-critical --------------------------


def test_cli_watch_stops_cleanly_on_sigterm(tmp_path, slack_server):
    log = tmp_path / "events.jsonl"
    report = tmp_path / "final.json"
    env_dump = tmp_path / "on_critical.json"
    dump = (
        "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith('TBLIVE_')}, open(sys.argv[1], 'w'))"
    )
    command = "%s -c %s %s" % (shlex.quote(sys.executable), shlex.quote(dump), env_dump)
    env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-0-0-TESTTOKEN")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1])] + sys.path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tblive.cli",
            "--log-level",
            "INFO",
            "watch",
            str(tmp_path / "logs"),
            "--interval",
            "0.3",
            "--slack-channel",
            "#rl-alerts",
            "--slack-base-url",
            slack_server.api_base_url,
            "--events-log",
            str(log),
            "--final-report",
            str(report),
            "--on-critical",
            command,
        ],  # fmt: skip
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        writer = HarlWriter(str(tmp_path / "logs" / "run"))
        writer.write_failure()
        for check in CRITICAL_CHECKS:
            wait_until(has_event(log, check=check, status="CRITICAL"), 20.0, "CRITICAL " + check)
        wait_until(env_dump.exists, what="--on-critical command")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        writer.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(report.read_text())["run"] == "run"
    assert json.loads(env_dump.read_text())["TBLIVE_STATUS"] == "CRITICAL"
    posted = slack_server.requests
    assert posted and all(r.path == "/api/chat.postMessage" for r in posted)
    assert posted[0].body["channel"] == "#rl-alerts"
    assert "Bearer xoxb-0-0-TESTTOKEN" in posted[0].headers.get("Authorization", "")
    assert b"TESTTOKEN" not in stderr
    assert b"signal 15 received" in stderr
