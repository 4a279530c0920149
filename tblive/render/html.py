"""The HTML report: one self-contained file (inline CSS, PNG plots as data URIs, SVG sparklines).

No network, no scripts, no external files: the page reads the same after ``scp`` to a laptop.
For each run: the verdict and its findings first, then small multiples of the key metrics with
the findings' evidence marked (:mod:`tblive.render.plots`); for a tree, a runs table with a
sparkline of each run's main reward comes first.  :func:`render_compare_html` overlays the
compared runs' key metrics instead.

Pure functions from results to a string; plots are drawn from the bounded history (no second
read).  Without matplotlib the page is still written, with a note where the plots would be.
"""

from __future__ import annotations

import base64
import datetime
import html
from typing import Any, List, Optional, Sequence

from tblive import __version__
from tblive.judge.findings import Finding, Status
from tblive.render import plots
from tblive.render.output import format_count, format_number
from tblive.render.report import (
    NO_DATA,
    has_data,
    overall_label,
    overall_summary,
    run_names,
    run_summary,
    worst_checks,
    worst_first,
)

#: runs of a tree that get their plots (the worst first); the rest get their findings only, so a
#: 500-seed sweep still renders in seconds
MAX_PLOTTED_RUNS = 40

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1240px;padding:16px 24px;color:#1d1d1f;background:#fff;line-height:1.4}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:0 0 4px}
.meta{color:#666;font-size:13px;margin:2px 0}
.summary{font-size:16px;font-weight:600;padding:8px 12px;border-radius:6px;margin:12px 0}
.s-OK{background:#e8f5e9;color:#1b5e20}.s-WARNING{background:#fff3e0;color:#8a4b00}
.s-CRITICAL{background:#ffebee;color:#b71c1c}.s-NODATA{background:#eeeeee;color:#444}
.badge{display:inline-block;font-size:12px;font-weight:700;padding:2px 8px;border-radius:10px;
margin-right:6px;vertical-align:middle}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}
th,td{padding:4px 10px;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:middle}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
section.run{border:1px solid #ddd;border-radius:8px;padding:14px 18px;margin:18px 0}
ul.findings{list-style:none;padding:0;margin:8px 0}
ul.findings li{margin:6px 0;padding:6px 10px;border-left:4px solid #ccc;background:#fafafa}
ul.findings li.f-CRITICAL{border-color:#c62828}ul.findings li.f-WARNING{border-color:#ef8f00}
ul.findings li.f-OK{border-color:#2e7d32}
.check{font-weight:600}.metric{color:#555;font-family:monospace;font-size:12px}
.message{margin:2px 0 0;font-size:13px}
figure{margin:10px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#666}
details summary{cursor:pointer;color:#555;font-size:13px}
.note{color:#8a4b00;font-size:13px}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CAPTION = (
    "Lines: bucket means of the bounded history (band: min..max). Marks: red dashed = first "
    "non-finite value or a step a finding names; grey dotted = end of the grace period (before "
    "it slow checks report at most WARNING); shaded = the window a WARNING/CRITICAL finding's "
    "evidence comes from (its recent window when the check names no steps)."
)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: List[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            # self-contained by construction: anything that tried to load from elsewhere is
            # blocked (and logged to the console, which the Chromium test reads)
            '<meta http-equiv="Content-Security-Policy" content="%s">' % _CSP,
            '<link rel="icon" href="data:,">',
            "<title>%s</title>" % _e(title),
            "<style>%s</style>" % _CSS,
            "</head><body>",
        ]
        + body
        + ["</body></html>", ""]
    )


def _badge(status: Status, label: Optional[str] = None) -> str:
    label = label or status.name
    css = "NODATA" if label == NO_DATA else status.name
    return '<span class="badge s-%s">%s</span>' % (css, _e(label))


def _run_badge(result: Any) -> str:
    return _badge(result.verdict.status, None if has_data(result) else NO_DATA)


def _img(png: Optional[bytes], alt: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return '<img src="data:image/png;base64,%s" alt="%s">' % (data, _e(alt))


def _no_plots_note() -> str:
    return '<p class="note">Plots need matplotlib: <code>pip install "tblive[plots]"</code>.</p>'


def sparkline_svg(values: Sequence[float], width: int = 140, height: int = 28) -> str:
    """An inline SVG polyline of ``values`` (empty string for fewer than two finite values)."""
    points = [float(v) for v in values if v == v and abs(v) != float("inf")]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = (width - 4) / float(len(points) - 1)
    coords = " ".join(
        "%.1f,%.1f" % (2 + i * step, height - 2 - (v - low) / span * (height - 4))
        for i, v in enumerate(points)
    )
    return (
        '<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img">'
        '<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/></svg>'
        % (width, height, width, height, coords)
    )


def _finding_item(finding: Finding) -> str:
    metric = ' <span class="metric">%s</span>' % _e(finding.metric) if finding.metric else ""
    return '<li class="f-%s">%s<span class="check">%s</span>%s<p class="message">%s</p></li>' % (
        finding.status.name,
        _badge(finding.status),
        _e(finding.check),
        metric,
        _e(finding.message),
    )


def _findings_block(findings: Sequence[Finding], points: int) -> List[str]:
    bad = sorted((f for f in findings if f.status > Status.OK), key=lambda f: -int(f.status))
    good = [f for f in findings if f.status == Status.OK]
    out: List[str] = []
    if bad:
        out.append('<ul class="findings">%s</ul>' % "".join(_finding_item(f) for f in bad))
    if good:
        out.append(
            '<details><summary>%d check%s OK</summary><ul class="findings">%s</ul></details>'
            % (
                len(good),
                "" if len(good) == 1 else "s",
                "".join(_finding_item(f) for f in good),
            )
        )
    if not findings:
        out.append(
            "<p>%s</p>"
            % (
                "Nothing to judge yet."
                if not points
                else "No check applies: none of the logged metrics is one tblive knows."
            )
        )
    return out


def _main_series(result: Any) -> Optional[Any]:
    for role in ("main_reward", "success"):
        tags = plots.role_tags(result.roles, role, result.stats)
        if tags:
            return result.stats[tags[0]]
    return None


def _run_section(result: Any, anchor: str, name: str, grace: Any, plotted: bool) -> List[str]:
    verdict = result.verdict
    out = ['<section class="run" id="%s">' % anchor]
    out.append("<h2>%s%s</h2>" % (_run_badge(result), _e(name)))
    out.append(
        '<p class="meta">%s · %s steps · %d metrics · %s points</p>'
        % (
            _e(result.run.path),
            format_count(verdict.total_steps),
            len(result.stats),
            format_count(verdict.points),
        )
    )
    css = verdict.status.name if has_data(result) else "NODATA"
    out.append('<p class="summary s-%s">%s</p>' % (css, _e(run_summary(result))))
    out.extend(_findings_block(verdict.findings, verdict.points))
    if plotted:
        png = plots.run_png(result.stats, result.roles, verdict.findings, grace)
        if png is not None:
            out.append(
                "<figure>%s<figcaption>%s</figcaption></figure>"
                % (_img(png, "key metrics of %s" % name), _e(_CAPTION))
            )
        elif not plots.matplotlib_available():
            out.append(_no_plots_note())
        else:
            out.append('<p class="meta">None of the key metrics is logged in this run.</p>')
    else:
        out.append(
            '<p class="meta">Plots are drawn for the %d worst runs only.</p>' % MAX_PLOTTED_RUNS
        )
    out.append("</section>")
    return out


def render_html(log_dir: str, results: Sequence[Any], grace: Any = None) -> str:
    """The HTML report of ``results`` (:class:`~tblive.run.RunRecord`) read from ``log_dir``.

    ``grace`` (the config's ``Grace``) draws the grace-end line on the plots.
    """
    names = run_names(results)
    label = overall_label(results)
    body = ["<header><h1>tblive report</h1>"]
    body.append(
        '<p class="meta">Log directory: <code>%s</code> · tblive %s · written %s UTC</p>'
        % (
            _e(log_dir),
            _e(__version__),
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        )
    )
    body.append(
        '<p class="summary s-%s">%s</p></header>'
        % (label.replace(" ", ""), _e(overall_summary(results)))
    )
    order = worst_first(results, names)
    plotted = set(order[:MAX_PLOTTED_RUNS])
    if len(results) > 1:
        body.append("<h2>Runs</h2><table><tr><th>status</th><th>run</th><th>steps</th>")
        body.append("<th>main reward</th><th>worst checks</th></tr>")
        for i in order:
            result = results[i]
            verdict = result.verdict
            worst = worst_checks(result)
            series = _main_series(result)
            spark = sparkline_svg(plots.history_points(series)["values"]) if series else ""
            body.append(
                '<tr><td>%s</td><td><a href="#run-%d">%s</a></td><td class="num">%s</td>'
                "<td>%s</td><td>%s</td></tr>"
                % (
                    _run_badge(result),
                    i,
                    _e(names[i]),
                    format_count(verdict.total_steps),
                    spark,
                    _e(", ".join(worst)),
                )
            )
        body.append("</table>")
    for i in order:
        body.extend(_run_section(results[i], "run-%d" % i, names[i], grace, i in plotted))
    return _page("tblive: %s" % log_dir, body)


def render_compare_html(results: Sequence[Any], grace: Any = None) -> str:
    """The comparison as HTML: the table of :func:`compare_to_dict`, then one overlay per metric."""
    from tblive.render.compare import KEY_ROLES, compare_to_dict, key_metric

    data = compare_to_dict(results)
    names = [run["name"] for run in data["runs"]]
    body = ["<header><h1>tblive compare: %d runs</h1>" % len(results)]
    label = overall_label(results)
    body.append(
        '<p class="summary s-%s">%s</p></header>'
        % (label.replace(" ", ""), _e(overall_summary(results)))
    )
    body.append("<table><tr><th></th>%s</tr>" % "".join("<th>%s</th>" % _e(n) for n in names))
    body.append(
        "<tr><td>status</td>%s</tr>"
        % "".join("<td>%s</td>" % _run_badge(result) for result in results)
    )
    body.append(
        "<tr><td>steps</td>%s</tr>"
        % "".join(
            '<td class="num">%s</td>' % format_count(run["total_steps"]) for run in data["runs"]
        )
    )
    for label, _, _better in KEY_ROLES:
        cells = []
        for run in data["runs"]:
            figures = run["metrics"].get(label)
            cells.append(
                "<td>-</td>"
                if figures is None
                else '<td class="num">%s <span class="meta">%s</span></td>'
                % (_e(_number_cell(figures.get("final"))), _e(figures.get("trend") or ""))
            )
        if any(label in run["metrics"] for run in data["runs"]):
            body.append("<tr><td>%s final</td>%s</tr>" % (_e(label), "".join(cells)))
    checks = sorted({check for run in data["runs"] for check in run["checks"]})
    for check in checks:
        body.append(
            "<tr><td>check: %s</td>%s</tr>"
            % (
                _e(check),
                "".join(
                    "<td>%s</td>"
                    % (_badge(Status[run["checks"][check]]) if check in run["checks"] else "-")
                    for run in data["runs"]
                ),
            )
        )
    body.append("</table>")
    figures = []
    for label, role, _better in KEY_ROLES:
        series = []
        for name, result in zip(names, results):
            ref = key_metric(result, role)
            if ref is not None and ref.tag in result.stats:
                series.append((name, result.stats[ref.tag]))
        if series:
            png = plots.overlay_png(series, label)
            if png is not None:
                figures.append(_img(png, "%s of every run" % label))
    if figures:
        shown = (
            ""
            if len(results) <= plots.MAX_LINES
            else " Only the first %d runs are drawn." % plots.MAX_LINES
        )
        body.append(
            "<figure>%s<figcaption>Each line is one run (bucket means; band: min..max).%s"
            "</figcaption></figure>" % ("".join(figures), shown)
        )
    elif not plots.matplotlib_available():
        body.append(_no_plots_note())
    return _page("tblive compare", body)


def _number_cell(value: Any) -> str:
    """A table cell for a number from the comparison dict (``-`` for None)."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return format_number(float(value))
    return str(value)
