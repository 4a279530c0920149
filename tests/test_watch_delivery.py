"""``tblive watch`` as a real process, a real tensorboardX writer and the local Slack server:
how many messages a failing run costs, and what a restart, SIGTERM or ``kill -9`` do to them.

The state file (``--state-file``) carries what was announced and what is still pending, so a
restarted daemon neither repeats nor loses an alert."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List

import pytest
from harl_writer import HarlWriter
from slack_server import (
    RecordingSlackServer,
    Reply,
    slack_server_fixture,  # noqa: F401 (registers the fixture)
)

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))


class Daemon:
    """``tblive watch`` in its own process (stderr to a file)."""

    def __init__(self, tmp: Path, logdir: Path, url: str, *extra: str) -> None:
        self.log = tmp / ("watch-%d.log" % time.monotonic_ns())
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + sys.path))
        env["XDG_STATE_HOME"] = str(tmp / "xdg")
        env.pop("SLACK_WEBHOOK_URL", None)
        env.pop("SLACK_BOT_TOKEN", None)
        command = [sys.executable, "-m", "tblive.cli", "--log-level", "INFO", "watch"]
        command += [str(logdir), "--slack-webhook", url, "--state-file", str(tmp / "state.json")]
        command += ["--interval", "1", *extra]
        self.stream = open(self.log, "wb")
        self.process = subprocess.Popen(command, env=env, stderr=self.stream, stdout=self.stream)
        wait_until(lambda: b"following" in self.log.read_bytes(), 30, "the daemon to start")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(30)
        self.stream.close()
        return code


def failing_run(path: Path, points: int = 60, pause: float = 0.01) -> None:
    writer = HarlWriter(str(path))
    writer.write_failure(points, pause=pause)
    writer.close()


def titles(server: RecordingSlackServer) -> List[str]:
    return [t.split("\n", 1)[0] for t in server.message_texts()]


def test_failure_written_live_is_at_most_three_messages_and_none_after_a_restart(
    tmp_path, slack_server
):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    daemon = Daemon(tmp_path, logdir, slack_server.webhook_url())
    failing_run(logdir / "seed1")
    wait_until(lambda: any("finished" in t for t in titles(slack_server)), 30, "finished notice")
    time.sleep(1.0)  # anything else it would send
    assert daemon.stop() == 0
    sent = titles(slack_server)
    assert 2 <= len(sent) <= 3, sent
    assert sent[0].startswith("\U0001f534 CRITICAL run 'seed1': ")
    assert "Run 'seed1' finished (CRITICAL)" in sent[-1]
    assert "alerts at shutdown: %d delivered" % len(sent) in daemon.text()
    assert "XXXXSECRETXXXX" not in daemon.text()

    again = Daemon(tmp_path, logdir, slack_server.webhook_url())
    # it has read the tree and judged it; whatever it would announce is flushed at SIGTERM
    wait_until(lambda: "first pass done: 1 runs" in again.text(), 30, "the first pass")
    assert again.stop() == 0
    assert titles(slack_server) == sent


def test_thirty_failed_runs_at_start_are_one_startup_digest(tmp_path, slack_server):
    logdir = tmp_path / "logs"
    failing_run(logdir / "seed00", points=40, pause=0.0)
    for i in range(1, 30):  # the same real files, 30 runs
        shutil.copytree(str(logdir / "seed00"), str(logdir / ("seed%02d" % i)))
    daemon = Daemon(tmp_path, logdir, slack_server.webhook_url())
    wait_until(lambda: len(titles(slack_server)) >= 1, 60, "start-up digest")
    # every run read and judged; whatever else it would announce is flushed at SIGTERM
    wait_until(lambda: "first pass done: 30 runs" in daemon.text(), 30, "the first pass")
    assert daemon.stop() == 0
    sent = titles(slack_server)
    assert len(sent) == 1, sent
    assert "30 runs to report (30 CRITICAL)" in sent[0]


def test_kill_9_during_an_outage_then_restart_loses_and_repeats_nothing(tmp_path):
    """Slack answers 500 while a run fails; the daemon is killed with SIGKILL (no shutdown at
    all); restarted with Slack healthy, the pending alerts arrive once each, in order."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    with RecordingSlackServer() as server:
        server.answer(default=Reply(500))
        daemon = Daemon(tmp_path, logdir, server.webhook_url())
        failing_run(logdir / "seed1")
        wait_until(lambda: "finished" in daemon.text(), 30, "finished")
        wait_until(lambda: len(server.requests) >= 3, 30, "failed attempts")
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        assert sum("is failing" in line for line in daemon.text().splitlines()) == 1
        attempted = [str((r.body or {}).get("text", "")).split("\n", 1)[0] for r in server.requests]
        server.answer(default=Reply(200))
        server.requests.clear()
        again = Daemon(tmp_path, logdir, server.webhook_url())
        wait_until(lambda: len(server.requests) >= 2, 30, "the pending alerts")
        wait_until(lambda: "first pass done: 1 runs" in again.text(), 30, "the first pass")
        assert again.stop() == 0  # flushes anything else it would send
        delivered = titles(server)
    assert len(delivered) == 2, delivered  # each alert once, in order
    assert delivered[0].startswith("\U0001f534 CRITICAL run 'seed1'")
    assert "Run 'seed1' finished (CRITICAL)" in delivered[1]
    # during the outage the first alert was retried, the second waited behind it
    assert set(attempted) == {delivered[0]}


def test_cli_checks_the_settings_at_start_and_sends_a_test_alert(
    tmp_path, slack_server, monkeypatch, capsys
):
    from tblive.cli import main

    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    logdir = str(tmp_path / "logs")
    cases = [
        (["--slack-webhook", "hooks.slack.com/services/T/B/SECRETX"], "must start with https://"),
        (["--slack-webhook", slack_server.webhook_url("T/B\tTABSECRET")], "whitespace"),
        (["--events-log", str(tmp_path)], "--events-log .* is a directory"),
        (["--final-report", str(tmp_path)], "--final-report .* is a directory"),
        (["--state-file", str(tmp_path)], "--state-file .* is a directory"),
        (["--slack-channel", "#c"], "needs a bot token"),
    ]
    import re

    for flags, message in cases:
        assert main(["watch", logdir] + flags) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(message, err), err
        assert "SECRET" not in err
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-3")
    assert main(["watch", logdir]) == 2
    assert "no channel" in capsys.readouterr().err
    monkeypatch.delenv("SLACK_BOT_TOKEN")

    url = slack_server.webhook_url()
    assert main(["watch", logdir, "--slack-webhook", url, "--test-alert"]) == 0
    captured = capsys.readouterr()
    assert "alerts go to: log, slack webhook (127.0.0.1)" in captured.err
    assert "slack: sent" in captured.out
    assert titles(slack_server) == ["\U0001f514 tblive test alert"]
    slack_server.answer(default=Reply(404, body="no_service"))
    assert main(["watch", logdir, "--slack-webhook", url, "--test-alert"]) == 1
    assert "slack: FAILED: SlackDeliveryError: Slack webhook answered HTTP 404" in (
        capsys.readouterr().out
    )
    assert not Path(logdir).exists()  # nothing was started
