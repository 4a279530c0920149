"""The shipped examples run as a user would run them, in seconds, and say what they should."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=str(EXAMPLES.parent),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def test_harl_mapush_runner_stops_a_failing_run(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    result = run(str(EXAMPLES / "harl_mapush_runner.py"), "--logdir", str(logdir))
    assert "final verdict: CRITICAL" in result.stdout
    report = json.loads((logdir / "tblive_report.json").read_text())
    assert report["status"] == "CRITICAL"
    assert {"Success Rate", "Entropy"} <= {
        d["name"] for d in report["diagnostics"] if d["status"] == "CRITICAL"
    }
    # the runner stopped itself early: fewer points than its 200 episodes
    assert report["metric_stats"]["mapush/success_rate"]["count"] < 200


def test_harl_mapush_runner_healthy_run_is_not_critical(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    result = run(str(EXAMPLES / "harl_mapush_runner.py"), "--logdir", str(logdir), "--healthy")
    assert "final verdict: CRITICAL" not in result.stdout
    assert json.loads((logdir / "tblive_report.json").read_text())["status"] != "CRITICAL"


@pytest.mark.parametrize("flag, expected", [([], "OK"), (["--broken"], "CRITICAL")])
def test_cleanrl_loop(flag, expected: str) -> None:
    result = run(str(EXAMPLES / "cleanrl_loop.py"), *flag)
    assert ("[CRITICAL]" in result.stdout) == (expected == "CRITICAL"), result.stdout


@pytest.mark.parametrize(
    "script, module",
    [("sb3_callback.py", "stable_baselines3"), ("lightning_callback.py", "lightning")],
)
def test_framework_examples_run(script: str, module: str) -> None:
    if importlib.util.find_spec(module) is None or importlib.util.find_spec("torch") is None:
        pytest.skip("%s is not installed" % module)
    result = run(str(EXAMPLES / script))
    assert "final: " in result.stdout and "no verdict" not in result.stdout, result.stdout


def test_make_example_logs_reproduces_the_shipped_logs(tmp_path: Path) -> None:
    """The shipped example logs are what the generator writes (same tags, counts, values)."""
    from tblive.read.runs import load_points

    run(str(EXAMPLES / "make_example_logs.py"), str(tmp_path))
    shipped = load_points(str(EXAMPLES / "logs"))
    fresh = load_points(str(tmp_path))
    assert shipped.keys() == fresh.keys()
    for name in shipped:
        assert shipped[name].keys() == fresh[name].keys()
        for tag in shipped[name]:
            old_steps, old_values, _ = shipped[name][tag].arrays()
            new_steps, new_values, _ = fresh[name][tag].arrays()
            assert old_steps.tolist() == new_steps.tolist()
            assert old_values.tolist() == new_values.tolist()


@pytest.mark.parametrize("fresh", [False, True], ids=["shipped", "fresh-checkout"])
@pytest.mark.parametrize(
    "name, expected", [("mapush_failed", "CRITICAL"), ("mapush_healthy", "OK")]
)
def test_example_runs_get_the_verdicts_the_readme_explains(
    tmp_path: Path, name: str, expected: str, fresh: bool
) -> None:
    """CRITICAL for the failed run, OK (no warning either) for the healthy one, also when the
    files are brand new (a fresh clone: every event file just written, as for a live run)."""
    logdir = EXAMPLES / "logs" / name
    if fresh:
        logdir = Path(shutil.copytree(str(logdir), str(tmp_path / name), copy_function=shutil.copy))
    result = run("-m", "tblive.cli", "report", str(logdir), "--json", "-")
    report = json.loads(result.stdout)
    assert report["status"] == expected, report["summary"]
    statuses = {d["name"]: d["status"] for d in report["diagnostics"]}
    if expected == "CRITICAL":
        assert statuses["Success Rate"] == "CRITICAL" and statuses["Entropy"] == "CRITICAL"
    else:
        assert set(statuses.values()) == {"OK"}, statuses
        assert statuses["Success Rate"] == "OK" and statuses["Entropy"] == "OK"
