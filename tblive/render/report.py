"""Rendering of verdicts: the text report (as the original analyzer laid it out) and the JSON one.

Pure functions from :class:`~tblive.doors.posthoc.RunResult` to a string or a JSON-ready dict; no
printing, no files.  The JSON shape is versioned by :data:`SCHEMA_VERSION` and documented in
README.md ("JSON report").
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Dict, Iterable, List, Optional, Sequence

from tblive import __version__
from tblive.doors.posthoc import RunResult
from tblive.judge.findings import STATUS_EMOJI, Finding, Status
from tblive.series.stats import MetricStats, format_number

SCHEMA_VERSION = 1
RULE = "=" * 80
THIN = "-" * 80

_COLOURS = {Status.OK: "\033[32m", Status.WARNING: "\033[33m", Status.CRITICAL: "\033[31m"}
_RESET = "\033[0m"


def paint(text: str, status: Status, colour: bool) -> str:
    return "%s%s%s" % (_COLOURS[status], text, _RESET) if colour else text


def _ordered(findings: Sequence[Finding]) -> List[Finding]:
    """Worst first, keeping the checks' own order within a status."""
    return sorted(findings, key=lambda f: -int(f.status))


def _unique(items: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(items))


def overall_status(results: Sequence[RunResult]) -> Status:
    return max((r.verdict.status for r in results), default=Status.OK)


def overall_summary(results: Sequence[RunResult]) -> str:
    if len(results) == 1:
        return results[0].verdict.summary
    counts = {status: sum(1 for r in results if r.verdict.status == status) for status in Status}
    worst = overall_status(results)
    return "%s: %d runs: %d critical, %d warning, %d ok." % (
        worst.name,
        len(results),
        counts[Status.CRITICAL],
        counts[Status.WARNING],
        counts[Status.OK],
    )


# -- text ----------------------------------------------------------------------------------


def _finding_lines(finding: Finding, colour: bool) -> List[str]:
    label = "%s [%s] %s" % (STATUS_EMOJI[finding.status], finding.status.name, finding.check)
    lines = [paint(label, finding.status, colour)]
    lines.extend("   " + line for line in finding.message.splitlines())
    return lines


def _metric_table(stats: Dict[str, MetricStats]) -> List[str]:
    rows = [("Metric", "First → Last", "Change", "Min", "Max", "Trend", "Points")]
    for tag in sorted(stats):
        s = stats[tag]
        change = s.relative_change()
        rows.append(
            (
                tag,
                "%s → %s" % (format_number(s.head_value()), format_number(s.tail_value())),
                "n/a" if change is None else "%+.1f%%" % (100.0 * change),
                format_number(s.min),
                format_number(s.max),
                s.trend().label,
                str(s.count),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    widths[0] = min(widths[0], 48)
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0][: widths[0]].ljust(widths[0])] + [
            cell.rjust(width) if i else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row[1:], widths[1:]), start=1)
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _skipped_line(result: RunResult) -> Optional[str]:
    skipped = result.run.skipped
    if not skipped:
        return None
    parts = ", ".join("%d %s" % (n, kind) for kind, n in sorted(skipped.items()))
    return "Not scalars (skipped): %s" % parts


def _run_section(result: RunResult, verbose: bool, colour: bool, header: bool) -> List[str]:
    verdict = result.verdict
    lines: List[str] = []
    if header:
        lines += [RULE, "RUN: %s" % result.name, RULE]
    lines.append("Path: %s" % result.run.path)
    lines.append("Total Steps: %d" % verdict.total_steps)
    lines.append("Metrics Found: %d (%d points)" % (len(result.stats), verdict.points))
    skipped = _skipped_line(result)
    if skipped:
        lines.append(skipped)
    issues = result.run.issues
    if issues:
        lines.append("Read problems: %d" % len(issues))
        lines.extend("  - %s" % issue for issue in issues[:10])
        if len(issues) > 10:
            lines.append("  - ... and %d more" % (len(issues) - 10))
    lines += ["", "SUMMARY", THIN, paint(verdict.summary, verdict.status, colour), ""]
    lines += ["DIAGNOSTICS", THIN]
    if verdict.findings:
        for finding in _ordered(verdict.findings):
            lines.extend(_finding_lines(finding, colour))
    elif not verdict.points:
        lines.append("Nothing to judge yet.")
    else:
        lines.append("No check applies: none of the logged metrics is one tblive knows.")
    if verbose and result.stats:
        lines += ["", "METRICS", THIN]
        lines.extend(_metric_table(result.stats))
    lines.append("")
    return lines


def render_text(
    log_dir: str, results: Sequence[RunResult], verbose: bool = False, colour: bool = False
) -> str:
    """The console report: header, SUMMARY, DIAGNOSTICS (and METRICS with ``verbose``)."""
    lines = [RULE, "TENSORBOARD LOG ANALYSIS (tblive %s)" % __version__, RULE]
    lines.append("Log Directory: %s" % log_dir)
    if len(results) == 1:
        lines.extend(_run_section(results[0], verbose, colour, header=False))
        return "\n".join(lines)
    total_steps = max((r.verdict.total_steps for r in results), default=0)
    lines.append("Runs Found: %d" % len(results))
    lines.append("Total Steps: %d (longest run)" % total_steps)
    lines += [
        "",
        "SUMMARY",
        THIN,
        paint(overall_summary(results), overall_status(results), colour),
    ]
    lines += ["", "RUNS", THIN]
    width = min(max(len(r.name) for r in results), 60)
    for result in sorted(results, key=lambda r: (-int(r.verdict.status), r.name)):
        status = result.verdict.status
        label = paint("%s %-8s" % (STATUS_EMOJI[status], status.name), status, colour)
        worst = _unique(f.check for f in _ordered(result.verdict.findings) if f.status == status)
        if not status:
            worst = [] if result.verdict.points else ["no scalar data"]
        lines.append(
            "%s  %s  %8d steps  %s"
            % (
                label,
                result.name[:width].ljust(width),
                result.verdict.total_steps,
                ", ".join(worst),
            )
        )
    lines.append("")
    for result in results:
        lines.extend(_run_section(result, verbose, colour, header=True))
    return "\n".join(lines)


# -- JSON ----------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def run_to_dict(result: RunResult) -> Dict[str, Any]:
    """One run's part of the JSON report."""
    verdict = result.verdict
    return {
        "name": result.name,
        "path": result.run.path,
        "status": verdict.status.name,
        "summary": verdict.summary,
        "total_steps": verdict.total_steps,
        "points": verdict.points,
        "metrics_found": len(result.stats),
        "diagnostics": [f.to_dict() for f in verdict.findings],
        "metric_stats": {tag: result.stats[tag].to_dict() for tag in sorted(result.stats)},
        "roles": result.roles.to_dict(),
        "skipped": dict(sorted(result.run.skipped.items())),
        "read_issues": [
            {"file": i.path, "offset": i.offset, "message": i.message} for i in result.run.issues
        ],
        "files": len(result.run.files),
    }


def render_json(log_dir: str, results: Sequence[RunResult]) -> Dict[str, Any]:
    """The JSON report; for one run its fields are at the top level, for several see ``runs``."""
    report: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tblive_version": __version__,
        "log_dir": log_dir,
        "status": overall_status(results).name,
        "summary": overall_summary(results),
        "total_steps": max((r.verdict.total_steps for r in results), default=0),
    }
    if len(results) == 1:
        single = run_to_dict(results[0])
        for key in ("diagnostics", "metric_stats", "metrics_found", "points", "roles", "skipped"):
            report[key] = single[key]
        report["read_issues"] = single["read_issues"]
        report["run"] = single["name"]
    else:
        runs = [run_to_dict(r) for r in results]
        report["diagnostics"] = [
            dict(finding, run=run["name"]) for run in runs for finding in run["diagnostics"]
        ]
        report["metric_stats"] = {
            "%s/%s" % (run["name"], tag): stats
            for run in runs
            for tag, stats in run["metric_stats"].items()
        }
        report["metrics_found"] = sum(run["metrics_found"] for run in runs)
        report["runs"] = runs
    return json_safe(report)


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half.

    A temporary file in the same directory, then ``os.replace``; the temporary file is removed
    if anything fails.  Raises OSError (the caller decides how loud to be).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
