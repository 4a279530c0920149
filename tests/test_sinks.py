"""Sinks and the dispatcher, for real: slack-sdk against a local HTTP server, a real shell
command, a real JSON-lines file, real worker threads."""

from __future__ import annotations

import json
import logging
import shlex
import socket
import sys
import threading
import time
from pathlib import Path
from typing import List

import pytest
from slack_server import (
    Reply,
    slack_server_fixture,  # noqa: F401 (registers the fixture)
)

from tblive.alert.engine import SinkSettings, build_sinks
from tblive.alert.sinks import REDACTED, RedactingFilter, Sink, redact, secret_variants
from tblive.alert.sinks.command import CommandFailed, CommandSink
from tblive.alert.sinks.console import ConsoleSink
from tblive.alert.sinks.dispatch import AlertDispatcher
from tblive.alert.sinks.jsonl import JsonlSink
from tblive.alert.sinks.slack import SDK_LOGGER_NAME, SlackDeliveryError, SlackSink
from tblive.alert.tracker import PROBLEM, RECOVERED, STALLED, Alert, AlertTracker
from tblive.judge.findings import Finding, Status, Verdict

TOKEN = "xoxb-1111-2222-TOKENSECRETVALUE"
FAST = dict(retry_interval=0.05, timeout=5.0)


def critical_alert(agents: int = 3, step: int = 4200) -> Alert:
    tracker = AlertTracker(host="gpu-node-7")
    findings = [
        Finding(
            "Gradient Norms",
            Status.CRITICAL,
            "agent%d/grad_norm is 2.1e4 (> 100): lower the learning rate" % i,
            metric="agent%d/grad_norm" % i,
        )
        for i in range(agents)
    ]
    (alert,) = tracker.observe(
        Verdict("mapush_seed3", findings, total_steps=step),
        1_700_000_000.0,
        key_values={"reward": [0.0, 1.0, 2.0, 1.5, -3.0]},
    )
    return alert


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def assert_block_kit(body: dict, alert: Alert) -> None:
    assert body["text"].startswith("\U0001f534 CRITICAL run 'mapush_seed3'")
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"].startswith("\U0001f534")
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    assert "mapush_seed3" in fields and "gpu-node-7" in fields and "4,200" in fields
    findings_text = blocks[2]["text"]["text"]
    for finding in alert.findings:
        assert finding.message.replace(">", "&gt;") in findings_text
    assert blocks[3]["type"] == "context"
    assert "reward" in blocks[3]["elements"][0]["text"]
    assert "\u2588" in blocks[3]["elements"][0]["text"]  # sparkline


# -- Slack --------------------------------------------------------------------------------


def test_webhook_posts_block_kit_with_text_fallback(slack_server):
    alert = critical_alert()
    sink = SlackSink(webhook_url=slack_server.webhook_url(), **FAST)
    sink.send(alert)
    (request,) = slack_server.requests
    assert request.path == "/services/T000/B000/XXXXSECRETXXXX"
    assert_block_kit(request.body, alert)


def test_bot_token_posts_chat_post_message_to_base_url(slack_server):
    alert = critical_alert()
    sink = SlackSink(token=TOKEN, channel="#rl-alerts", base_url=slack_server.api_base_url, **FAST)
    sink.send(alert)
    (request,) = slack_server.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == "Bearer " + TOKEN
    assert request.body["channel"] == "#rl-alerts"
    assert_block_kit(request.body, alert)
    assert TOKEN not in repr(sink)


def test_rate_limit_429_waits_retry_after_then_delivers(slack_server):
    slack_server.answer(Reply(429, {"Retry-After": "1"}))
    sink = SlackSink(webhook_url=slack_server.webhook_url(), **FAST)
    started = time.monotonic()
    sink.send(critical_alert())
    elapsed = time.monotonic() - started
    assert len(slack_server.requests) == 2
    assert elapsed >= 1.0  # honoured Retry-After
    assert slack_server.requests[0].raw == slack_server.requests[1].raw


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_server_error_500_is_retried(slack_server, mode):
    slack_server.answer(Reply(500), Reply(500))
    if mode == "webhook":
        sink = SlackSink(webhook_url=slack_server.webhook_url(), server_error_retries=2, **FAST)
    else:
        sink = SlackSink(
            token=TOKEN,
            channel="C1",
            base_url=slack_server.api_base_url,
            server_error_retries=2,
            **FAST,
        )
    sink.send(critical_alert())
    assert len(slack_server.requests) == 3


def test_persistent_500_raises_a_redacted_error(slack_server):
    slack_server.answer(default=Reply(500))
    url = slack_server.webhook_url()
    sink = SlackSink(webhook_url=url, server_error_retries=1, **FAST)
    with pytest.raises(SlackDeliveryError, match="HTTP 500") as info:
        sink.send(critical_alert())
    assert len(slack_server.requests) == 2
    assert "XXXXSECRETXXXX" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_slack_configuration_errors_and_env():
    with pytest.raises(ValueError, match="either a webhook"):
        SlackSink()
    with pytest.raises(ValueError, match="needs --slack-channel"):
        SlackSink(token=TOKEN)
    assert build_sinks(SinkSettings.from_environment({}))[1:] == []
    settings = SinkSettings.from_environment({"SLACK_BOT_TOKEN": TOKEN}, slack_channel="#c")
    (sink,) = build_sinks(settings)[1:]
    assert sink.mode == "bot"
    env = {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/x", "SLACK_API_BASE_URL": "http://h/"}
    settings = SinkSettings.from_environment(env)
    assert settings.slack_base_url == "http://h/"
    (sink,) = build_sinks(settings)[1:]
    assert sink.mode == "webhook"
    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN with --slack-channel"):
        build_sinks(SinkSettings.from_environment({}, slack_channel="#c"))


# -- dispatcher with real sinks ---------------------------------------------------------------


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dead_slack_does_not_stop_jsonl_and_close_meets_deadline(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER_NAME)
    url = "http://127.0.0.1:%d/services/T9/B9/DEADSLACKSECRET" % closed_port()
    slack = SlackSink(webhook_url=url, connection_retries=1, **FAST)
    events = tmp_path / "logs" / "events.jsonl"
    dispatcher = AlertDispatcher([slack, JsonlSink(events)], max_attempts=2, backoff=0.05)
    alerts = [critical_alert(step=s) for s in (100, 200, 300)]
    for alert in alerts:
        dispatcher.submit(alert)
    started = time.monotonic()
    assert dispatcher.close(timeout=5.0)
    assert time.monotonic() - started < 5.0
    assert [r["step"] for r in read_jsonl(events)] == [100, 200, 300]
    counters = dispatcher.counters
    assert counters["jsonl"].delivered == 3 and counters["jsonl"].failures == 0
    assert counters["slack"].delivered == 0
    assert counters["slack"].failures == 6 and counters["slack"].given_up == 3
    assert dispatcher.failures == 6 and dispatcher.delivered == 3
    assert "alert sink 'slack' failed" in caplog.text
    assert "DEADSLACKSECRET" not in caplog.text and "T9/B9" not in caplog.text


def test_secrets_never_reach_the_logs(slack_server, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER_NAME)
    url = slack_server.webhook_url("T123/B456/HOOKSECRETHOOKSECRET")
    slack_server.answer(Reply(500), Reply(429, {"Retry-After": "0"}), default=Reply(200))
    webhook = SlackSink(webhook_url=url, name="slack-hook", server_error_retries=1, **FAST)
    bot = SlackSink(
        token=TOKEN, channel="C1", base_url=slack_server.api_base_url, name="slack-bot", **FAST
    )
    with AlertDispatcher([webhook, bot], max_attempts=2, backoff=0.01) as dispatcher:
        dispatcher.submit(critical_alert())
    assert dispatcher.delivered == 2
    slack_server.answer(default=Reply(500))  # now always failing: errors get logged
    dispatcher = AlertDispatcher([webhook, bot], max_attempts=2, backoff=0.01)
    dispatcher.submit(critical_alert())
    dispatcher.close(timeout=10.0)
    assert dispatcher.given_up == 2
    logged = caplog.text + "".join(str(r.exc_text or "") for r in caplog.records)
    assert "Sending a request" in logged  # slack-sdk's debug lines were captured ...
    assert REDACTED in logged  # ... with the URL redacted
    for secret in (url, "HOOKSECRETHOOKSECRET", TOKEN, "TOKENSECRETVALUE"):
        assert secret not in logged


def test_slow_slack_does_not_delay_the_jsonl_log(slack_server, tmp_path):
    slack_server.answer(Reply(200, delay=0.8))
    events = tmp_path / "events.jsonl"
    dispatcher = AlertDispatcher(
        [SlackSink(webhook_url=slack_server.webhook_url(), **FAST), JsonlSink(events)]
    )
    started = time.monotonic()
    dispatcher.submit(critical_alert())
    assert time.monotonic() - started < 0.1  # submit does not block
    deadline = time.monotonic() + 0.6
    while not (events.exists() and events.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read_jsonl(events)[0]["kind"] == PROBLEM
    assert dispatcher.counters["slack"].delivered == 0  # Slack is still answering
    assert slack_server.wait_for(1, timeout=2.0)
    assert dispatcher.close(timeout=5.0)
    assert dispatcher.counters["slack"].delivered == 1


class FlakySink:
    """Fails the first ``failures`` sends, records the rest."""

    def __init__(self, failures: int, name: str = "flaky", delay: float = 0.0) -> None:
        self.name = name
        self.failures = failures
        self.delay = delay
        self.received: List[Alert] = []
        self.closed = False

    def send(self, alert: Alert) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("sink down")
        self.received.append(alert)

    def close(self) -> None:
        self.closed = True


def test_dispatcher_retries_then_delivers_and_isolates_sinks(caplog):
    flaky, broken, good = FlakySink(2), FlakySink(10**6, name="broken"), FlakySink(0, name="good")
    assert isinstance(flaky, Sink)
    dispatcher = AlertDispatcher([flaky, broken, good], max_attempts=3, backoff=0.01)
    alert = critical_alert()
    dispatcher.submit(alert)
    dispatcher.submit(alert)
    assert dispatcher.close(timeout=5.0)
    assert len(flaky.received) == 2 and len(good.received) == 2 and broken.received == []
    assert dispatcher.counters["flaky"].failures == 2
    assert dispatcher.counters["broken"].given_up == 2
    assert all(s.closed for s in (flaky, broken, good))
    assert "giving up" in caplog.text
    dispatcher.submit(alert)  # after close: ignored, no raise
    assert len(good.received) == 2


def test_dispatcher_leaves_no_thread_behind():
    before = set(threading.enumerate())
    dispatchers = [
        AlertDispatcher([FlakySink(1), FlakySink(0, name="ok")], backoff=0.01) for _ in range(3)
    ]
    during = set(threading.enumerate()) - before
    assert len([t for t in during if t.name.startswith("tblive-sink-")]) == 6
    for dispatcher in dispatchers:
        dispatcher.submit(critical_alert())
        assert dispatcher.close(timeout=5.0)
    assert set(threading.enumerate()) - before == set()


def test_close_deadline_cuts_retries_and_drops_the_rest():
    sink = FlakySink(10**6, delay=0.05)
    dispatcher = AlertDispatcher([sink], max_attempts=50, backoff=0.2, max_backoff=0.2)
    for _ in range(20):
        dispatcher.submit(critical_alert())
    started = time.monotonic()
    clean = dispatcher.close(timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert not clean  # alerts were dropped at the deadline
    counters = dispatcher.counters["flaky"]
    assert counters.given_up >= 1 and counters.dropped >= 1
    assert counters.given_up + counters.dropped == 20
    assert not any(t.name == "tblive-sink-flaky" and t.is_alive() for t in threading.enumerate())


def test_duplicate_sink_names_get_suffixes():
    dispatcher = AlertDispatcher([FlakySink(0), FlakySink(0)])
    assert dispatcher.sink_names == ["flaky", "flaky-2"]
    assert dispatcher.close(1.0)


# -- console, jsonl, command --------------------------------------------------------------


def test_console_sink_logs_at_status_level(caplog):
    caplog.set_level(logging.INFO, logger="tblive.alert.tracker")
    sink = ConsoleSink()
    alert = critical_alert()
    sink.send(alert)
    tracker = AlertTracker(host="h")
    stalled = tracker.lifecycle("r", STALLED, 0.0, message="no data for 30 min")
    sink.send(stalled)
    levels = [(r.levelno, r.getMessage().splitlines()[0]) for r in caplog.records]
    assert levels == [(logging.ERROR, alert.title), (logging.WARNING, "Run 'r' stalled")]


def test_jsonl_sink_appends_strict_json_lines(tmp_path):
    path = tmp_path / "deep" / "events.jsonl"
    sink = JsonlSink(path)
    alert = critical_alert(agents=2)
    alert.findings[0].details["ratio"] = float("nan")
    sink.send(alert)
    recovered = Alert(RECOVERED, "mapush_seed3", Status.OK, "Gradient Norms", time=5.0)
    sink.send(recovered)
    sink.close()
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text
    first, second = read_jsonl(path)
    assert {"time", "run", "kind", "status", "check", "step", "host", "message", "findings"} <= set(
        first
    )
    assert first["status"] == "CRITICAL" and first["step"] == 4200 and first["host"] == "gpu-node-7"
    assert [f["metric"] for f in first["findings"]] == ["agent0/grad_norm", "agent1/grad_norm"]
    assert first["findings"][0]["details"]["ratio"] == "nan"
    assert second["kind"] == RECOVERED and second["findings"] == []
    JsonlSink(path).send(recovered)  # a new sink appends
    assert len(read_jsonl(path)) == 3


def dump_env_command(out: Path) -> str:
    script = (
        "import json, os, sys; "
        "json.dump({k: v for k, v in os.environ.items() if k.startswith('TBLIVE_')}, "
        "open(sys.argv[1], 'w'))"
    )
    return "%s -c %s %s" % (shlex.quote(sys.executable), shlex.quote(script), shlex.quote(str(out)))


def test_command_sink_passes_the_alert_in_environment(tmp_path):
    out = tmp_path / "env.json"
    sink = CommandSink(dump_env_command(out))
    alert = critical_alert()
    sink.send(alert)
    env = json.loads(out.read_text())
    assert env["TBLIVE_RUN"] == "mapush_seed3"
    assert env["TBLIVE_STATUS"] == "CRITICAL"
    assert env["TBLIVE_CHECK"] == "Gradient Norms"
    assert env["TBLIVE_STEP"] == "4200"
    assert env["TBLIVE_KIND"] == PROBLEM
    assert env["TBLIVE_HOST"] == "gpu-node-7"
    assert env["TBLIVE_MESSAGE"] == alert.text and "agent2/grad_norm" in env["TBLIVE_MESSAGE"]


def test_command_sink_only_fires_at_its_level(tmp_path):
    out = tmp_path / "env.json"
    sink = CommandSink(dump_env_command(out), on=Status.CRITICAL)
    warning = Alert(PROBLEM, "r", Status.WARNING, "Entropy")
    recovered = Alert(RECOVERED, "r", Status.OK, "Entropy")
    sink.send(warning)
    sink.send(recovered)
    assert not out.exists()
    CommandSink(dump_env_command(out), on=Status.WARNING).send(warning)
    assert json.loads(out.read_text())["TBLIVE_STATUS"] == "WARNING"
    with pytest.raises(ValueError, match="empty"):
        CommandSink("  ")


def test_command_sink_failure_and_timeout_raise():
    alert = critical_alert()
    with pytest.raises(CommandFailed, match="exited with code 3: boom"):
        CommandSink("echo boom >&2; exit 3").send(alert)
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out"):
        CommandSink("sleep 30", timeout=0.3).send(alert)
    assert time.monotonic() - started < 5.0


# -- redaction helpers ----------------------------------------------------------------------


def test_redaction_helpers():
    url = "https://hooks.slack.com/services/T1/B2/abcdef"
    variants = secret_variants(url)
    assert variants == [url, "/services/T1/B2/abcdef"]
    assert redact("POST /services/T1/B2/abcdef failed", variants) == "POST %s failed" % REDACTED
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "url=%s", (url,), None)
    RedactingFilter(variants).filter(record)
    assert record.getMessage() == "url=%s" % REDACTED
