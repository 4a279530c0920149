"""Delivery end to end: the outbox (priority, overflow, age), the one retry layer, the state
file across restarts, the engine's digests and start-up digest, and Slack faults (500s, a hang,
refused connections, 429) against the local Slack server, with fast injected backoff."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Dict, List

import pytest
from patterns import failure_pattern, healthy_pattern
from slack_server import (
    RecordingSlackServer,
    Reply,
    slack_server_fixture,  # noqa: F401 (registers the fixture)
)

from tblive.alert.engine import AlertEngine
from tblive.alert.settings import AlertSettings
from tblive.alert.sinks import PermanentDeliveryError
from tblive.alert.sinks.dispatch import AlertDispatcher
from tblive.alert.sinks.slack import SlackSink
from tblive.alert.state import Outbox, StateStore, default_state_path
from tblive.alert.tracker import FINISHED, PROBLEM, STARTUP, TEST, Alert
from tblive.judge.findings import Finding, Status
from tblive.series.stats import MetricStats

FAST = dict(backoff=0.02, max_backoff=0.1)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def alert(run: str, status: Status = Status.CRITICAL, n: int = 0) -> Alert:
    finding = Finding("Entropy", status, "entropy rose (%d)" % n, metric="entropy")
    return Alert(PROBLEM, run, status, "Entropy", [finding], step=n, host="h", time=float(n))


class RecordingSink:
    """Fails while ``down`` (transient) or ``broken`` (permanent); records the rest."""

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.down = False
        self.broken = False
        self.received: List[Alert] = []
        self.attempts = 0
        self.closed = False

    def send(self, item: Alert) -> None:
        self.attempts += 1
        if self.broken:
            raise PermanentDeliveryError("invalid_auth: the token is not valid")
        if self.down:
            raise ConnectionError("connection refused")
        self.received.append(item)

    def close(self) -> None:
        self.closed = True


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail("timed out waiting for %s" % what)


# -- outbox -----------------------------------------------------------------------------------


def test_outbox_critical_first_then_in_order_and_overflow_drops_oldest_low_priority():
    outbox = Outbox(limit=4)
    for i, status in enumerate([Status.WARNING, Status.WARNING, Status.CRITICAL, Status.WARNING]):
        outbox.put(alert("r%d" % i, status, i), [("s", True)], now=float(i))
    dropped = outbox.put(alert("new", Status.CRITICAL, 9), [("s", True)], now=9.0)
    assert [d.alert.run for d in dropped] == ["r0"]  # the oldest WARNING, not the newest
    order = []
    while True:
        item = outbox.next_for("s")
        if item is None:
            break
        order.append(item.alert.run)
        outbox.remove(item)
    assert order == ["r2", "new", "r1", "r3"]


def test_a_backlog_never_delays_a_new_critical():
    sink = RecordingSink()
    sink.down = True
    dispatcher = AlertDispatcher([sink], **FAST)
    for i in range(300):  # finished runs' warnings pile up while the sink is down
        dispatcher.submit(alert("old%03d" % i, Status.WARNING, i))
    dispatcher.submit(alert("fresh", Status.CRITICAL, 1000))
    sink.down = False
    wait_until(lambda: len(sink.received) >= 1, what="first delivery")
    assert sink.received[0].run == "fresh"
    assert dispatcher.close(5.0)
    assert len(sink.received) == 301 and dispatcher.dropped == 0


# -- one retry layer, permanent errors, age, outage logging ------------------------------------


def test_transient_failures_are_retried_in_order_and_the_outage_is_logged_once(caplog):
    caplog.set_level(logging.DEBUG, logger="tblive.alert.sinks.dispatch")
    sink = RecordingSink()
    sink.down = True
    dispatcher = AlertDispatcher([sink], **FAST)
    for i in range(5):
        dispatcher.submit(alert("run", Status.CRITICAL, i))
    wait_until(lambda: sink.attempts >= 6, what="several failed attempts")
    sink.down = False
    assert dispatcher.close(5.0)
    assert [a.step for a in sink.received] == [0, 1, 2, 3, 4]  # each once, in order
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("is failing" in m for m in warnings) == 1
    assert sum("delivering again" in m for m in warnings) == 1
    assert "5 delivered, 0 failed, 0 pending, 0 dropped" in caplog.text


def test_permanent_errors_are_not_retried_and_said_plainly(caplog):
    sink = RecordingSink()
    sink.broken = True
    dispatcher = AlertDispatcher([sink], **FAST)
    dispatcher.submit(alert("seed1"))
    dispatcher.submit(alert("seed2"))
    dispatcher.close(5.0)
    assert sink.attempts == 2 and dispatcher.failed == 2
    assert "cannot deliver the alert for run 'seed1' (Entropy)" in caplog.text
    assert "invalid_auth" in caplog.text and "not retried" in caplog.text


def test_too_old_alerts_are_given_up_naming_run_and_checks(caplog):
    now = [1000.0]
    sink = RecordingSink()
    sink.down = True
    dispatcher = AlertDispatcher([sink], max_age=3600.0, clock=lambda: now[0], **FAST)
    dispatcher.submit(alert("seed7"))
    wait_until(lambda: sink.attempts >= 2, what="a retry")
    now[0] += 3601.0
    wait_until(lambda: dispatcher.dropped == 1, what="give-up")
    assert "giving up the alert for run 'seed7' (Entropy)" in caplog.text
    assert dispatcher.close(1.0) is False  # something was dropped


def test_shutdown_keeps_pending_alerts_in_the_state_file_and_a_restart_delivers_them(tmp_path):
    path = str(tmp_path / "state.json")
    sink = RecordingSink("slack")
    sink.down = True
    engine = AlertEngine(sinks=[sink], state=StateStore(path, "/runs"), dispatch=FAST)
    engine.dispatcher.submit_all([alert("a", n=1), alert("b", Status.WARNING, n=2)])
    wait_until(lambda: sink.attempts >= 2, what="failed attempts")
    assert engine.close(0.2) is False
    saved = json.loads(Path(path).read_text())
    assert [r["alert"]["run"] for r in saved["outbox"]] == ["a", "b"]
    assert (Path(path).stat().st_mode & 0o777) == 0o600
    healthy = RecordingSink("slack")
    again = AlertEngine(sinks=[healthy], state=StateStore(path, "/runs"), dispatch=FAST)
    assert again.close(5.0)
    assert [(a.run, a.step) for a in healthy.received] == [("a", 1), ("b", 2)]
    assert json.loads(Path(path).read_text())["outbox"] == []
    third = RecordingSink("slack")
    AlertEngine(sinks=[third], state=StateStore(path, "/runs"), dispatch=FAST).close(1.0)
    assert third.received == []  # delivered once, never again


def test_corrupt_or_missing_state_file_is_a_clean_start(tmp_path, caplog):
    path = tmp_path / "state.json"
    assert StateStore(str(path)).load() == {}
    path.write_text('{"version": 1, "tracker": {"version"')
    assert StateStore(str(path)).load() == {}
    assert "unreadable" in caplog.text and "starting clean" in caplog.text
    path.write_text(json.dumps({"version": 1, "tracker": {"version": 7}, "outbox": [{"x": 1}]}))
    engine = AlertEngine(sinks=[RecordingSink()], state=StateStore(str(path)), dispatch=FAST)
    assert engine.close(1.0)
    assert "unusable" in caplog.text and "unreadable pending alert" in caplog.text


def test_state_file_dev_null_keeps_no_state_and_leaves_the_device_alone():
    store = StateStore(os.devnull)
    assert store.path is None and store.save()
    assert not os.path.isfile(os.devnull)


def test_default_state_path_is_per_absolute_logdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    one = default_state_path("runs", env)
    assert one == default_state_path(str(tmp_path / "runs"), env)
    assert one.startswith(str(tmp_path / "state" / "tblive" / "runs-"))
    assert default_state_path("other/runs", env) != one
    home = default_state_path("runs", {})
    assert "/.local/state/tblive/" in home


# -- the engine: digests from live statistics ---------------------------------------------------


def feed(view: Dict[str, MetricStats], rows) -> None:
    for step, wall, plain, grouped in rows:
        for tag, value in list(plain.items()) + list(grouped.items()):
            view.setdefault(tag, MetricStats()).update(step, float(value), wall)


def live_run(engine: AlertEngine, name: str, rows, every: int = 5, now: float = 0.0) -> float:
    view: Dict[str, MetricStats] = {}
    for i, row in enumerate(rows):
        feed(view, [row])
        if (i + 1) % every == 0:
            now += 60.0
            engine.judge(name, view, now=now)
    return now


def test_failure_pattern_live_is_at_most_two_messages_then_a_finished_notice(tmp_path):
    sink = RecordingSink()
    state = StateStore(str(tmp_path / "s.json"), "/runs")
    engine = AlertEngine(sinks=[sink], state=state, dispatch=FAST)
    now = live_run(engine, "seed1", list(failure_pattern(200)))
    engine.lifecycle("seed1", FINISHED, "its writer closed the event files", now=now + 1)
    assert engine.close(5.0)
    kinds = [(a.kind, a.status.name) for a in sink.received]
    assert kinds[-1] == (FINISHED, "CRITICAL")
    assert 2 <= len(kinds) <= 3, kinds
    assert any(s == "CRITICAL" for _, s in kinds[:-1])
    first = sink.received[0]
    assert first.step is not None and first.step >= 25 * 500_000  # not before grace
    # a restart on the same state file sends nothing new
    again = RecordingSink()
    engine = AlertEngine(sinks=[again], state=StateStore(state.path, "/runs"), dispatch=FAST)
    view: Dict[str, MetricStats] = {}
    feed(view, failure_pattern(200))
    engine.judge("seed1", view, now=now + 120)
    engine.lifecycle("seed1", FINISHED, "", now=now + 121)
    assert engine.close(5.0)
    assert again.received == []


def test_a_healthy_run_is_never_critical_and_says_little():
    sink = RecordingSink()
    engine = AlertEngine(sinks=[sink], dispatch=FAST)
    live_run(engine, "good", list(healthy_pattern(200)))
    assert engine.close(5.0)
    assert [a for a in sink.received if a.status >= Status.CRITICAL] == []
    assert len(sink.received) <= 3


def test_thirty_failed_runs_at_start_make_one_startup_digest(tmp_path):
    sink = RecordingSink()
    path = str(tmp_path / "s.json")
    engine = AlertEngine(sinks=[sink], state=StateStore(path, "/runs"), dispatch=FAST)
    rows = list(failure_pattern(120))
    view: Dict[str, MetricStats] = {}
    feed(view, rows)
    engine.begin_startup()
    for i in range(30):
        engine.judge("seed%02d" % i, view, now=100.0)
    digest = engine.end_startup("/runs")
    assert engine.close(5.0)
    assert [a.kind for a in sink.received] == [STARTUP]
    assert digest is not None and len(digest.runs) == 30
    assert "30 runs to report (30 CRITICAL)" in digest.title
    again = RecordingSink()
    engine = AlertEngine(sinks=[again], state=StateStore(path, "/runs"), dispatch=FAST)
    engine.begin_startup()
    for i in range(30):
        engine.judge("seed%02d" % i, view, now=200.0)
    assert engine.end_startup("/runs") is None
    assert engine.close(5.0) and again.received == []


def test_engine_test_alert_reaches_every_sink_but_the_command(tmp_path):
    good, bad = RecordingSink("good"), RecordingSink("bad")
    bad.broken = True
    engine = AlertEngine(
        sinks=[good, bad], settings=AlertSettings(events_log="x.jsonl"), dispatch=FAST
    )
    results = engine.test_alert()
    assert results["good"] is None and "invalid_auth" in (results["bad"] or "")
    assert [a.kind for a in good.received] == [TEST]
    assert engine.close(1.0)


def test_engine_state_dict_for_checkpoints():
    sink = RecordingSink()
    engine = AlertEngine(sinks=[sink], dispatch=FAST)
    view: Dict[str, MetricStats] = {}
    feed(view, failure_pattern(150))
    engine.judge("r", view, now=10.0)
    saved = json.loads(json.dumps(engine.state_dict()))
    engine.close(5.0)
    resumed = RecordingSink()
    engine = AlertEngine(sinks=[resumed], dispatch=FAST)
    engine.load_state_dict(saved)
    engine.judge("r", view, now=20.0)
    assert engine.close(5.0) and resumed.received == [] and len(sink.received) == 1


def test_picture_goes_with_critical_problems_only_for_sinks_that_want_it(slack_server):
    pictures: List[str] = []

    def picture(view, finding, run):
        pictures.append(finding.check)
        return b"\x89PNG fake"

    bot = SlackSink(token="xoxb-1-2-x", channel="#c", base_url=slack_server.api_base_url)
    engine = AlertEngine(sinks=[bot], picture=picture, dispatch=FAST)
    view: Dict[str, MetricStats] = {}
    feed(view, failure_pattern(150))
    engine.judge("r", view, now=10.0)
    assert engine.close(5.0)
    assert pictures and bot.pictures_posted == 1
    assert any(
        r.path.startswith("/upload/") and r.raw == b"\x89PNG fake" for r in slack_server.requests
    )
    webhook = SlackSink(webhook_url=slack_server.webhook_url())
    engine = AlertEngine(sinks=[webhook], picture=picture, dispatch=FAST)
    before = len(pictures)
    engine.judge("r2", view, now=10.0)
    assert engine.close(5.0) and len(pictures) == before  # no picture drawn for a webhook


# -- Slack faults ---------------------------------------------------------------------------------


def texts_of(server: RecordingSlackServer) -> List[str]:
    return [t.split("\n", 1)[0] for t in server.message_texts()]


def test_slack_500s_hang_and_429_then_healthy_every_alert_once_in_order(slack_server, caplog):
    slack_server.answer(
        Reply(500),
        Reply(503),
        Reply(503, delay=1.5),  # hangs past the client's 0.5 s timeout
        Reply(429, {"Retry-After": "0.2"}),
        Reply(500),
        default=Reply(200),
    )
    sink = SlackSink(webhook_url=slack_server.webhook_url(), timeout=0.5)
    dispatcher = AlertDispatcher([sink], **FAST)
    for i in range(6):
        dispatcher.submit(alert("seed1", Status.CRITICAL, i))
    assert dispatcher.close(15.0)
    ok = [r for r in slack_server.messages][5:]  # the five failed answers came first
    assert [json.loads(r.raw)["text"].count("(%d)" % i) for i, r in enumerate(ok)] == [1] * 6
    assert dispatcher.delivered == 6 and dispatcher.failures == 5
    failing = [r for r in caplog.records if "is failing" in r.getMessage()]
    assert len(failing) == 1 and "XXXXSECRETXXXX" not in caplog.text


def test_refused_connections_then_slack_comes_up_every_alert_once_in_order(caplog):
    port = closed_port()
    url = "http://127.0.0.1:%d/services/T1/B1/REFUSEDSECRET" % port
    sink = SlackSink(webhook_url=url, timeout=1.0)
    dispatcher = AlertDispatcher([sink], **FAST)
    for i in range(5):
        dispatcher.submit(alert("seed2", Status.CRITICAL, i))
    wait_until(lambda: dispatcher.failures >= 3, what="refused attempts")
    with RecordingSlackServer(port) as server:
        assert dispatcher.close(10.0)
        steps = [int(t.rsplit("(", 1)[1].split(")")[0]) for t in server.message_texts()]
    assert steps == [0, 1, 2, 3, 4]
    assert "REFUSEDSECRET" not in caplog.text


def test_sigterm_like_stop_during_an_outage_then_restart_delivers_once(tmp_path):
    """Stop while Slack is down (what SIGTERM does: close with a deadline), restart when it is
    up again: the pending alerts arrive once, in order; nothing already delivered repeats."""
    port = closed_port()
    url = "http://127.0.0.1:%d/services/T1/B1/X" % port
    path = str(tmp_path / "state.json")
    engine = AlertEngine(
        sinks=[SlackSink(webhook_url=url, timeout=0.5)],
        state=StateStore(path, "/runs"),
        dispatch=FAST,
    )
    engine.dispatcher.submit_all([alert("a", n=1), alert("b", n=2), alert("c", n=3)])
    wait_until(lambda: engine.dispatcher.failures >= 2, what="failures")
    assert engine.close(0.3) is False
    with RecordingSlackServer(port) as server:
        engine = AlertEngine(
            sinks=[SlackSink(webhook_url=url, timeout=0.5)],
            state=StateStore(path, "/runs"),
            dispatch=FAST,
        )
        assert engine.close(10.0)
        first = server.message_texts()
        engine = AlertEngine(
            sinks=[SlackSink(webhook_url=url, timeout=0.5)],
            state=StateStore(path, "/runs"),
            dispatch=FAST,
        )
        assert engine.close(5.0)
        assert server.message_texts() == first
    assert [t.rsplit("(", 1)[1][0] for t in first] == ["1", "2", "3"]


def test_a_big_backlog_costs_few_state_file_writes(tmp_path):
    """New alerts are saved at once; deliveries are coalesced (at most ~1 save a second)."""
    sink = RecordingSink()
    store = StateStore(str(tmp_path / "s.json"), "/runs", coalesce=0.2)
    engine = AlertEngine(sinks=[sink], state=store, dispatch=FAST)
    sink.down = True
    for i in range(200):
        engine.dispatcher.submit(alert("r%03d" % i, Status.WARNING, i))
    submitted_saves = store.saves
    assert submitted_saves >= 200  # each new alert is on disk before it is sent
    sink.down = False
    assert engine.dispatcher.flush(10.0)
    assert store.saves - submitted_saves <= 60  # not one per delivery
    assert engine.close(2.0)
    assert json.loads(Path(store.path).read_text())["outbox"] == []
    assert len(sink.received) == 200


def test_monitor_takes_the_same_settings_type(tmp_path):
    from tblive.doors.monitor import Monitor

    events = tmp_path / "events.jsonl"
    monitor = Monitor(
        "r", alerts=AlertSettings(events_log=str(events)), start=False, report_path=None
    )
    try:
        assert list(monitor.engine.dispatcher.sinks) == ["console", "jsonl"]
        assert monitor.engine.settings.events_log == str(events)
    finally:
        monitor.close()
    with pytest.raises(ValueError, match="events-log .* is a directory"):
        Monitor("r", alerts=AlertSettings(events_log=str(tmp_path)), start=False)


def test_the_default_picture_is_a_real_png_of_the_finding(slack_server):
    pytest.importorskip("matplotlib")
    bot = SlackSink(token="xoxb-1-2-x", channel="#c", base_url=slack_server.api_base_url)
    engine = AlertEngine(sinks=[bot], dispatch=FAST)
    view: Dict[str, MetricStats] = {}
    feed(view, failure_pattern(150))
    engine.judge("r", view, now=10.0)
    assert engine.close(10.0)
    uploads = [r for r in slack_server.requests if r.path.startswith("/upload/")]
    assert len(uploads) == 1 and uploads[0].raw.startswith(b"\x89PNG")
