"""The HTML report, rendered as a user sees it: headless Chromium, a screenshot, the console.

Each shipped example is written with ``tblive report --html`` and opened in Debian's
``chromium`` (installed by ``.ci/run``; the browser tests skip cleanly without it).  The page must
be self-contained (its Content-Security-Policy blocks anything else, and Chromium logs a
blocked load as a console error), draw something (the screenshot is not blank) and log no
console message at all.

``python tests/test_html.py`` rewrites the screenshots shown in the docs
(``docs/report-failed.png``, ``docs/report-healthy.png``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "logs"
CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: Path, png: Path, height: int = 1700) -> Tuple[List[str], str]:
    """Open ``page`` in headless Chromium, save a 1280-wide screenshot; (console lines, stderr)."""
    browser = chromium()
    assert browser is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",  # root in CI containers
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--user-data-dir=%s" % profile,
                "--window-size=1280,%d" % height,
                "--screenshot=%s" % png,
                "--enable-logging=stderr",
                "--v=0",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    console = [line for line in result.stderr.splitlines() if CONSOLE.search(line)]
    return console, result.stderr


def write_html(tmp: Path, logdir: Path, *extra: str) -> Path:
    """``tblive report LOGDIR --html`` (in a subprocess, from the repository root)."""
    page = (tmp / "report.html").resolve()
    result = subprocess.run(
        [sys.executable, "-m", "tblive.cli", "report", str(logdir), "--html", str(page), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stderr
    return page


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Dict[str, Path]:
    """Each example's page, the tree's and the comparison's, written once by the CLI."""
    pytest.importorskip("matplotlib")
    from tblive.cli import main

    out = tmp_path_factory.mktemp("pages")
    commands = {
        "mapush_failed": ["report", str(EXAMPLES / "mapush_failed")],
        "mapush_healthy": ["report", str(EXAMPLES / "mapush_healthy")],
        "tree": ["report", str(EXAMPLES)],
        "compare": [
            "compare",
            str(EXAMPLES / "mapush_failed" / "logs"),
            str(EXAMPLES / "mapush_healthy" / "logs"),
        ],
    }
    written = {}
    for name, args in commands.items():
        written[name] = out / ("%s.html" % name)
        assert main([*args, "--html", str(written[name])]) in (0, 1)
    return written


def image_figures(png: Path) -> Tuple[int, float]:
    """(distinct colours, share of pixels that are not white) of a screenshot."""
    from PIL import Image

    pixels = np.asarray(Image.open(str(png)).convert("RGB")).reshape(-1, 3)
    colours = len(np.unique(pixels[:: max(1, len(pixels) // 200_000)], axis=0))
    not_white = float((pixels.min(axis=1) < 245).mean())
    return colours, not_white


# -- the page itself (no browser needed) -------------------------------------------------------


@pytest.mark.parametrize("run", ["mapush_failed", "mapush_healthy"])
def test_html_is_one_self_contained_file(pages: Dict[str, Path], run: str) -> None:
    text = pages[run].read_text(encoding="utf-8")
    # every reference is inline (data: URIs) or an anchor in the page
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "Content-Security-Policy" in text
    assert text.count("data:image/png;base64,") == 1  # the run's small multiples
    # verdict and findings come before the plots
    assert text.index("Success Rate" if run == "mapush_failed" else "Reward Trend") < text.index(
        "data:image/png"
    )


def test_tree_page_has_a_runs_table_with_a_sparkline_per_run(pages: Dict[str, Path]) -> None:
    text = pages["tree"].read_text(encoding="utf-8")
    table = text[text.index("<h2>Runs</h2>") : text.index("</table>")]
    assert table.count("<svg") == 2 and table.count("<polyline") == 2
    assert table.index("mapush_failed") < table.index("mapush_healthy")  # worst first
    assert text.count("data:image/png;base64,") == 2
    assert text.index("</table>") < text.index("data:image/png")


def test_a_run_without_data_is_shown_as_no_data_not_ok(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from tensorboardX import SummaryWriter

    from tblive.cli import main

    SummaryWriter(str(tmp_path / "runs" / "empty")).close()  # a header-only event file
    writer = SummaryWriter(str(tmp_path / "runs" / "short"))
    for step in range(5):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
    writer.close()
    page = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "runs"), "--html", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    table = text[text.index("<h2>Runs</h2>") : text.index("</table>")]
    empty_row = next(row for row in table.split("<tr>") if ">empty<" in row)
    assert "NO DATA" in empty_row and "no scalar data" in empty_row
    assert text.count("<section") == 2


def test_without_matplotlib_the_page_is_written_with_a_note(tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    code = (
        "import sys; sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "from tblive.cli import main\n"
        "sys.exit(main(['report', %r, '--html', %r]))" % (str(EXAMPLES), str(page))
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    text = page.read_text(encoding="utf-8")
    assert "tblive[plots]" in text and "data:image/png" not in text
    assert text.count("<svg") == 2  # the sparklines need no matplotlib


def test_compare_html_overlays_the_runs(pages: Dict[str, Path]) -> None:
    page = pages["compare"]
    text = page.read_text(encoding="utf-8")
    # both runs' event folders are called "logs": the columns still differ
    columns = re.findall(r"<th>([^<]+)</th>", text)
    assert len(columns) == 2 and "mapush_failed" in columns[0], columns
    assert "mapush_healthy" in columns[1], columns
    # one overlay per key metric both runs log (reward, success, entropy, losses, grad norm)
    assert text.count("data:image/png;base64,") == 6


# -- in the browser ----------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium is not installed")


@needs_chromium
@pytest.mark.parametrize("run", ["mapush_failed", "mapush_healthy"])
def test_html_renders_in_chromium_without_console_errors(
    pages: Dict[str, Path], tmp_path: Path, run: str
) -> None:
    pytest.importorskip("PIL")
    png = tmp_path / "shot.png"
    console, stderr = screenshot(pages[run], png)
    assert png.is_file(), stderr[-2000:]
    assert console == [], console
    colours, not_white = image_figures(png)
    assert colours > 200, colours  # plots, badges, text: not a blank or one-colour page
    assert not_white > 0.03, not_white


@needs_chromium
def test_the_console_check_sees_a_blocked_load(tmp_path: Path) -> None:
    """The check above can fail: a page of ours that loads from elsewhere is logged and caught."""
    from tblive.render.html import _page

    page = tmp_path / "leaky.html"
    page.write_text(_page("leaky", ['<img src="https://example.invalid/x.png" alt="x">']))
    console, _ = screenshot(page, tmp_path / "shot.png", height=300)
    assert any("example.invalid" in line for line in console), console


def series(values, start: int = 0, every: int = 100):
    from tblive.series.stats import MetricStats

    stats = MetricStats()
    steps = np.arange(start, start + every * len(values), every)
    stats.update_many(steps, np.asarray(values, dtype=np.float64))
    return stats


def test_marks_show_first_nonfinite_grace_end_named_steps_and_the_recent_window() -> None:
    from tblive.judge.config import Grace
    from tblive.judge.findings import Finding, Status
    from tblive.render.plots import evidence_marks

    values = np.linspace(1.0, 2.0, 400)
    values[300] = np.nan
    stats = {"loss": series(values), "other": series(np.ones(400))}
    grace = Grace(min_points=50)
    named = Finding(
        "Spike",
        Status.CRITICAL,
        "loss spikes",
        {"spike_step": 12300, "rise_window": [200, 900]},
        "loss",
    )
    plain = Finding("Trend", Status.WARNING, "loss rises", {"last_step": 39900}, "loss")
    quiet = Finding("Other", Status.OK, "other fine", {}, "other")
    marks = evidence_marks(["loss"], stats, [named, plain, quiet], grace)
    by_label = {m.label: m for m in marks}
    assert by_label["first non-finite"].start == 30000
    assert 4800 <= by_label["grace end"].start <= 5000  # the 50th point is at step 4900
    assert (by_label["spike"].start, by_label["spike"].end) == (12300, 12300)
    assert (by_label["rise"].start, by_label["rise"].end) == (200, 900)
    recent = by_label["recent"]  # no step named (last_step is only the extent): last 10%
    assert recent.status == Status.WARNING and recent.end == 39900
    assert 35000 <= recent.start <= 37000
    assert not any(m.start == 39900 and m.end == 39900 for m in marks)


def test_finding_png_contract() -> None:
    pytest.importorskip("matplotlib")
    from tblive.judge.findings import Finding, Status
    from tblive.render.plots import finding_png

    stats = {
        "agent0/dist_entropy": series(np.linspace(1.3, 2.2, 200)),
        "agent1/dist_entropy": series(np.linspace(1.3, 2.1, 200)),
    }
    summary = Finding(
        "Entropy",
        Status.CRITICAL,
        "2 of 2 agents (agent0, agent1): entropy rises",
        {"flagged": ["agent0", "agent1"], "worst": "agent0/dist_entropy"},
        "agent*/dist_entropy",
    )
    png = finding_png(stats, summary, run="seed-1")
    assert png is not None and png.startswith(b"\x89PNG")
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(png)).size == (800, 320)
    failed_check = Finding("Entropy", Status.CRITICAL, "check Entropy failed: KeyError", {})
    assert finding_png(stats, failed_check) is None
    odd = Finding(
        "Entropy",
        Status.WARNING,
        "x",
        {"agents": "not a dict", "a_step": "soon"},
        "agent0/dist_entropy",
    )
    assert finding_png(stats, odd) is not None


def update_docs_screenshots() -> None:  # pragma: no cover - run by hand
    with tempfile.TemporaryDirectory() as tmp:
        for run in ("failed", "healthy"):
            folder = Path(tmp) / run
            folder.mkdir()
            # a relative LOGDIR: the screenshot shows what a user's would
            page = write_html(folder, Path("examples", "logs", "mapush_" + run))
            console, stderr = screenshot(page, ROOT / "docs" / ("report-%s.png" % run), 1500)
            print(run, "console:", console or "clean")


if __name__ == "__main__":  # pragma: no cover
    update_docs_screenshots()
