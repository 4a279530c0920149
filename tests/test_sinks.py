"""Sinks and settings, for real: slack-sdk against a local HTTP server, a real shell command,
a real JSON-lines file (and a real full file system), real worker threads."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
from slack_server import (
    Reply,
    slack_server_fixture,  # noqa: F401 (registers the fixture)
)

from tblive.alert.settings import AlertSettings, SettingsError, build_sinks, check_output_file
from tblive.alert.sinks import REDACTED, RedactingFilter, redact, secret_variants
from tblive.alert.sinks.command import CommandFailed, CommandSink, scrubbed_environment
from tblive.alert.sinks.console import ConsoleSink
from tblive.alert.sinks.jsonl import JsonlSink
from tblive.alert.sinks.slack import SlackDeliveryError, SlackSink
from tblive.alert.tracker import PROBLEM, RECOVERED, STALLED, STARTUP, Alert, AlertTracker
from tblive.judge.findings import Finding, Status, Verdict

TOKEN = "xoxb-1111-2222-TOKENSECRETVALUE"
FAST = dict(timeout=2.0)


def critical_alert(agents: int = 3, step: int = 4200, run: str = "mapush_seed3") -> Alert:
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
        Verdict(run, findings, total_steps=step),
        1_700_000_000.0,
        key_values={"reward": [0.0, 1.0, 2.0, 1.5, -3.0]},
    )
    return alert


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


# -- Slack: one attempt per send, errors classified ---------------------------------------


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


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_one_attempt_per_send_429_carries_retry_after(slack_server, mode):
    slack_server.answer(Reply(429, {"Retry-After": "7"}))
    if mode == "webhook":
        sink = SlackSink(webhook_url=slack_server.webhook_url(), **FAST)
    else:
        sink = SlackSink(token=TOKEN, channel="C1", base_url=slack_server.api_base_url, **FAST)
    started = time.monotonic()
    with pytest.raises(SlackDeliveryError, match="rate limited") as info:
        sink.send(critical_alert())
    assert time.monotonic() - started < 1.0  # no sleeping inside the sink
    assert len(slack_server.requests) == 1  # slack-sdk does not retry on its own
    assert not info.value.permanent and info.value.retry_after == 7.0


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_server_error_is_transient_and_not_retried_inside(slack_server, mode):
    slack_server.answer(default=Reply(500))
    url = slack_server.webhook_url()
    if mode == "webhook":
        sink = SlackSink(webhook_url=url, **FAST)
    else:
        sink = SlackSink(token=TOKEN, channel="C1", base_url=slack_server.api_base_url, **FAST)
    with pytest.raises(SlackDeliveryError, match="500") as info:
        sink.send(critical_alert())
    assert len(slack_server.requests) == 1
    assert not info.value.permanent
    assert "XXXXSECRETXXXX" not in str(info.value) and TOKEN not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_refused_connection_is_transient():
    from test_delivery import closed_port

    url = "http://127.0.0.1:%d/services/T9/B9/DEADSLACKSECRET" % closed_port()
    with pytest.raises(SlackDeliveryError) as info:
        SlackSink(webhook_url=url, **FAST).send(critical_alert())
    assert not info.value.permanent
    assert "DEADSLACKSECRET" not in str(info.value)


@pytest.mark.parametrize(
    "error, hint",
    [
        ("invalid_auth", "bot token"),
        ("channel_not_found", "no such channel"),
        ("not_in_channel", "invite the bot"),
    ],
)
def test_permanent_api_errors_are_said_plainly(slack_server, error, hint):
    slack_server.answer(Reply(200, body=json.dumps({"ok": False, "error": error})))
    sink = SlackSink(token=TOKEN, channel="#c", base_url=slack_server.api_base_url, **FAST)
    with pytest.raises(SlackDeliveryError) as info:
        sink.send(critical_alert())
    assert info.value.permanent
    assert error in str(info.value) and hint in str(info.value)


def test_webhook_4xx_is_permanent(slack_server):
    slack_server.answer(Reply(404, body="no_service"))
    with pytest.raises(SlackDeliveryError, match="HTTP 404: no_service") as info:
        SlackSink(webhook_url=slack_server.webhook_url(), **FAST).send(critical_alert())
    assert info.value.permanent


def test_bot_uploads_the_picture_into_the_alerts_thread(slack_server):
    alert = critical_alert()
    alert.picture = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
    sink = SlackSink(token=TOKEN, channel="#c", base_url=slack_server.api_base_url, **FAST)
    assert sink.wants_picture
    sink.send(alert)
    paths = [r.path for r in slack_server.requests]
    assert paths == [
        "/api/chat.postMessage",
        "/api/files.getUploadURLExternal",
        paths[2],
        "/api/files.completeUploadExternal",
    ]
    assert paths[2].startswith("/upload/F")
    assert slack_server.requests[2].raw == alert.picture
    complete = slack_server.requests[3].body
    assert complete["thread_ts"] == "1.0" and complete["channel_id"] == "C1"
    assert sink.pictures_posted == 1
    assert not SlackSink(webhook_url=slack_server.webhook_url()).wants_picture


def test_a_failed_picture_upload_does_not_fail_the_alert(slack_server, caplog):
    alert = critical_alert()
    alert.picture = b"\x89PNG" + b"\0" * 10
    slack_server.answer(Reply(200), Reply(500))  # message ok, upload URL request fails
    sink = SlackSink(token=TOKEN, channel="#c", base_url=slack_server.api_base_url, **FAST)
    sink.send(alert)  # no raise: the message is there, re-sending would duplicate it
    assert "picture could not be uploaded" in caplog.text and TOKEN not in caplog.text


# -- settings -----------------------------------------------------------------------------


def test_settings_from_env_and_sinks():
    assert build_sinks(AlertSettings.from_env({}))[1:] == []
    settings = AlertSettings.from_env({"SLACK_BOT_TOKEN": TOKEN}, slack_channel="#c").validate()
    (sink,) = build_sinks(settings)[1:]
    assert sink.mode == "bot"
    env = {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/x", "SLACK_API_BASE_URL": "http://h/"}
    settings = AlertSettings.from_env(env).validate()
    assert settings.slack_base_url == "http://h/"
    (sink,) = build_sinks(settings)[1:]
    assert sink.mode == "webhook"
    assert settings.channels() == ["log", "slack webhook (127.0.0.1)"]
    assert "services" not in repr(settings) and TOKEN not in repr(
        AlertSettings.from_env({"SLACK_BOT_TOKEN": TOKEN})
    )


@pytest.mark.parametrize(
    "values, env, message",
    [
        ({"slack_webhook": "hooks.slack.com/services/T/B/X"}, {}, "must start with https://"),
        ({"slack_webhook": "https://hooks.slack.com/ser\tvices/T/B"}, {}, "whitespace"),
        ({"slack_webhook": "https://hooks.slack.com:99999/x"}, {}, "invalid port"),
        ({"slack_channel": "#c"}, {}, "needs a bot token"),
        ({}, {"SLACK_BOT_TOKEN": TOKEN}, "no channel"),
        ({"on_critical": "   "}, {}, "command is empty"),
        ({"slack_base_url": "ftp://x/"}, {}, "base URL"),
    ],
)
def test_settings_validation_one_clear_line(values, env, message):
    with pytest.raises(SettingsError, match=message) as info:
        AlertSettings.from_env(env, **values).validate()
    text = str(info.value)
    assert "\n" not in text and "TOKENSECRET" not in text and "T/B/X" not in text


def test_settings_validation_of_paths(tmp_path):
    with pytest.raises(SettingsError, match="--events-log .* is a directory"):
        AlertSettings(events_log=str(tmp_path)).validate()
    with pytest.raises(SettingsError, match="--final-report .* is a directory"):
        check_output_file(str(tmp_path), "--final-report")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SettingsError, match="not a directory"):
        AlertSettings(events_log=str(blocker / "sub" / "events.jsonl")).validate()
    AlertSettings(events_log=str(tmp_path / "new" / "dir" / "events.jsonl")).validate()
    assert not (tmp_path / "new").exists()  # validation creates nothing
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(SettingsError, match="cannot create files"):
                check_output_file(str(locked / "r.json"), "--final-report")
        finally:
            locked.chmod(0o700)


# -- console, jsonl ---------------------------------------------------------------------------


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_console_sink_logs_at_status_level(caplog):
    caplog.set_level(logging.INFO, logger="tblive.alert.tracker")
    sink = ConsoleSink()
    assert sink.durable is False
    alert = critical_alert()
    sink.send(alert)
    tracker = AlertTracker(host="h")
    stalled = tracker.lifecycle("r", STALLED, 0.0, message="no data for 30 min")
    sink.send(stalled)
    levels = [(r.levelno, r.getMessage().splitlines()[0]) for r in caplog.records]
    assert levels == [(logging.ERROR, alert.title), (logging.WARNING, "Run 'r' stalled")]


def test_jsonl_sink_appends_strict_json_lines_with_mode_0600(tmp_path):
    path = tmp_path / "deep" / "events.jsonl"
    sink = JsonlSink(path)
    alert = critical_alert(agents=2)
    alert.findings[0].details["ratio"] = float("nan")
    sink.send(alert)
    recovered = Alert(RECOVERED, "mapush_seed3", Status.OK, "Gradient Norms", time=5.0)
    sink.send(recovered)
    sink.close()
    assert (path.stat().st_mode & 0o777) == 0o600
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text
    first, second = read_jsonl(path)
    assert {"time", "run", "kind", "status", "check", "step", "host", "message", "findings"} <= set(
        first
    )
    assert first["status"] == "CRITICAL" and first["step"] == 4200 and first["host"] == "gpu-node-7"
    assert [f["metric"] for f in first["findings"]] == ["agent0/grad_norm", "agent1/grad_norm"]
    assert first["findings"][0]["details"]["ratio"] == "nan"
    assert first["changes"] == [
        {"check": "Gradient Norms", "kind": PROBLEM, "status": "CRITICAL", "previous": None}
    ]
    assert second["kind"] == RECOVERED and second["findings"] == []
    JsonlSink(path).send(recovered)  # a new sink appends
    assert len(read_jsonl(path)) == 3
    # a record round-trips (the outbox keeps alerts this way)
    again = Alert.from_dict(first)
    assert again.title == alert.title and again.text == alert.text


def test_jsonl_full_device_raises_and_writes_nothing():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    sink = JsonlSink("/dev/full")
    with pytest.raises(OSError):
        sink.send(critical_alert())
    sink.close()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs (root only); skipped where mounting is not permitted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % result.stderr.strip()[:100])
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_jsonl_full_disk_loses_no_line_and_writes_none_twice(tiny_fs):
    events = tiny_fs / "events.jsonl"
    filler = tiny_fs / "filler"
    sink = JsonlSink(events)
    alerts = [critical_alert(step=s, agents=3) for s in range(1, 1000)]
    line_size = len(json.dumps(alerts[0].to_dict())) + 1
    sink.send(alerts[0])
    # fill the disk, then free two pages: room for a few lines, not for all
    fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(os.path.getsize(filler) - 8192, 0))
    assert line_size < 4096
    delivered, failed = [alerts[0]], []
    for alert in alerts[1:40]:
        try:
            sink.send(alert)
            delivered.append(alert)
        except OSError:
            failed.append(alert)
    assert failed, "the disk never filled up"
    # every line in the file is whole JSON
    assert [r["step"] for r in read_jsonl(events)] == [a.step for a in delivered]
    filler.unlink()  # space again: the failed alerts go through, once each
    for alert in failed:
        sink.send(alert)
    sink.close()
    steps = [r["step"] for r in read_jsonl(events)]
    assert sorted(steps) == [a.step for a in alerts[:40]] and len(set(steps)) == 40


# -- command ---------------------------------------------------------------------------------


def dump_env_command(out: Path, prefix: str = "TBLIVE_") -> str:
    script = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    return "%s -c %s %s" % (shlex.quote(sys.executable), shlex.quote(script), shlex.quote(str(out)))


def test_command_sink_passes_the_alert_and_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/SECRET")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
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
    assert env["SLURM_JOB_ID"] == "4242"  # ordinary variables stay
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "AWS_SECRET_ACCESS_KEY", "WANDB_API_KEY"):
        assert name not in env
    CommandSink(dump_env_command(out), pass_secrets=True).send(alert)  # the opt-in
    assert json.loads(out.read_text())["SLACK_BOT_TOKEN"] == TOKEN
    assert "PATH" in scrubbed_environment({"PATH": "/bin", "GITHUB_TOKEN": "x"})


def test_command_sink_only_fires_at_its_level(tmp_path):
    out = tmp_path / "env.json"
    sink = CommandSink(dump_env_command(out), on=Status.CRITICAL)
    warning = Alert(PROBLEM, "r", Status.WARNING, "Entropy")
    recovered = Alert(RECOVERED, "r", Status.OK, "Entropy")
    assert not sink.wants(warning) and not sink.wants(recovered)
    sink.send(warning)
    sink.send(recovered)
    assert not out.exists()
    CommandSink(dump_env_command(out), on=Status.WARNING).send(warning)
    assert json.loads(out.read_text())["TBLIVE_STATUS"] == "WARNING"
    with pytest.raises(ValueError, match="empty"):
        CommandSink("  ")


def test_command_sink_runs_once_per_run_of_a_startup_digest(tmp_path):
    log = tmp_path / "runs.txt"
    sink = CommandSink('echo "$TBLIVE_RUN" >> %s' % shlex.quote(str(log)))
    digest = Alert(
        STARTUP,
        "",
        Status.CRITICAL,
        "",
        runs=[
            critical_alert(run="a"),
            Alert(PROBLEM, "b", Status.WARNING, "E"),
            critical_alert(run="c"),
        ],
    )
    assert sink.wants(digest)
    sink.send(digest)
    assert log.read_text().split() == ["a", "c"]


def test_command_failure_is_permanent_with_its_exit_code():
    alert = critical_alert()
    with pytest.raises(CommandFailed, match="exited with code 3 \\(not re-run\\): boom") as info:
        CommandSink("echo boom >&2; exit 3").send(alert)
    assert info.value.permanent
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out"):
        CommandSink("sleep 30", timeout=0.3).send(alert)
    assert time.monotonic() - started < 5.0


def test_command_close_ends_its_process_group(tmp_path):
    import threading

    pidfile = tmp_path / "pid"
    # the shell starts a child that would outlive a plain kill of the shell
    sink = CommandSink("sleep 60 & echo $! > %s; wait" % shlex.quote(str(pidfile)), timeout=30)
    errors: List[BaseException] = []

    def run() -> None:
        try:
            sink.send(critical_alert())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(pidfile.read_text())
    sink.close()
    thread.join(5)
    assert not thread.is_alive()
    assert errors and "killed by signal" in str(errors[0])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the command's child outlived close()")


# -- redaction helpers ----------------------------------------------------------------------


def test_redaction_helpers():
    url = "https://hooks.slack.com/services/T1/B2/abcdef"
    variants = secret_variants(url)
    assert variants[:2] == [url, "/services/T1/B2/abcdef"] or url in variants
    assert redact("POST /services/T1/B2/abcdef failed", variants) == "POST %s failed" % REDACTED
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "url=%s", (url,), None)
    RedactingFilter(variants).filter(record)
    assert record.getMessage() == "url=%s" % REDACTED


@pytest.mark.parametrize(
    "secret",
    [
        "https://hooks.slack.com/services/T0AB\tB0CD/SECRETPATHVALUE",
        "https://hooks.slack.com/services/T0AB/B0CD/SECRET PATH VALUE",
        "https://hooks.slack.com/services/T0AB/B0CD/SECRETPATH\n",
        "xoxb-1234 5678-TOKENWITHSPACE",
    ],
)
def test_redaction_holds_for_secrets_with_whitespace(secret):
    variants = secret_variants(secret)
    pieces = [p for p in secret.split() if len(p) >= 6]
    for shown in (
        secret,
        repr(secret),
        "".join(secret.split()),
        " ".join(secret.split()),
        secret.replace("\t", "%09").replace(" ", "%20").replace("\n", "%0A"),
    ):
        clean = redact("failed: %s !" % shown, variants)
        for piece in pieces:
            if len(piece) >= 8:
                assert piece not in clean, (shown, clean)


ODD_SECRETS = [
    "T0AB\tB0CD/SECRETPATHTAB01",
    "T0AB/B0CD/SECRET PATH SPACE02",
    "T0AB/B0CD/SECRETNEWLINE03\n",
    "T0AB/B0CD/S%2FECRETPERCENT04",
    "T0AB/B0CD/SECRÉTUNICODE05",
]


@pytest.mark.parametrize("path", ODD_SECRETS)
def test_odd_secrets_never_reach_any_log_or_error(path, slack_server, caplog):
    """Every path that logs or raises: refused connection, 500, 404, 429, permanent API
    errors, the dispatcher's outage and give-up lines, slack-sdk's own DEBUG logging, reprs,
    settings errors and the test-alert results."""
    import logging as logging_module

    from tblive.alert.engine import AlertEngine
    from tblive.alert.sinks.dispatch import AlertDispatcher
    from tblive.alert.sinks.slack import SDK_LOGGER_NAME

    caplog.set_level(logging_module.DEBUG)
    caplog.set_level(logging_module.DEBUG, logger=SDK_LOGGER_NAME)
    token = "xoxb-99 88-" + path.replace("/", "")
    pieces = [p for p in (path + " " + token).split() if len(p) >= 8]
    seen: List[str] = []
    from test_delivery import closed_port

    urls = [
        "http://127.0.0.1:%d/services/%s" % (closed_port(), path),
        "%s/services/%s" % (slack_server.url, path),
    ]
    slack_server.answer(
        Reply(500),
        Reply(404, body="no_service"),
        Reply(429, {"Retry-After": "0"}),
        default=Reply(200, body=json.dumps({"ok": False, "error": "invalid_auth"})),
    )
    sinks = [
        SlackSink(webhook_url=url, timeout=1.0, name="hook%d" % i) for i, url in enumerate(urls)
    ]
    sinks.append(
        SlackSink(token=token, channel="#c", base_url=slack_server.api_base_url, timeout=1.0)
    )
    for sink in sinks:
        seen.append(repr(sink))
        for _ in range(2):
            try:
                sink.send(critical_alert())
            except Exception as exc:
                seen.append(str(exc))
                seen.append(repr(exc))
    dispatcher = AlertDispatcher(sinks, backoff=0.01, max_backoff=0.02, max_age=0.2)
    dispatcher.submit(critical_alert())
    time.sleep(0.5)
    dispatcher.close(1.0)
    engine = AlertEngine(sinks=sinks[:1], dispatch=dict(backoff=0.01))
    seen.extend(str(v) for v in engine.test_alert().values())
    engine.close(0.5)
    for settings in (
        AlertSettings(slack_webhook=urls[1]),
        AlertSettings(slack_token=token, slack_channel="#c"),
        AlertSettings(slack_token=token),
    ):
        seen.append(repr(settings))
        seen.append(" ".join(settings.channels()))
        try:
            settings.validate()
        except SettingsError as exc:
            seen.append(str(exc))
    logged = caplog.text + "".join(str(r.exc_text or "") for r in caplog.records)
    everything = logged + "\n".join(seen)
    assert "Slack" in everything and REDACTED in everything  # the paths were exercised
    for piece in pieces:
        for form in (piece, piece.encode("unicode_escape").decode("ascii")):
            assert form not in everything, (piece, form)


def test_block_kit_of_a_digest_and_of_a_startup_digest():
    from tblive.alert.sinks.slack import build_blocks
    from tblive.alert.tracker import startup_digest

    tracker = AlertTracker(host="h")
    findings = [
        Finding("Entropy", Status.CRITICAL, "entropy <rises>", metric="e"),
        Finding("Reward Trend", Status.WARNING, "reward flat", metric="r"),
    ]
    (digest,) = tracker.observe(Verdict("seed1", findings, total_steps=9), 0.0)
    section = build_blocks(digest)[2]["text"]["text"]
    assert section.splitlines() == [
        "\u2022 *CRITICAL* Entropy: OK -&gt; CRITICAL: entropy &lt;rises&gt;",
        "\u2022 *WARNING* Reward Trend: OK -&gt; WARNING: reward flat",
    ]
    runs = [critical_alert(run="seed%02d" % i) for i in range(40)]
    blocks = build_blocks(startup_digest(runs, 0.0, "h", "/runs"))
    assert "40 runs to report (40 CRITICAL)" in blocks[0]["text"]["text"]
    assert all("*Run*" not in f["text"] for f in blocks[1]["fields"])
    lines = blocks[2]["text"]["text"].splitlines()
    assert len(lines) == 31 and lines[-1] == "\u2026 and 10 more"
