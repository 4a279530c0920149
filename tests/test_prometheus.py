"""The Prometheus exporter: the text format (parsed by prometheus-client's own parser), the
daemon's and the monitor's /metrics, and the shipped example stack with the real Prometheus and
Alertmanager servers (Debian's ``prometheus`` and ``prometheus-alertmanager``; skipped when they
are not installed).

The integration test uses copies of ``examples/prometheus/*.yml`` with the ports filled in,
0.5 s scrape and evaluation intervals, ``for: 1m`` shortened to ``for: 1s`` and Alertmanager's
``group_wait`` to 0.5 s, and the Slack receiver pointed at a local Slack stand-in -- the only
changes; everything else (rules, routes) is what ships.  (Prometheus 2.42 hands its first
targets to the scraper about 5 s after it starts: most of the test's time.)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest
from patterns import failure_pattern, write_row
from slack_server import RecordingSlackServer

from tblive.doors.exporter import MetricsServer, RunSnapshot, parse_address, snapshot
from tblive.doors.watch import Watcher, WatchOptions
from tblive.judge.findings import Finding, Status, Verdict

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "prometheus"


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path, monkeypatch):
    """The daemon keeps its alert state under $XDG_STATE_HOME: one per test."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def scrape(url: str) -> Dict[str, List[Any]]:
    """Metric family name -> its samples, parsed by prometheus-client's parser."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: List[Any], **labels: str) -> Optional[float]:
    found = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, found
    return found[0] if found else None


def write_run(path: Path, rows) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(path))
    for row in rows:
        write_row(writer, row)
    writer.close()


def write_healthy(path: Path, points: int = 120, seed: int = 0) -> None:
    """A CleanRL-style PPO run that learns: return rises and saturates, entropy eases down."""
    from tensorboardX import SummaryWriter

    rng = np.random.default_rng(seed)
    writer = SummaryWriter(str(path))
    for i in range(points):
        share = i / (points - 1)
        values = {
            "charts/episodic_return": 20 + 380 * (1 - np.exp(-4 * share)) + rng.normal(0, 10),
            "losses/entropy": 0.69 - 0.15 * share + rng.normal(0, 0.005),
            "losses/value_loss": 50 * np.exp(-3 * share) + 5 + abs(rng.normal(0, 1)),
            "losses/policy_loss": -0.01 + rng.normal(0, 0.003),
            "losses/approx_kl": 0.01 + abs(rng.normal(0, 0.002)),
        }
        for tag, value in values.items():
            writer.add_scalar(tag, float(value), (i + 1) * 2048)
    writer.close()


# -- the exporter on its own ------------------------------------------------------------------


def test_address_parsing():
    assert parse_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_address(":9100") == ("0.0.0.0", 9100)
    assert parse_address("9100") == ("0.0.0.0", 9100)
    assert parse_address("[::1]:9100") == ("::1", 9100)
    for bad in ("localhost:http", "host:99999", ""):
        with pytest.raises(ValueError, match="--prometheus"):
            parse_address(bad)


def test_metrics_follow_the_current_state_without_stale_series():
    verdict = Verdict(
        run="ppo/seed1",
        findings=[
            Finding("Entropy", Status.CRITICAL, "rises"),
            Finding("Entropy", Status.WARNING, "agent1 rises"),
            Finding("Value Loss", Status.OK, "fine"),
        ],
    )
    runs = {
        "ppo/seed1": snapshot("ppo/seed1", verdict, last_step=12_000, last_data=time.time() - 30),
        "waiting": RunSnapshot("waiting"),
    }
    server = MetricsServer("127.0.0.1:0", lambda: runs.values()).start()
    try:
        metrics = scrape(server.url)
        assert value(metrics["tblive_run_status"], run="ppo/seed1") == 2
        assert value(metrics["tblive_run_status"], run="waiting") == -1
        checks = metrics["tblive_check_status"]
        assert value(checks, run="ppo/seed1", check="Entropy") == 2  # the worst finding
        assert value(checks, run="ppo/seed1", check="Value Loss") == 0
        assert value(metrics["tblive_run_last_step"], run="ppo/seed1") == 12_000
        assert 29 <= value(metrics["tblive_run_seconds_since_data"], run="ppo/seed1") < 60
        assert value(metrics["tblive_run_finished"], run="waiting") == 0
        del runs["ppo/seed1"]  # the run disappeared: its series disappear with it
        metrics = scrape(server.url)
        assert value(metrics["tblive_run_status"], run="ppo/seed1") is None
        assert value(metrics["tblive_check_status"], run="ppo/seed1", check="Entropy") is None
        with pytest.raises(Exception, match="404"):
            urllib.request.urlopen(server.url.replace("/metrics", "/nothing"), timeout=5)
    finally:
        assert server.stop()
    assert not any(t.name == "tblive-prometheus" for t in threading.enumerate())


def test_address_in_use_is_one_clear_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(ValueError, match="cannot serve on it"):
            MetricsServer("127.0.0.1:%d" % port, lambda: []).start()
    finally:
        sock.close()


# -- the doors ----------------------------------------------------------------------------------


def test_daemon_serves_every_run_with_key_metrics_only(tmp_path):
    write_run(tmp_path / "logs" / "failing", failure_pattern(200))
    write_healthy(tmp_path / "logs" / "healthy")
    watcher = Watcher(
        WatchOptions(logdir=str(tmp_path / "logs"), prometheus="127.0.0.1:0", host="test")
    ).start()
    try:
        url = watcher.exporter.url
        wait_until(lambda: len(watcher.verdicts) == 2, 20, "two verdicts")
        metrics = scrape(url)
    finally:
        assert watcher.stop()
    assert value(metrics["tblive_run_status"], run="failing") == 2
    assert value(metrics["tblive_run_status"], run="healthy") == 0
    assert value(metrics["tblive_check_status"], run="failing", check="Success Rate") == 2
    assert value(metrics["tblive_run_last_step"], run="failing") == 200 * 500_000
    assert value(metrics["tblive_run_finished"], run="failing") == 0  # just written: not yet
    metric_last = metrics["tblive_metric_last"]
    roles = {(s.labels["run"], s.labels["role"], s.labels["tag"]) for s in metric_last}
    assert ("failing", "success", "mapush/success_rate") in roles
    assert ("healthy", "entropy", "losses/entropy") in roles
    assert ("failing", "entropy", "agent1/dist_entropy") in roles
    # bounded: key roles only -- grad norms, rewards' components... are not exported
    assert {role for _, role, _ in roles} <= {
        "reward",
        "success",
        "entropy",
        "value_loss",
        "policy_loss",
    }
    assert not any("grad_norm" in tag for _, _, tag in roles)
    (reward,) = [
        s for s in metric_last if s.labels["run"] == "healthy" and s.labels["role"] == "reward"
    ]
    assert reward.labels["tag"] == "charts/episodic_return" and 300 < reward.value < 450


def test_monitor_serves_the_same_from_inside_the_trainer():
    from tblive.doors.monitor import Monitor

    monitor = Monitor("ppo", prometheus="127.0.0.1:0", sinks=[], report_path=None, start=False)
    try:
        url = monitor.exporter.url
        assert value(scrape(url)["tblive_run_status"], run="ppo") == -1  # nothing logged yet
        for step, _, plain, grouped in failure_pattern(60):
            monitor.log(step, dict(plain, **grouped))
        monitor.check_now()
        metrics = scrape(url)
        assert value(metrics["tblive_run_status"], run="ppo") == 2
        assert value(metrics["tblive_run_last_step"], run="ppo") == 60 * 500_000
        assert value(metrics["tblive_run_finished"], run="ppo") == 0
    finally:
        monitor.close()
    assert monitor.exporter is None or not any(
        t.name == "tblive-prometheus" for t in threading.enumerate()
    )


# -- the example stack with the real servers ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode())


def up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("prometheus-alertmanager")),
    reason="the prometheus / prometheus-alertmanager servers are not installed (.ci/run installs them)",
)
def test_example_stack_fires_for_the_failing_run_only(tmp_path):
    started = time.monotonic()
    exporter_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    slack = RecordingSlackServer().start()
    # the shipped configs, with ports filled in and the timings shortened (module docstring)
    prometheus_yml = (EXAMPLES / "prometheus.yml").read_text()
    prometheus_yml = prometheus_yml.replace("127.0.0.1:9100", "127.0.0.1:%d" % exporter_port)
    prometheus_yml = prometheus_yml.replace("127.0.0.1:9093", "127.0.0.1:%d" % alertmanager_port)
    prometheus_yml = re.sub(
        r"(scrape|evaluation)_interval: \S+", r"\1_interval: 500ms", prometheus_yml
    )
    rules_yml = (EXAMPLES / "rules.yml").read_text().replace("for: 1m", "for: 1s")
    alertmanager_yml = (EXAMPLES / "alertmanager.yml").read_text()
    alertmanager_yml = re.sub(
        r'api_url: "[^"]+"', 'api_url: "%s"' % slack.webhook_url(), alertmanager_yml
    )
    alertmanager_yml = re.sub(r"group_wait: \S+", "group_wait: 500ms", alertmanager_yml)
    assert "for: 1s" in rules_yml and slack.webhook_url() in alertmanager_yml
    (tmp_path / "prometheus.yml").write_text(prometheus_yml)
    (tmp_path / "rules.yml").write_text(rules_yml)
    (tmp_path / "alertmanager.yml").write_text(alertmanager_yml)

    write_run(tmp_path / "logs" / "failing", failure_pattern(200))
    write_healthy(tmp_path / "logs" / "healthy")
    watcher = Watcher(
        WatchOptions(
            logdir=str(tmp_path / "logs"), prometheus="127.0.0.1:%d" % exporter_port, host="test"
        )
    ).start()
    servers: List[subprocess.Popen] = []
    log = open(tmp_path / "servers.log", "wb")
    try:
        servers.append(
            subprocess.Popen(
                [
                    "prometheus-alertmanager",
                    "--config.file=%s" % (tmp_path / "alertmanager.yml"),
                    "--storage.path=%s" % (tmp_path / "am-data"),
                    "--web.listen-address=127.0.0.1:%d" % alertmanager_port,
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=log,
            )
        )
        servers.append(
            subprocess.Popen(
                [
                    "prometheus",
                    "--config.file=%s" % (tmp_path / "prometheus.yml"),
                    "--storage.tsdb.path=%s" % (tmp_path / "prom-data"),
                    "--web.listen-address=127.0.0.1:%d" % prometheus_port,
                ],
                stdout=log,
                stderr=log,
            )
        )
        alerts_api = "http://127.0.0.1:%d/api/v2/alerts" % alertmanager_port

        def fired() -> List[Dict[str, Any]]:
            if not up("http://127.0.0.1:%d/-/ready" % alertmanager_port):
                return []
            return [
                a for a in get_json(alerts_api) if a["labels"]["alertname"] == "TrainingRunCritical"
            ]

        alerts = wait_until(fired, 50.0 - (time.monotonic() - started), "the alert in Alertmanager")
        # Prometheus has evaluated the healthy run too: it is OK there, and no alert names it
        query = "http://127.0.0.1:%d/api/v1/query?query=tblive_run_status" % prometheus_port
        result = get_json(query)["data"]["result"]
        statuses = {r["metric"]["run"]: float(r["value"][1]) for r in result}
        assert statuses == {"failing": 2.0, "healthy": 0.0}
        alerts = fired()
        # and Alertmanager's route delivered it to the (stand-in) Slack receiver
        posted = wait_until(lambda: slack.requests, 55.0 - (time.monotonic() - started), "Slack")
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()
        assert watcher.stop()
        slack.stop()
    assert [a["labels"]["run"] for a in alerts] == ["failing"], (
        tmp_path / "servers.log"
    ).read_text()[-3000:]
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["status"]["state"] == "active"
    body = json.dumps(posted[0].body)
    assert "CRITICAL: Run failing is CRITICAL" in body and "healthy" not in body
    assert time.monotonic() - started < 60.0
