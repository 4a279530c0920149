"""The report and compare commands end to end, through the installed console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from patterns import failure_pattern, healthy_pattern, write_row
from tensorboardX import SummaryWriter

from tblive.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "logs"


def write_run(path: Path, rows) -> Path:
    writer = SummaryWriter(str(path))
    for row in rows:
        write_row(writer, row)
    writer.close()
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    write_run(root / "seed1" / "logs", failure_pattern(120))
    write_run(root / "seed2" / "logs", healthy_pattern(120))
    return root


def run_cli(*args: str):
    return subprocess.run(
        [sys.executable, "-m", "tblive.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_report_on_the_shipped_example(tmp_path: Path) -> None:
    json_path, text_path = tmp_path / "r.json", tmp_path / "r.txt"
    result = run_cli(
        "report",
        str(EXAMPLES / "mapush_failed"),
        "--json",
        str(json_path),
        "--output",
        str(text_path),
        "--verbose",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in (
        "Log Directory:",
        "Total Steps: 100,000,000",
        "Metrics Found:",
        "SUMMARY",
        "DIAGNOSTICS",
        "METRICS",
    ):
        assert heading in out
    assert "critical issues found. Training likely failed." in out
    assert "🔴 [CRITICAL] Success Rate" in out and "🔴 [CRITICAL] Entropy" in out
    assert "\033[" not in out  # no colour when not on a terminal
    assert text_path.read_text(encoding="utf-8").strip() == out.strip()
    report = json.loads(json_path.read_text())
    assert report["schema_version"] == 1
    assert report["status"] == "CRITICAL"
    assert report["total_steps"] == 100_000_000
    assert report["summary"].startswith("CRITICAL")
    names = {d["name"] for d in report["diagnostics"] if d["status"] == "CRITICAL"}
    assert {"Success Rate", "Entropy"} <= names
    entropy = report["metric_stats"]["agent0/dist_entropy"]
    assert entropy["count"] == 200 and entropy["trend"] == "increasing"
    assert entropy["first_value"] == pytest.approx(1.31, abs=0.1)
    assert {"first_value", "last_value", "min", "max", "mean", "count", "trend"} <= set(entropy)
    assert "runs" not in report


def test_fail_on_sets_the_exit_status(sweep: Path) -> None:
    assert main(["report", str(EXAMPLES / "mapush_failed"), "--fail-on", "critical"]) == 1
    assert main(["report", str(EXAMPLES / "mapush_healthy"), "--fail-on", "critical"]) == 0
    assert main(["report", str(EXAMPLES / "mapush_healthy"), "--fail-on", "warning"]) == 0
    # seed2 learns while its entropy rises: WARNING, which --fail-on warning turns into exit 1
    assert main(["report", str(sweep / "seed2"), "--fail-on", "critical"]) == 0
    assert main(["report", str(sweep / "seed2"), "--fail-on", "warning"]) == 1
    planned = ["--expected-steps", "100000000"]
    assert main(["report", str(EXAMPLES / "mapush_failed"), "--fail-on", "critical", *planned]) == 1


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda p: p / "missing", "no such directory"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no TensorBoard event files"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, setup, expected: str) -> None:
    result = run_cli("report", str(setup(tmp_path)))
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "tblive.toml"
    config.write_text("[checks.entropy]\nraise = 0.2\n")
    result = run_cli("report", str(EXAMPLES), "--config", str(config))
    assert result.returncode == 2
    assert str(config) in result.stderr and "raise" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_changes_the_verdict(tmp_path: Path) -> None:
    default = json.loads(run_cli("report", str(EXAMPLES / "mapush_failed"), "--json", "-").stdout)
    critical = sorted({d["name"] for d in default["diagnostics"] if d["status"] == "CRITICAL"})
    assert {"Success Rate", "Entropy"} <= set(critical)
    config = tmp_path / "tblive.toml"
    config.write_text("disabled = %s\n" % json.dumps(critical))
    json_path = tmp_path / "r.json"
    assert (
        main(
            [
                "report",
                str(EXAMPLES / "mapush_failed"),
                "--config",
                str(config),
                "--json",
                str(json_path),
            ]
        )
        == 0
    )
    report = json.loads(json_path.read_text())
    assert {d["name"] for d in report["diagnostics"]}.isdisjoint(critical)
    assert report["status"] != "CRITICAL"


def test_results_tree_lists_runs_first_then_a_section_each(sweep: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "r.json"
    result = run_cli("report", str(sweep), "--json", str(json_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Runs Found: 2" in out
    report = json.loads(json_path.read_text())
    first, second = [r["name"] for r in report["runs"]]
    # named by the seed folder (with or without the generic event folder ``logs``)
    assert first.startswith("seed1") and second.startswith("seed2")
    runs_table = out.index("RUNS")
    assert runs_table < out.index("RUN: " + first) and runs_table < out.index("RUN: " + second)
    assert out.index("🔴 CRITICAL  " + first) < out.index("WARNING   " + second)
    assert [r["status"] for r in report["runs"]] == ["CRITICAL", "WARNING"]
    assert report["status"] == "CRITICAL"
    assert first + "/mapush/success_rate" in report["metric_stats"]
    assert {d["run"] for d in report["diagnostics"]} == {first, second}


def test_compare_puts_key_metrics_side_by_side(sweep: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "c.json"
    result = run_cli(
        "compare", str(sweep / "seed1"), str(sweep / "seed2"), "--json", str(json_path)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("status") and "CRITICAL" in line and "WARNING" in line for line in lines
    )
    assert any(line.startswith("success (mapush/success_rate) final") for line in lines)
    assert any(line.startswith("check: Success Rate") for line in lines)
    data = json.loads(json_path.read_text())
    failed, healthy = data["runs"]
    assert failed["metrics"]["success"]["best"] == 0.0
    assert healthy["metrics"]["success"]["best"] > 0.5
    assert failed["checks"]["Success Rate"] == "CRITICAL"
    assert healthy["metrics"]["reward"]["trend"] == "increasing"


def test_realworld_cases_report_without_a_traceback(realworld: Path, tmp_path: Path) -> None:
    result = run_cli("report", str(realworld), "--json", str(tmp_path / "all.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    report = json.loads((tmp_path / "all.json").read_text())
    assert len(report["runs"]) >= 30
