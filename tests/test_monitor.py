"""The in-process Monitor: a simulated HARL/MAPush trainer through a real tensorboardX writer,
the local recording Slack server, and the reader as the reference for names and statistics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Dict, List, Optional
from unittest import mock

import numpy as np
import pytest
import tensorboardX
import tensorboardX.event_file_writer
from slack_server import slack_server_fixture  # noqa: F401 (registers the fixture)
from tensorboardX import SummaryWriter

import tblive
from tblive.doors.intake import to_float
from tblive.doors.monitor import Monitor
from tblive.doors.posthoc import analyze
from tblive.judge.findings import Status
from tblive.read.runs import load_points

REPO = Path(__file__).resolve().parents[1]

FROZEN_TIME = types.SimpleNamespace(time=lambda: 1700000000.0)


class RecordingSink:
    name = "recording"

    def __init__(self) -> None:
        self.alerts: List[Any] = []

    def send(self, alert: Any) -> None:
        self.alerts.append(alert)


class ExplodingSink:
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, alert: Any) -> None:
        self.calls += 1
        raise RuntimeError("sink is down")


def harl_mapush_iteration(
    writer: Any, i: int, total: int, rng: np.random.Generator, agents: int = 2
) -> None:
    """One logging round of the original failure, laid out as HARL + MAPush log it.

    HARL: ``add_scalars(k, {k: v})`` for ``agentN/<key>`` and ``critic/<key>``; MAPush:
    ``add_scalar`` for ``average_step_reward``, ``rewards/<component>``, ``mapush/success_rate``.
    Fixed ``walltime=`` so two writers produce the same bytes.
    """
    step = (i + 1) * 50_000
    wall = 1_700_000_000.0 + 120.0 * i
    entropy = 1.31 + (2.17 - 1.31) * i / (total - 1)
    for agent in range(agents):
        infos = {
            "dist_entropy": entropy + rng.normal(0, 0.02),
            "policy_loss": rng.normal(0, 0.01),
            "actor_grad_norm": 0.5 + rng.normal(0, 0.05),
            "ratio": 1.0 + rng.normal(0, 0.01),
        }
        for key, value in infos.items():
            tag = "agent%d/%s" % (agent, key)
            writer.add_scalars(tag, {tag: value}, step, walltime=wall)
    for key, value in {
        "value_loss": 0.1 + rng.normal(0, 0.01),
        "critic_grad_norm": 1.0 + rng.normal(0, 0.1),
    }.items():
        tag = "critic/" + key
        writer.add_scalars(tag, {tag: value}, step, walltime=wall)
    writer.add_scalar("average_step_reward", -0.5 + rng.normal(0, 0.01), step, walltime=wall)
    writer.add_scalar("rewards/push_reward", 1e-5 * (1 + rng.normal(0, 0.1)), step, walltime=wall)
    writer.add_scalar("rewards/distance_reward", -0.3 + rng.normal(0, 0.01), step, walltime=wall)
    writer.add_scalar("mapush/success_rate", 0.0, step, walltime=wall)


def write_failing_run(
    logdir: Path,
    monitor: Optional[Monitor] = None,
    total: int = 200,
    judge_from: int = 60,
    judge_every: int = 10,
) -> None:
    """The whole run through one tensorboardX writer (file names/headers with a frozen clock)."""
    rng = np.random.default_rng(7)
    with mock.patch.object(tensorboardX.event_file_writer, "time", FROZEN_TIME):
        writer = SummaryWriter(str(logdir), filename_suffix=".mapush")
        if monitor is not None:
            assert monitor.attach(writer) is writer
        for i in range(total):
            harl_mapush_iteration(writer, i, total, rng)
            if monitor is not None and i >= judge_from and (i - judge_from) % judge_every == 0:
                monitor.check_now()  # what the monitor thread does every `interval` seconds
        writer.close()


def event_files(root: Path) -> Dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "tfevents" in path.name
    }


def slack_alerts(server: Any) -> List[Dict[str, str]]:
    """(check, status, title) of every message the Slack server got, from Block Kit fields."""
    found = []
    for request in server.requests:
        body = request.body or {}
        fields = {}
        for block in body.get("blocks", []):
            for item in block.get("fields", []) or []:
                label, _, value = item["text"].partition("\n")
                fields[label.strip("*")] = value
        found.append(
            {
                "check": fields.get("Check", ""),
                "status": fields.get("Status", "").split()[-1],
                "title": body.get("text", ""),
            }
        )
    return found


# -- the original failure, end to end --------------------------------------------------------


def test_failing_harl_mapush_run_is_critical_alerts_once_per_check_and_files_are_unchanged(
    tmp_path, slack_server
):
    plain = tmp_path / "plain" / "logs"
    watched = tmp_path / "watched" / "logs"
    write_failing_run(plain)
    monitor = Monitor(
        "mapush_seed1",
        slack_webhook=slack_server.webhook_url(),
        use_env=False,
        start=False,
        report_path=str(tmp_path / "report.json"),
    )
    write_failing_run(watched, monitor)

    # the writer wrote exactly what it writes without tblive
    assert event_files(watched) == event_files(plain)
    assert len(event_files(plain)) == 1 + 2 * 4 + 2  # root writer + one per add_scalars series

    assert monitor.status == Status.CRITICAL
    critical = {f.check for f in monitor.problems if f.status == Status.CRITICAL}
    assert {"Entropy", "Success Rate"} <= critical
    judgements = monitor.counters["judgements"]
    assert judgements >= 14

    report = monitor.close()
    assert slack_server.wait_for(2, timeout=30.0)
    time.sleep(0.2)  # nothing else may arrive
    alerts = slack_alerts(slack_server)
    # one digest per change of the verdict, not one message per check or per point: the
    # CRITICAL digest, the finished notice and at most one more
    assert len(alerts) <= 3, [a["title"] for a in alerts]
    digests = [a for a in alerts if "finished" not in a["title"]]
    assert digests and "CRITICAL" in digests[0]["title"]
    for check in {f.check for f in monitor.problems}:  # every failing check was said
        assert any(check in a["title"] for a in digests), (check, digests)
    finished = [a for a in alerts if "finished" in a["title"]]
    assert len(finished) == 1 and "CRITICAL" in finished[0]["title"]

    # the report: the shape of `tblive report --json`, written at close
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["status"] == report["status"] == "CRITICAL"
    assert on_disk["run"] == "mapush_seed1"
    assert on_disk["monitor"]["points"] == 200 * (2 * 4 + 2 + 4)
    # the file is written before the last deliveries are flushed; the returned report after
    assert report["monitor"]["alerts_delivered"] == len(alerts) * 2  # console + Slack
    assert on_disk["monitor"]["alerts_delivered"] <= len(alerts) * 2


def test_monitor_sees_the_series_and_verdict_the_reader_gets_from_the_files(tmp_path):
    logdir = tmp_path / "logs"
    monitor = Monitor(sinks=[], start=False, report_path=None)
    write_failing_run(logdir, monitor, judge_from=10**9)
    verdict = monitor.check_now()
    (from_files,) = analyze(str(logdir))
    stats = monitor.stats()
    assert sorted(stats) == sorted(from_files.stats)
    for tag, series in stats.items():
        reference = from_files.stats[tag]
        assert series.count == reference.count, tag
        assert series.last_step == reference.last_step, tag
        assert series.mean == pytest.approx(reference.mean, rel=1e-5, abs=1e-9), tag
    assert [(f.check, f.metric, f.status) for f in verdict.findings] == [
        (f.check, f.metric, f.status) for f in from_files.verdict.findings
    ]
    assert monitor.run_name == "logs" or monitor.run_name.endswith("/logs")
    monitor.close()
    assert (logdir / "tblive_report.json").exists() is False  # report_path=None


def test_judging_throughout_the_run_never_repeats_an_alert(tmp_path):
    sink = RecordingSink()
    monitor = Monitor("r", sinks=[sink], start=False, report_path=None)
    write_failing_run(tmp_path / "logs", monitor, judge_from=0, judge_every=1)
    monitor.close()
    check_alerts = [(a.check, a.kind) for a in sink.alerts if a.check != "Run"]
    assert len(check_alerts) == len(set(check_alerts))
    for check in {c for c, _ in check_alerts}:
        statuses = [a.status for a in sink.alerts if a.check == check]
        assert statuses == sorted(statuses), (check, statuses)  # only escalations
    assert monitor.counters["judgements"] == 201


def test_background_thread_judges_on_its_own_and_should_stop_flips(tmp_path):
    calls: List[Any] = []
    monitor = Monitor(
        "bg",
        sinks=[],
        interval=0.05,
        tick=0.02,
        stop_on="critical",
        on_critical=calls.append,
        report_path=None,
    )
    try:
        assert monitor.should_stop is False
        assert any(t.name == "tblive-monitor" and t.daemon for t in threading.enumerate())
        write_failing_run(tmp_path / "logs", monitor, judge_from=10**9)
        deadline = time.monotonic() + 20
        while not monitor.should_stop and time.monotonic() < deadline:
            time.sleep(0.02)
        assert monitor.should_stop
        assert monitor.status == Status.CRITICAL
        assert len(calls) == 1 and calls[0].status == Status.CRITICAL
    finally:
        monitor.close()
    assert not any(t.name == "tblive-monitor" for t in threading.enumerate() if t.is_alive())


def test_should_stop_stays_false_without_stop_on_and_a_raising_hook_is_contained(tmp_path):
    def hook(verdict: Any) -> None:
        raise RuntimeError("checkpoint failed")

    monitor = Monitor("h", sinks=[], start=False, on_critical=hook, report_path=None)
    write_failing_run(tmp_path / "logs", monitor)
    assert monitor.status == Status.CRITICAL
    assert monitor.should_stop is False
    assert monitor.counters["hook_errors"] == 1  # called once, on entering CRITICAL
    monitor.close()


# -- values ----------------------------------------------------------------------------------


def test_numpy_scalars_and_python_numbers_convert():
    monitor = Monitor("v", sinks=[], start=False, report_path=None)
    monitor.log(
        3,
        {
            "f": 1.5,
            "i": 2,
            "b": True,
            "np32": np.float32(0.25),
            "np64": np.float64(-4.0),
            "npint": np.int64(7),
            "zero_d": np.array(3.5),
            "nan": float("nan"),
        },
    )
    monitor.log(np.int64(4), {"f": np.float16(2.0)})
    monitor.check_now()
    stats = monitor.stats()
    assert stats["f"].last_value == 2.0 and stats["f"].last_step == 4
    assert stats["i"].last_value == 2.0
    assert stats["b"].last_value == 1.0
    assert stats["np32"].last_value == 0.25
    assert stats["np64"].last_value == -4.0
    assert stats["npint"].last_value == 7.0
    assert stats["zero_d"].last_value == 3.5
    assert stats["nan"].nan_count == 1
    assert monitor.counters["bad_values"] == 0
    monitor.close()


def test_bad_values_and_bad_calls_are_counted_never_raised(caplog):
    monitor = Monitor("bad", sinks=[], start=False, report_path=None)
    monitor.log(1, {"s": "abc", "l": [1, 2], "n": None, "ok": 1.0})
    monitor.log(2, {"s": "still bad", "ok": 2.0})
    monitor.log("not a step", {"ok": 3.0})
    monitor.log(3, None)  # type: ignore[arg-type]
    monitor.log_scalar("ok", object(), 4)
    monitor.check_now()
    counters = monitor.counters
    assert counters["bad_values"] == 5
    assert counters["errors"] == 2
    assert monitor.stats()["ok"].count == 2
    assert "s: cannot use a value of type str" in caplog.text
    assert caplog.text.count("s: cannot use") == 1  # once per series
    monitor.close()


def test_torch_tensors_convert_without_tblive_importing_torch():
    torch = pytest.importorskip("torch")
    assert to_float(torch.tensor(1.25)) == 1.25
    assert to_float(torch.tensor(3, dtype=torch.int64)) == 3.0
    weight = torch.tensor(2.0, requires_grad=True)
    assert to_float(weight * 3) == 6.0
    monitor = Monitor("t", sinks=[], start=False, report_path=None)
    monitor.log(torch.tensor(5), {"loss": torch.tensor(0.5), "vec": torch.ones(3)})
    monitor.check_now()
    assert monitor.stats()["loss"].last_value == 0.5
    assert monitor.stats()["loss"].last_step == 5
    assert monitor.counters["bad_values"] == 1  # a 3-element tensor is not a scalar
    monitor.close()


def test_torch_tensors_through_an_attached_tensorboardx_writer(tmp_path):
    torch = pytest.importorskip("torch")
    writer = SummaryWriter(str(tmp_path / "logs"))
    monitor = tblive.attach(writer, sinks=[], start=False, report_path=None)
    for step in range(5):
        writer.add_scalar("loss", torch.tensor(1.0 / (step + 1)), step)
        writer.add_scalars("agent0/dist_entropy", {"agent0/dist_entropy": np.float32(1.0)}, step)
    writer.close()
    monitor.check_now()
    stats = monitor.stats()
    assert stats["loss"].count == 5 and stats["loss"].last_value == pytest.approx(0.2)
    assert stats["agent0/dist_entropy"].count == 5
    monitor.close()


# -- steps and names -------------------------------------------------------------------------


def test_a_step_going_back_discards_later_points_like_the_reader(tmp_path):
    """The restart rule of :class:`tblive.series.feed.SeriesFeed`, shared with the reader."""
    steps = [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 6]
    writer = SummaryWriter(str(tmp_path / "logs"))
    monitor = tblive.attach(writer, sinks=[], start=False, report_path=None)
    for n, step in enumerate(steps):
        writer.add_scalar("x", float(n), step)
    writer.close()
    monitor.check_now()
    series = monitor.stats()["x"]
    reference = load_points(str(tmp_path / "logs"))
    (run,) = reference.values()
    ref_steps, ref_values, _ = run["x"].arrays()
    # the step going back to 3 discards 3, 4, 5; a repeated step (6, 6) is one more
    # measurement and is kept, as the reader keeps it
    assert series.count == len(ref_steps) == 8
    assert series.recent_values().tolist() == ref_values.tolist() == [0, 1, 2, 6, 7, 8, 9, 10]
    assert monitor.counters["rewinds"] == 1
    monitor.close()


def test_global_step_none_counts_per_series(tmp_path):
    writer = SummaryWriter(str(tmp_path / "logs"))
    monitor = tblive.attach(writer, sinks=[], start=False, report_path=None)
    for value in (1.0, 2.0, 3.0):
        writer.add_scalar("a", value)
    writer.add_scalar("b", 9.0)
    writer.close()
    monitor.check_now()
    stats = monitor.stats()
    assert (stats["a"].first_step, stats["a"].last_step, stats["a"].count) == (0, 2, 3)
    assert (stats["b"].first_step, stats["b"].count) == (0, 1)
    monitor.close()


def test_torch_writer_add_scalars_names_match_the_reader(tmp_path):
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    logdir = tmp_path / "torch_run"
    writer = TorchWriter(str(logdir))
    monitor = Monitor(sinks=[], start=False, report_path=None)
    monitor.attach(writer)
    for step in range(4):
        writer.add_scalars("loss", {"train": 1.0 / (step + 1), "val": 2.0}, step)
        writer.add_scalars("agent0/ratio", {"agent0/ratio": 1.0}, step)
        writer.add_scalar("charts/episodic_return", float(step), step, new_style=True)
    writer.close()
    monitor.check_now()
    (run,) = load_points(str(logdir)).values()
    # same names as the reader, whatever they are (torch nests a key containing "/" one
    # folder deeper: agent0_ratio_agent0/ratio -- the reader's rule, not re-implemented here)
    assert sorted(monitor.stats()) == sorted(run)
    assert {"loss/train", "loss/val", "charts/episodic_return"} <= set(run)
    assert monitor.run_name == "torch_run"
    monitor.close()


# -- sinks, lifecycle ------------------------------------------------------------------------


def test_a_failing_sink_never_reaches_the_training_loop(tmp_path):
    exploding = ExplodingSink()
    recording = RecordingSink()
    monitor = Monitor("s", sinks=[exploding, recording], start=False, report_path=None)
    write_failing_run(tmp_path / "logs", monitor)  # would raise here if a sink error leaked
    assert monitor.status == Status.CRITICAL
    monitor.close(timeout=0.5)
    assert exploding.calls >= 1
    counters = monitor.counters
    assert counters["alert_failures"] >= 1
    assert recording.alerts  # the other sink still got everything
    assert counters["errors"] == 0


def test_context_manager_reports_a_crash_and_closes_once(tmp_path):
    sink = RecordingSink()
    with pytest.raises(ZeroDivisionError):
        with Monitor("crash", sinks=[sink], report_path=str(tmp_path / "r.json")) as monitor:
            monitor.log(1, {"mapush/success_rate": 0.0})
            1 / 0  # noqa: B018
    assert monitor.closed
    (finished,) = [a for a in sink.alerts if a.kind == "finished"]
    assert "ZeroDivisionError" in finished.message
    assert json.loads((tmp_path / "r.json").read_text())["points"] == 1
    assert monitor.close() == monitor.close()  # idempotent
    monitor.log(2, {"x": 1.0})  # after close: ignored, no error
    assert monitor.counters["points"] == 1


def test_detach_restores_the_writer_and_double_attach_is_refused(tmp_path):
    writer = SummaryWriter(str(tmp_path / "logs"))
    first = Monitor("a", sinks=[], start=False, report_path=None)
    first.attach(writer)
    first.attach(writer)  # no-op
    assert "add_scalar" in vars(writer)
    with pytest.raises(ValueError):
        Monitor("b", sinks=[], start=False, report_path=None).attach(writer)
    first.detach(writer)
    assert "add_scalar" not in vars(writer) and "add_scalars" not in vars(writer)
    assert not hasattr(writer, "_tblive_monitor")
    writer.add_scalar("after", 1.0, 0)
    first.check_now()
    assert "after" not in first.stats()
    writer.close()
    first.close()


def test_writer_errors_still_reach_the_caller_unchanged(tmp_path):
    writer = SummaryWriter(str(tmp_path / "logs"))
    monitor = tblive.attach(writer, sinks=[], start=False, report_path=None)
    with pytest.raises(Exception) as plain_error:
        SummaryWriter(str(tmp_path / "plain")).add_scalar("x", "not a number", 0)
    with pytest.raises(type(plain_error.value)):
        writer.add_scalar("x", "not a number", 0)
    assert monitor.counters["bad_values"] == 0  # the monitor never saw it
    writer.close()
    monitor.close()


def test_report_matches_tblive_report_json_shape(tmp_path):
    from tblive.render.report import render_json

    logdir = tmp_path / "logs"
    monitor = Monitor(sinks=[], start=False)
    write_failing_run(logdir, monitor, judge_from=10**9)
    report = monitor.close()
    reference = render_json(str(logdir), analyze(str(logdir)))
    assert set(report) - set(reference) == {"monitor"}
    assert report["status"] == reference["status"]
    assert report["metric_stats"].keys() == reference["metric_stats"].keys()
    assert [d["name"] for d in report["diagnostics"]] == [
        d["name"] for d in reference["diagnostics"]
    ]
    written = json.loads((logdir / "tblive_report.json").read_text())  # AUTO: next to the events
    assert written["status"] == "CRITICAL"
    assert all(
        not math.isnan(v)
        for s in written["metric_stats"].values()
        for v in s.values()
        if isinstance(v, float)
    )


# -- framework callbacks (skipped without the framework) -------------------------------------


def test_sb3_callback_feeds_sb3_tags_and_stops_training(tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from tblive.doors.integrations import SB3Callback

    model = PPO(
        "MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1,
        tensorboard_log=str(tmp_path / "tb"), seed=0, device="cpu",
    )  # fmt: skip
    callback = SB3Callback(sinks=[], start=False, report_path=None)
    model.learn(256, callback=callback)
    monitor = callback.monitor
    assert monitor.closed
    tags = set(monitor.stats())
    (run,) = load_points(str(tmp_path / "tb")).values()
    assert {"train/value_loss", "train/entropy_loss", "time/fps"} <= tags
    assert tags == set(run)

    stopper = SB3Callback(sinks=[], interval=0.0, tick=0.01, stop_on="ok", report_path=None)
    model.learn(10_000, callback=stopper, reset_num_timesteps=True)
    assert stopper.monitor.should_stop
    assert model.num_timesteps < 10_000


def test_lightning_callback_attaches_to_the_tensorboard_logger(tmp_path):
    pytest.importorskip("torch")
    pl = pytest.importorskip("lightning.pytorch")
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    from tblive.doors.integrations import LightningCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(64, 2), torch.randn(64, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    callback = LightningCallback(sinks=[], start=False, report_path=None)
    logger = TensorBoardLogger(str(tmp_path), name="tiny")
    trainer = pl.Trainer(
        max_epochs=2, logger=logger, callbacks=[callback], log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(Tiny(), loader)
    monitor = callback.monitor
    assert monitor.closed
    assert monitor.stats()["train/loss"].count == 16
    (run,) = load_points(logger.log_dir).values()
    assert set(monitor.stats()) == set(run)


# -- distributed training and checkpoints (framework callbacks) ---------------------------------


def test_global_rank_from_the_launchers_environment():
    from tblive.doors.integrations import global_rank

    assert global_rank({}) == 0
    assert global_rank({"RANK": "3"}) == 3
    assert global_rank({"OMPI_COMM_WORLD_RANK": "1", "SLURM_PROCID": "0"}) == 1
    assert global_rank({"RANK": "x", "SLURM_PROCID": "2"}) == 2


def test_sb3_callback_on_a_non_zero_rank_monitors_nothing(tmp_path, monkeypatch):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from tblive.doors.integrations import SB3Callback

    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process
    log = tmp_path / "alerts.jsonl"
    callback = SB3Callback(events_log=str(log), use_env=False, report_path=str(tmp_path / "r.json"))
    assert callback.monitor is None and callback.state_dict() == {}
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, device="cpu")
    model.learn(128, callback=callback)  # trains normally
    assert model.num_timesteps >= 128
    assert callback.monitor is None and not log.exists() and not (tmp_path / "r.json").exists()


def failing_module(pl: Any, torch: Any, steps: int) -> Any:
    """A LightningModule that logs a run that does not learn: return flat at 0, entropy rising."""

    class Failing(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            share = min(self.global_step / steps, 1.0)
            self.log("charts/episodic_return", 0.0 * share)
            self.log("mapush/success_rate", 0.0)
            self.log("losses/entropy", 1.3 + 0.9 * share)
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Failing()


def test_lightning_callback_keeps_the_alert_state_in_the_checkpoint(tmp_path):
    pytest.importorskip("torch")
    pl = pytest.importorskip("lightning.pytorch")
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    from tblive.doors.integrations import LightningCallback

    data = torch.utils.data.TensorDataset(torch.randn(480, 2), torch.randn(480, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)  # 60 steps an epoch
    log = tmp_path / "alerts.jsonl"

    def fit(max_epochs: int, ckpt: Any = None) -> Any:
        callback = LightningCallback(
            events_log=str(log), use_env=False, report_path=None, start=False, host="gpu1"
        )
        trainer = pl.Trainer(
            max_epochs=max_epochs, logger=TensorBoardLogger(str(tmp_path), name="tb"),
            callbacks=[callback], log_every_n_steps=1, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False,
        )  # fmt: skip
        trainer.fit(failing_module(pl, torch, 120), loader, ckpt_path=ckpt)
        return trainer, callback

    trainer, first = fit(1)
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert "problem" in kinds  # the failure was announced
    trainer.save_checkpoint(str(tmp_path / "last.ckpt"))
    saved = torch.load(str(tmp_path / "last.ckpt"), weights_only=False)["callbacks"]
    (state,) = [v for k, v in saved.items() if "LightningCallback" in k]
    assert state["alerts"]["runs"]  # what was alerted is in the checkpoint
    before = len(kinds)
    _, second = fit(2, str(tmp_path / "last.ckpt"))  # resume: same failure, one more epoch
    resumed = [json.loads(line) for line in log.read_text().splitlines()][before:]
    assert second.monitor.state_dict()["alerts"]["runs"]
    assert [e["kind"] for e in resumed if e["kind"] in ("problem", "worse")] == [], resumed


def test_sb3_callback_keeps_the_alert_state_in_a_state_file(tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from tblive.doors.integrations import SB3Callback

    state_file = tmp_path / "ckpt" / "tblive_alerts.json"
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, device="cpu")
    first = SB3Callback(run_name="ppo", sinks=[], report_path=None, state_file=str(state_file))
    model.learn(128, callback=first)
    saved = json.loads(state_file.read_text())
    assert saved == first.state_dict() and "ppo" in saved["alerts"]["runs"]
    second = SB3Callback(run_name="ppo", sinks=[], report_path=None, state_file=str(state_file))
    model.learn(64, callback=second, reset_num_timesteps=False)
    assert second.monitor.state_dict()["alerts"]["runs"]["ppo"] == saved["alerts"]["runs"]["ppo"]


DDP_SCRIPT = """\
import json, os, sys
import torch
import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from tblive.doors.integrations import LightningCallback

out = sys.argv[1]

class Failing(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        x, y = batch
        share = min(self.global_step / 40, 1.0)
        self.log("charts/episodic_return", 0.0)
        self.log("losses/entropy", 1.3 + 0.9 * share)
        return torch.nn.functional.mse_loss(self.layer(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

if __name__ == "__main__":
    data = torch.utils.data.TensorDataset(torch.randn(640, 2), torch.randn(640, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    callback = LightningCallback(events_log=os.path.join(out, "alerts.jsonl"), use_env=False,
                                 report_path=None, interval=0.0, tick=0.01, stop_on="critical", sync_every=5)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=5,
                         logger=TensorBoardLogger(out, name="tb", version=0), callbacks=[callback],
                         log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    trainer.fit(Failing(), loader)
    with open(os.path.join(out, "rank%d.json" % trainer.global_rank), "w") as handle:
        json.dump({"monitor": callback.monitor is not None, "step": trainer.global_step,
                   "should_stop": trainer.should_stop}, handle)
"""


def test_lightning_ddp_on_two_processes_monitors_on_rank_zero_and_stops_together(tmp_path):
    """A real 2-process DDP run (CPU, gloo): one monitor, one set of alerts, both ranks stop."""
    pytest.importorskip("lightning.pytorch")
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    script = tmp_path / "train.py"  # Lightning's ddp launcher re-runs this script per rank
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + sys.path))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, timeout=180
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    ranks = [json.loads((tmp_path / ("rank%d.json" % rank)).read_text()) for rank in (0, 1)]
    assert [r["monitor"] for r in ranks] == [True, False]
    assert ranks[0]["should_stop"] and ranks[1]["should_stop"]  # rank 0 decided, both stopped
    assert ranks[0]["step"] == ranks[1]["step"] < 5 * 40  # together, before the 5 epochs
    kinds = [
        json.loads(line)["kind"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()
    ]
    assert kinds.count("finished") == 1 and "problem" in kinds  # one monitor's alerts, not two
