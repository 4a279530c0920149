"""The declared public API, the bad-input error hierarchy, and checks that fail visibly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tblive
from tblive import errors
from tblive.judge.findings import Status

ROOT = Path(__file__).resolve().parents[1]
FAILED_EXAMPLE = ROOT / "examples" / "logs" / "mapush_failed"


def test_every_public_name_resolves():
    for name in tblive.__all__:
        assert getattr(tblive, name) is not None, name
    assert tblive.version == tblive.__version__
    assert set(tblive.__all__) <= set(dir(tblive))
    from tblive.doors.monitor import Monitor
    from tblive.judge.config import Config
    from tblive.judge.config_file import load_config
    from tblive.judge.verdict import evaluate

    assert tblive.Monitor is Monitor and tblive.Config is Config
    assert tblive.load_config is load_config and tblive.evaluate is evaluate
    with pytest.raises(AttributeError):
        tblive.no_such_name  # noqa: B018


def test_import_tblive_stays_light():
    code = (
        "import sys, tblive; heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'tensorboard', 'google', 'watchdog', 'slack_sdk')]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(ROOT)
    )
    assert out.stdout.strip() == "[]"


def test_py_typed_marker_is_shipped():
    assert (ROOT / "tblive" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "[tool.setuptools.package-data]" in pyproject
    assert 'tblive = ["py.typed"]' in pyproject


def test_bad_input_errors_share_one_base():
    for kind in (errors.ConfigError, errors.NoEventFiles, errors.ReaderError):
        assert issubclass(kind, errors.TbliveError)
        assert issubclass(kind, ValueError)  # code catching the earlier ValueError still works
    from tblive.doors.posthoc import NoEventFiles
    from tblive.judge.config_file import ConfigError

    assert NoEventFiles is errors.NoEventFiles and ConfigError is errors.ConfigError


def test_no_event_files_is_a_tblive_error(tmp_path):
    from tblive.doors.posthoc import analyze

    (tmp_path / "notes.txt").write_text("no logs here", encoding="utf-8")
    with pytest.raises(errors.TbliveError) as info:
        analyze(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from tblive.cli import EXIT_BAD_INPUT, main

    config = tmp_path / "bad.toml"
    config.write_text("[checks.entropy]\nraise = 0.2\n", encoding="utf-8")
    (tmp_path / "logs").mkdir()
    code = main(["report", str(tmp_path / "logs"), "--config", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT
    assert "checks.entropy.raise" in err and str(config) in err and "\n" not in err


# -- a check that raises ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_run():
    if not FAILED_EXAMPLE.is_dir():
        pytest.skip("example logs not in this checkout")
    from tblive.doors.posthoc import analyze

    (result,) = analyze(str(FAILED_EXAMPLE))
    return result


def _crash_the_critical_checks(monkeypatch, verdict):
    """Make every check that found something CRITICAL raise instead (a bug in a check)."""
    from tblive.judge.rules import CHECKS

    names = {f.check for f in verdict.findings if f.status == Status.CRITICAL}
    assert names, "the failed example must have CRITICAL findings"
    crashed = []
    for module in CHECKS:
        if module.NAME in names:

            def boom(*args, **kwargs):
                raise ZeroDivisionError("float division by zero")

            monkeypatch.setattr(module, "check", boom)
            crashed.append(module.NAME)
    return crashed


def test_a_check_that_raises_is_a_visible_finding(failed_run, monkeypatch):
    from tblive.judge.verdict import CHECK_FAILED, evaluate, failed_checks

    assert failed_run.verdict.status == Status.CRITICAL
    crashed = _crash_the_critical_checks(monkeypatch, failed_run.verdict)
    verdict = evaluate(failed_run.name, failed_run.stats)
    failed = failed_checks(verdict)
    assert sorted(f.check for f in failed) == sorted(crashed)
    for finding in failed:
        assert finding.status == Status.WARNING
        assert finding.message.startswith("check %s failed: ZeroDivisionError" % finding.check)
        assert "ZeroDivisionError" in finding.details[CHECK_FAILED]
    # the run is not judged healthier than "not fully judged"
    assert verdict.status >= Status.WARNING
    # the checks that did not raise still stand
    others = {f.check for f in failed_run.verdict.findings} - set(crashed)
    assert others <= {f.check for f in verdict.findings}


def test_failed_check_shows_in_text_json_and_alerts(failed_run, monkeypatch):
    from tblive.alert.tracker import AlertTracker
    from tblive.doors.posthoc import analyze
    from tblive.render.report import render_json, render_text

    crashed = _crash_the_critical_checks(monkeypatch, failed_run.verdict)
    (result,) = analyze(str(FAILED_EXAMPLE))  # judged with the crashing checks
    verdict = result.verdict
    text = render_text(str(FAILED_EXAMPLE), [result], False)
    report = json.loads(json.dumps(render_json(str(FAILED_EXAMPLE), [result])))
    for name in crashed:
        assert "check %s failed" % name in " ".join(text.split())
        (entry,) = [d for d in report["diagnostics"] if d["name"] == name]
        assert entry["status"] == "WARNING" and "ZeroDivisionError" in entry["details"]["error"]
    alerts = AlertTracker().observe(verdict, now=1000.0)
    assert alerts, "a run with a failed check must be announced"
    announced = json.dumps([a.to_dict() for a in alerts]) + " ".join(a.message for a in alerts)
    assert "failed" in announced and "ZeroDivisionError" in announced
