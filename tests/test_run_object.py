"""One run object for every door (tblive.run.RunRecord) and one run-naming rule.

The report, the daemon's final report and the monitor's report are built from the same
:class:`RunRecord`; the live doors no longer import the post-hoc door; the reader and the
monitor name a ``seed-1/logs`` run the same way.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import List

from tensorboardX import SummaryWriter

import tblive
from tblive.doors.monitor import Monitor
from tblive.doors.posthoc import analyze
from tblive.doors.watch import Watcher, WatchOptions
from tblive.judge.findings import Status
from tblive.read.runs import discover_runs, run_name
from tblive.run import RunRecord

PACKAGE = Path(tblive.__file__).resolve().parent


def write_run(logdir: Path, points: int = 40, monitor: Monitor = None) -> None:
    writer = SummaryWriter(str(logdir))
    if monitor is not None:
        monitor.attach(writer)
    for index in range(1, points + 1):
        writer.add_scalar("rollout/ep_rew_mean", 10.0 + index, index * 100)
        writer.add_scalar("train/entropy_loss", -1.0 + 0.001 * index, index * 100)
    writer.close()


def imported_modules(path: Path) -> List[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def test_posthoc_records_carry_series_provenance_state_and_verdict(tmp_path: Path) -> None:
    write_run(tmp_path / "sweep" / "seed-1" / "logs")
    (record,) = analyze(str(tmp_path / "sweep"))
    assert isinstance(record, RunRecord)
    assert record.name == "seed-1/logs"
    assert record.path == str(tmp_path / "sweep" / "seed-1" / "logs")
    assert set(record.series) == {"rollout/ep_rew_mean", "train/entropy_loss"}
    assert record.series["rollout/ep_rew_mean"].count == 40
    assert dict(record.stats) == record.reader.sinks  # a live view of the reader's series
    assert record.run is record  # the renderers' result.run.path / .skipped / .issues
    assert record.issues == [] and not record.skipped and len(record.files) == 1
    assert record.state == "live" and record.planned_steps is None
    assert record.verdict is not None and record.roles is not None
    assert record.roles.main_reward[0].tag == "rollout/ep_rew_mean"
    context = record.context()
    assert (context.state, context.planned_steps, dict(context.siblings)) == ("live", None, {})


def test_monitor_judges_and_reports_through_the_record(tmp_path: Path) -> None:
    monitor = Monitor(
        expected_steps=8000,
        sinks=[],
        start=False,
        report_path=str(tmp_path / "report.json"),
    )
    write_run(tmp_path / "seed-3" / "logs", monitor=monitor)
    assert monitor.name == "seed-3/logs"  # the reader's rule (see the naming test)
    verdict = monitor.check_now()
    assert verdict is not None and verdict.status in (Status.OK, Status.WARNING)
    record = monitor.record
    assert record.series is monitor._stats and set(record.series) == set(monitor.stats())
    assert (record.planned_steps, record.planned_source) == (8000, "Monitor(expected_steps=)")
    live = monitor.report()
    assert live["run"] == "seed-3/logs" and live["state"] == "live"
    assert live["planned_steps"] == 8000 and live["planned_source"] == "Monitor(expected_steps=)"
    final = monitor.close()
    assert final["state"] == "finished"
    assert final["state_reason"] == "the monitor was closed at the end of training"
    assert json.loads((tmp_path / "report.json").read_text())["state"] == "finished"


def test_monitor_reads_the_planned_length_saved_next_to_the_writer(tmp_path: Path) -> None:
    seed = tmp_path / "seed-00001"
    seed.mkdir()
    (seed / "config.json").write_text(json.dumps({"algo_args": {"train": {"num_env_steps": 4000}}}))
    monitor = Monitor(sinks=[], start=False, report_path=None)
    write_run(seed / "logs", points=5, monitor=monitor)
    assert monitor.record.planned_steps == 4000
    assert monitor.record.planned_source == "num_env_steps in ../config.json"
    assert monitor.record.context().planned_steps == 4000
    monitor.close()
    explicit = Monitor(expected_steps=9000, sinks=[], start=False, report_path=None)
    write_run(tmp_path / "other" / "logs", points=2, monitor=explicit)
    assert explicit.record.planned_steps == 9000  # the argument wins
    explicit.close()


def test_daemon_final_report_is_built_from_records(tmp_path: Path) -> None:
    for seed in (1, 2):
        write_run(tmp_path / "sweep" / ("seed-%d" % seed) / "logs")
    target = tmp_path / "final.json"
    options = WatchOptions(
        logdir=str(tmp_path / "sweep"), final_report=str(target), poll_interval=0.2
    )
    watcher = Watcher(options, sinks=[]).start()
    assert watcher.stop(timeout=30)
    report = json.loads(target.read_text())
    runs = {run["name"]: run for run in report["runs"]}
    assert sorted(runs) == ["seed-1/logs", "seed-2/logs"]
    for run in runs.values():
        assert run["state"] in ("live", "stalled", "finished", "crashed")
        assert "planned_steps" in run and "planned_source" in run and "state_reason" in run
    assert runs["seed-1/logs"]["siblings"] == ["seed-2/logs"]  # (too few for the peer check)
    for state in watcher.states.values():
        assert isinstance(state.record, RunRecord) and state.record.reader is state.run


def test_live_doors_do_not_import_the_posthoc_door_and_the_run_module_stays_low() -> None:
    for door in ("monitor.py", "watch.py"):
        modules = imported_modules(PACKAGE / "doors" / door)
        assert "tblive.doors.posthoc" not in modules, door
        assert "tblive.run" in modules and "tblive.atomic" in modules, door
    for module in imported_modules(PACKAGE / "run.py"):
        assert not module.startswith(("tblive.doors", "tblive.render", "tblive.alert")), module
    for module in imported_modules(PACKAGE / "render" / "report.py"):
        assert not module.startswith("tblive.doors"), module


def test_one_naming_rule_for_reader_and_monitor(tmp_path: Path) -> None:
    logs = tmp_path / "sweep" / "seed-1" / "logs"
    write_run(logs, points=3)
    # the reader, pointed at the sweep, at the seed folder, or at the generic folder itself
    for top in (tmp_path / "sweep", tmp_path / "sweep" / "seed-1", logs):
        (layout,) = discover_runs(str(top))
        assert layout.name == "seed-1/logs", top
    assert run_name(str(logs)) == "seed-1/logs"
    assert run_name(str(tmp_path / "sweep" / "seed-1")) == "seed-1"
    assert run_name(str(logs / "PPO_1"), str(tmp_path / "sweep")) == "seed-1/logs/PPO_1"
    for generic in ("tb", "runs", "summaries", "tensorboard", "TensorBoard"):
        assert run_name(str(tmp_path / "exp" / generic)) == "exp/" + generic
    # the monitor names a writer's directory with the same function
    monitor = Monitor(sinks=[], start=False, report_path=None)
    writer = SummaryWriter(str(tmp_path / "seed-7" / "tb"))
    monitor.attach(writer)
    writer.close()
    assert monitor.name == "seed-7/tb" == run_name(str(tmp_path / "seed-7" / "tb"))
    monitor.close()
