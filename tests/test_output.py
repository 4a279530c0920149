"""Output polish: JSON on stdout, wrapping, thousands separators, alignment, names, bad args."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from patterns import failure_pattern, healthy_pattern, write_row
from tensorboardX import SummaryWriter

from tblive.judge.findings import Status
from tblive.render.output import (
    display_width,
    distinct_names,
    format_count,
    pad,
    shorten,
    wrap,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "logs"


def write_run(path: Path, rows) -> Path:
    writer = SummaryWriter(str(path))
    for row in rows:
        write_row(writer, row)
    writer.close()
    return path


def run_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "tblive.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


@pytest.fixture(scope="module")
def harl_seeds(tmp_path_factory) -> Path:
    """Two seeds in HARL's layout: every run's event folder is called ``logs``."""
    root = tmp_path_factory.mktemp("harl")
    write_run(root / "seed-1" / "logs", failure_pattern(60, seed=1))
    write_run(root / "seed-2" / "logs", healthy_pattern(60, seed=2))
    write_run(root / "シード3" / "logs", healthy_pattern(60, seed=3))
    return root


# -- the helpers -------------------------------------------------------------------------------


def test_format_count_and_status_names() -> None:
    assert format_count(100_000_000) == "100,000,000"
    assert format_count(999) == "999" and format_count(None) == "-"
    assert str(Status.CRITICAL) == "CRITICAL" and "%s" % Status.OK == "OK"
    assert f"{Status.WARNING}" == "WARNING"
    assert int(Status.CRITICAL) == 2 and Status.CRITICAL > Status.WARNING


def test_print_monitor_status_prints_its_name() -> None:
    code = (
        "from tblive import Monitor\n"
        "with Monitor('r') as monitor:\n"
        "    for step in range(30):\n"
        "        monitor.log(step, {'train/value_loss': float('nan') if step > 20 else 1.0})\n"
        "    monitor.check_now()\n"
        "    print(monitor.status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "CRITICAL", result.stdout


def test_display_width_counts_emoji_and_wide_characters_twice() -> None:
    assert display_width("🔴 CRITICAL") == 11
    assert display_width("シード") == 6
    assert display_width("e\u0301") == 1  # e + combining acute
    assert display_width(pad("🟢 OK", 12)) == 12 and display_width(pad("ok", 12)) == 12
    assert pad("7", 4, right=True) == "   7"


def test_long_names_are_cut_in_the_middle() -> None:
    name = "harl_happo_monopolypf_collapse_failed/seed-00001-2024-07-03-18-57-44/logs"
    short = shorten(name, 30)
    assert display_width(short) == 30 and "\u2026" in short
    assert short.startswith("harl_happo") and short.endswith("/logs")
    assert shorten("seed-1/logs", 30) == "seed-1/logs"
    assert display_width(shorten("シード" * 20, 21)) <= 21


def test_wrap_keeps_words_and_indent() -> None:
    text = "agent0/dist_entropy: entropy rises 1.35 -> 2.13 " * 6
    lines = wrap(text, 60, "   ")
    assert len(lines) > 1
    assert all(line.startswith("   ") and display_width(line) <= 60 for line in lines)
    assert " ".join(line.strip() for line in lines) == text.strip()
    assert wrap(text, 0, "  ") == ["  " + text]  # 0: not wrapped


def test_distinct_names_use_the_shortest_distinct_path_suffix() -> None:
    paths = ["/r/a/seed-1/logs", "/r/b/seed-1/logs", "/r/seed-2/logs", "/x/other"]
    names = distinct_names(["logs", "logs", "logs", "other"], paths)
    assert names == ["a/seed-1/logs", "b/seed-1/logs", "seed-2/logs", "other"]
    assert distinct_names(["a", "a"], ["/same", "/same"]) == ["a", "a#2"]
    assert distinct_names(["seed-1", "seed-2"], ["/p/1", "/p/2"]) == ["seed-1", "seed-2"]


# -- the command line --------------------------------------------------------------------------


def test_json_dash_writes_only_json_to_stdout(tmp_path: Path) -> None:
    result = run_cli("report", str(EXAMPLES), "--json", "-")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert report["total_steps"] == 100_000_000 and len(report["runs"]) == 2
    assert not (Path.cwd() / "-").exists()
    compared = run_cli("compare", str(EXAMPLES / "mapush_failed"), "--json", "-")
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["runs"][0]["status"] == "CRITICAL"


def test_text_report_has_thousands_separators_and_wraps_to_the_terminal(tmp_path: Path) -> None:
    result = run_cli("report", str(EXAMPLES / "mapush_failed"), env={"COLUMNS": "72"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Total Steps: 100,000,000" in out and "(3,000 points)" in out
    diagnostics = out[out.index("DIAGNOSTICS") :].splitlines()[2:]
    assert diagnostics and all(display_width(line) <= 72 for line in diagnostics), diagnostics
    json_out = run_cli("report", str(EXAMPLES / "mapush_failed"), "--json", "-")
    # JSON keeps each message whole
    messages = [d["message"] for d in json.loads(json_out.stdout)["diagnostics"]]
    assert all("\n" not in m for m in messages) and max(len(m) for m in messages) > 72


def test_runs_table_is_aligned_whatever_the_glyphs(harl_seeds: Path) -> None:
    result = run_cli("report", str(harl_seeds))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index("RUNS") + 2 : lines.index("RUNS") + 5]
    assert len(table) == 3 and all(" steps" in line for line in table), table
    # the steps column ends at the same display column on every row
    ends = {display_width(line[: line.index(" steps")]) for line in table}
    assert len(ends) == 1, table


def test_compare_shows_distinct_names_for_harl_runs(harl_seeds: Path) -> None:
    for args in (
        [str(harl_seeds / "seed-1" / "logs"), str(harl_seeds / "seed-2" / "logs")],
        [str(harl_seeds / "seed-1"), str(harl_seeds / "seed-2")],
    ):
        result = run_cli("compare", *args, "--json", "-")
        assert result.returncode == 0, result.stderr
        names = [run["name"] for run in json.loads(result.stdout)["runs"]]
        assert len(set(names)) == 2, names
        assert "seed-1" in names[0] and "seed-2" in names[1], names
        table = run_cli("compare", *args).stdout.splitlines()
        header = table[2]
        assert names[0] in header and names[1] in header


def test_outputs_that_are_not_regular_files_are_written_in_place(tmp_path: Path) -> None:
    """``--json /dev/stdout`` or a FIFO: written to, never replaced by a file."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    result = run_cli("report", str(EXAMPLES / "mapush_failed"), "--json", str(fifo))
    received = reader.communicate(timeout=60)[0]
    assert result.returncode == 0, result.stderr
    assert json.loads(received)["status"] == "CRITICAL"
    assert fifo.is_fifo()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["report", "LOGS", "--expected-steps", "-5"], "--expected-steps"),
        (["report", "LOGS", "--expected-steps", "many"], "not a whole number"),
        (["--log-level", "nonsense", "report", "LOGS"], "unknown log level 'nonsense'"),
        (["report", "LOGS", "--json", "x.txt/y.json"], "x.txt does not exist"),
        (["report", "LOGS", "--html", "FILE/y.html"], "is a file, not a directory"),
        (["report", "LOGS", "--json", "-", "--html", "-"], "only one of"),
        (["report", "LOGS", "--fail-on", "sometimes"], "invalid choice"),
        (["compare", "LOGS", "--json", "nowhere/c.json"], "does not exist"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(tmp_path: Path, args, expected: str) -> None:
    (tmp_path / "FILE").write_text("x")
    args = [str(EXAMPLES) if a == "LOGS" else a for a in args]
    args = [str(tmp_path / a) if a.startswith(("x.txt/", "FILE/", "nowhere/")) else a for a in args]
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""
