"""Rendering of verdicts: the text report (as the original analyzer laid it out) and the JSON one.

Pure functions from :class:`~tblive.run.RunRecord` to a string or a JSON-ready dict; no
printing, no files.  The JSON shape is versioned by :data:`SCHEMA_VERSION` and documented in
README.md ("JSON report").
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tblive import __version__
from tblive.atomic import write_atomically  # noqa: F401  (re-exported: the doors import it here)
from tblive.judge.findings import STATUS_EMOJI, Finding, Status
from tblive.render.output import (
    display_width,
    distinct_names,
    format_count,
    pad,
    shorten,
    wrap,
)
from tblive.run import RunRecord as RunResult
from tblive.series.stats import MetricStats
from tblive.textfmt import format_number, json_safe

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


NO_DATA = "NO DATA"


def has_data(result: RunResult) -> bool:
    """False for a run with no scalar point and no finding (empty, header-only, corrupt or
    unreadable files): it is shown as NO DATA, never as OK."""
    return bool(result.verdict.points or result.verdict.findings)


def status_label(result: RunResult) -> str:
    """The status a run is shown with: its verdict's, or NO DATA."""
    return result.verdict.status.name if has_data(result) else NO_DATA


def lost_data(result: RunResult) -> int:
    """How many read problems lost data (unreadable files or directories, a file's rest)."""
    return sum(1 for i in getattr(result.run, "issues", []) if getattr(i, "fatal", False))


def restarts(result: RunResult) -> Dict[str, int]:
    """``{"rewinds": n, "points_discarded": m}``: what restarts cost the run's series."""
    run = result.run
    found = getattr(run, "restarts", None) or getattr(
        getattr(run, "reader", None), "restarts", None
    )
    return dict(found) if found else {"rewinds": 0, "points_discarded": 0}


def worst_first(results: Sequence[RunResult], names: Sequence[str]) -> List[int]:
    """Indexes of ``results`` in table order: CRITICAL, WARNING, OK, NO DATA; by name within."""

    def key(index: int) -> Tuple[int, str]:
        result = results[index]
        rank = -int(result.verdict.status) if has_data(result) else 1
        return rank, names[index]

    return sorted(range(len(results)), key=key)


def worst_checks(result: RunResult) -> List[str]:
    """What the runs table says about a run: the checks at its status, or why it has none."""
    status = result.verdict.status
    worst = _unique(f.check for f in _ordered(result.verdict.findings) if f.status == status)
    if not status:
        worst = [] if has_data(result) else ["no scalar data"]
    if lost_data(result):
        worst.append("incomplete (read problems)")
    return worst


def run_summary(result: RunResult) -> str:
    """The verdict's sentence, plus a warning when files or parts of files could not be read."""
    summary = result.verdict.summary
    lost = lost_data(result)
    if lost:
        summary += " INCOMPLETE: %d read problem%s lost data (see read issues)." % (
            lost,
            "" if lost == 1 else "s",
        )
    return summary


def overall_status(results: Sequence[RunResult]) -> Status:
    return max((r.verdict.status for r in results), default=Status.OK)


def overall_label(results: Sequence[RunResult]) -> str:
    """The worst status of the runs with data; NO DATA when no run had any."""
    if not any(has_data(r) for r in results):
        return NO_DATA
    return overall_status(results).name


def overall_summary(results: Sequence[RunResult]) -> str:
    if len(results) == 1:
        return run_summary(results[0])
    with_data = [r for r in results if has_data(r)]
    counts = {status: sum(1 for r in with_data if r.verdict.status == status) for status in Status}
    empty = len(results) - len(with_data)
    return "%s: %d runs: %d critical, %d warning, %d ok%s." % (
        overall_label(results),
        len(results),
        counts[Status.CRITICAL],
        counts[Status.WARNING],
        counts[Status.OK],
        ", %d no data" % empty if empty else "",
    )


# -- text ----------------------------------------------------------------------------------


def _finding_lines(finding: Finding, colour: bool, width: int = 0) -> List[str]:
    label = "%s [%s] %s" % (STATUS_EMOJI[finding.status], finding.status.name, finding.check)
    lines = [paint(label, finding.status, colour)]
    lines.extend(wrap(finding.message, width, "   "))
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
                format_count(s.count),
            )
        )
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    widths[0] = min(widths[0], 48)
    lines = []
    for number, row in enumerate(rows):
        cells = [pad(row[0][: widths[0]], widths[0])] + [
            pad(cell, width, right=True) for cell, width in zip(row[1:], widths[1:])
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


def _length_line(result: RunResult) -> str:
    """``Planned Length: 100,000,000 steps (num_env_steps in ../config.json)``."""
    planned = getattr(result, "planned_steps", None)
    if planned:
        return "Planned Length: %s steps (%s)" % (format_count(planned), result.planned_source)
    if getattr(result, "state", "") == "finished":
        return "Planned Length: unknown (the run has ended: judged over its own length)"
    return "Planned Length: unknown (judged by the points and steps seen so far)"


def _state_line(result: RunResult) -> str:
    """``Judged As: finished (summary.json is there ...)``: the state the verdict assumed."""
    state = getattr(result, "state", "unknown")
    reason = getattr(result, "state_reason", "")
    return "Judged As: %s%s" % (state, " (%s)" % reason if reason else "")


def _run_section(
    result: RunResult, verbose: bool, colour: bool, header: str, width: int
) -> List[str]:
    verdict = result.verdict
    stats = result.stats
    lines: List[str] = []
    if header:
        lines += [RULE, "RUN: %s" % header, RULE]
    lines.append("Path: %s" % result.run.path)
    lines.append("Total Steps: %s" % format_count(verdict.total_steps))
    lines.extend(wrap(_length_line(result), width))
    lines.extend(wrap(_state_line(result), width))
    lines.append(
        "Metrics Found: %s (%s points)" % (format_count(len(stats)), format_count(verdict.points))
    )
    skipped = _skipped_line(result)
    if skipped:
        lines.append(skipped)
    rewound = restarts(result)
    if rewound["rewinds"]:
        lines.append(
            "Restarts: %s series rewound, %s points discarded"
            % (format_count(rewound["rewinds"]), format_count(rewound["points_discarded"]))
        )
    issues = result.run.issues
    if issues:
        lines.append("Read problems: %d" % len(issues))
        for issue in issues[:10]:
            lines.extend(wrap("- %s" % issue, width, "  "))
        if len(issues) > 10:
            lines.append("  - ... and %d more" % (len(issues) - 10))
    lines += ["", "SUMMARY", THIN, paint(run_summary(result), verdict.status, colour), ""]
    lines += ["DIAGNOSTICS", THIN]
    if verdict.findings:
        for finding in _ordered(verdict.findings):
            lines.extend(_finding_lines(finding, colour, width))
    elif not verdict.points:
        lines.append("Nothing to judge yet.")
    else:
        lines.append("No check applies: none of the logged metrics is one tblive knows.")
    if verbose and stats:
        lines += ["", "METRICS", THIN]
        lines.extend(_metric_table(stats))
    lines.append("")
    return lines


def run_names(results: Sequence[RunResult]) -> List[str]:
    """The runs' names, made distinct by a path suffix where two share one (see output.py)."""
    return distinct_names([r.name for r in results], [r.run.path for r in results])


def render_text(
    log_dir: str,
    results: Sequence[RunResult],
    verbose: bool = False,
    colour: bool = False,
    width: int = 0,
) -> str:
    """The console report: header, SUMMARY, DIAGNOSTICS (and METRICS with ``verbose``).

    Messages are wrapped to ``width`` columns (0: not wrapped).
    """
    lines = [RULE, "TENSORBOARD LOG ANALYSIS (tblive %s)" % __version__, RULE]
    lines.append("Log Directory: %s" % log_dir)
    if len(results) == 1:
        lines.extend(_run_section(results[0], verbose, colour, "", width))
        return "\n".join(lines)
    names = run_names(results)
    total_steps = max((r.verdict.total_steps for r in results), default=0)
    lines.append("Runs Found: %s" % format_count(len(results)))
    lines.append("Total Steps: %s (longest run)" % format_count(total_steps))
    lines += [
        "",
        "SUMMARY",
        THIN,
        paint(overall_summary(results), overall_status(results), colour),
    ]
    lines += ["", "RUNS", THIN]
    name_width = min(max(display_width(n) for n in names), 60)
    steps_width = max(len(format_count(r.verdict.total_steps)) for r in results)
    order = worst_first(results, names)
    for index in order:
        result = results[index]
        status = result.verdict.status
        if has_data(result):
            label = paint("%s %-8s" % (STATUS_EMOJI[status], status.name), status, colour)
        else:
            label = "%s %-8s" % ("\u26aa", NO_DATA)
        worst = worst_checks(result)
        lines.append(
            (
                "%s  %s  %s steps  %s"
                % (
                    label,
                    pad(shorten(names[index], name_width), name_width),
                    format_count(result.verdict.total_steps).rjust(steps_width),
                    ", ".join(worst),
                )
            ).rstrip()
        )
    lines.append("")
    for name, result in zip(names, results):
        lines.extend(_run_section(result, verbose, colour, name, width))
    return "\n".join(lines)


# -- JSON ----------------------------------------------------------------------------------


def run_to_dict(result: RunResult, name: Optional[str] = None) -> Dict[str, Any]:
    """One run's part of the JSON report (linear in its number of series)."""
    verdict = result.verdict
    stats = result.stats  # built once: a property that maps every series
    return {
        "name": result.name if name is None else name,
        "path": result.run.path,
        "status": status_label(result),
        "summary": run_summary(result),
        "total_steps": verdict.total_steps,
        "points": verdict.points,
        "metrics_found": len(stats),
        "diagnostics": [f.to_dict() for f in verdict.findings],
        "metric_stats": {tag: stats[tag].to_dict() for tag in sorted(stats)},
        "roles": result.roles.to_dict(),
        "skipped": dict(sorted(result.run.skipped.items())),
        "read_issues": [
            {"file": i.path, "offset": i.offset, "message": i.message, "fatal": i.fatal}
            for i in result.run.issues
        ],
        "complete": not lost_data(result),
        "restarts": restarts(result),
        "files": len(result.run.files),
        **result.to_dict(),  # planned_steps, planned_source, state, state_reason, siblings
    }


def render_json(log_dir: str, results: Sequence[RunResult]) -> Dict[str, Any]:
    """The JSON report; for one run its fields are at the top level, for several see ``runs``."""
    report: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tblive_version": __version__,
        "log_dir": log_dir,
        "status": overall_label(results),
        "summary": overall_summary(results),
        "total_steps": max((r.verdict.total_steps for r in results), default=0),
    }
    if len(results) == 1:
        single = run_to_dict(results[0])
        for key in ("diagnostics", "metric_stats", "metrics_found", "points", "roles", "skipped"):
            report[key] = single[key]
        for key in ("read_issues", "complete", "restarts"):
            report[key] = single[key]
        report["run"] = single["name"]
        for key in ("planned_steps", "planned_source", "state", "state_reason", "siblings"):
            report[key] = single[key]
    else:
        runs = [run_to_dict(r, n) for r, n in zip(results, run_names(results))]
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
