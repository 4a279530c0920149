"""Several runs side by side: key metrics (final, best, trend) and each check's status.

Pure rendering over :class:`~tblive.run.RunRecord`; the CLI prints it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tblive.judge.findings import STATUS_EMOJI, Status
from tblive.judge.roles import MetricRef
from tblive.render.output import display_width, distinct_names, format_count, pad
from tblive.render.report import paint
from tblive.run import RunRecord as RunResult
from tblive.series.stats import MetricStats
from tblive.textfmt import format_number, json_safe

#: (label, role name, higher is better) of the metrics compared, in display order
KEY_ROLES: Tuple[Tuple[str, str, Optional[bool]], ...] = (
    ("reward", "main_reward", True),
    ("success", "success", True),
    ("entropy", "entropy", None),
    ("value loss", "value_loss", False),
    ("policy loss", "policy_loss", None),
    ("grad norm", "grad_norm", None),
)


def key_metric(result: RunResult, role: str) -> Optional[MetricRef]:
    """The first tag ``result`` has in ``role`` (``main_reward`` falls back to ``reward``)."""
    refs: List[MetricRef] = list(getattr(result.roles, role, []) or [])
    if role == "main_reward" and not refs:
        refs = list(result.roles.reward)
    return refs[0] if refs else None


def _figures(stats: MetricStats, higher_is_better: Optional[bool]) -> Dict[str, Any]:
    best: Optional[float] = None
    if higher_is_better is True:
        best = stats.max
    elif higher_is_better is False:
        best = stats.min
    return {
        "final": stats.tail_value(),
        "last": stats.last_value,
        "best": best,
        "trend": stats.trend().label,
        "count": stats.count,
    }


def compare_to_dict(results: Sequence[RunResult]) -> Dict[str, Any]:
    """JSON-ready comparison: per run its status, key metrics and per-check statuses.

    Run names are made distinct (:func:`~tblive.render.output.distinct_names`): runs that share
    a name (``logs`` in every seed folder) are named by the shortest path suffix that differs.
    """
    names = distinct_names([r.name for r in results], [r.run.path for r in results])
    runs = []
    for name, result in zip(names, results):
        metrics = {}
        for label, role, better in KEY_ROLES:
            ref = key_metric(result, role)
            if ref is None or ref.tag not in result.stats:
                continue
            metrics[label] = dict(_figures(result.stats[ref.tag], better), tag=ref.tag)
        checks: Dict[str, str] = {}
        for finding in result.verdict.findings:
            previous = checks.get(finding.check)
            if previous is None or Status[previous] < finding.status:
                checks[finding.check] = finding.status.name
        runs.append(
            {
                "name": name,
                "path": result.run.path,
                "status": result.verdict.status.name,
                "total_steps": result.verdict.total_steps,
                "metrics": metrics,
                "checks": checks,
            }
        )
    return json_safe({"schema_version": 1, "runs": runs})


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value) if math.isfinite(value) else str(value)
    return str(value)


def compare_table(results: Sequence[RunResult], colour: bool = False) -> str:
    """A text table: one column per run, rows for status, key metrics and checks."""
    data = compare_to_dict(results)
    runs = data["runs"]
    names = [run["name"] for run in runs]
    rows: List[Tuple[str, List[str]]] = []
    rows.append(
        ("status", ["%s %s" % (STATUS_EMOJI[Status[r["status"]]], r["status"]) for r in runs])
    )
    rows.append(("steps", [format_count(r["total_steps"]) for r in runs]))
    for label, _, better in KEY_ROLES:
        if not any(label in r["metrics"] for r in runs):
            continue
        tags = {r["metrics"][label]["tag"] for r in runs if label in r["metrics"]}
        title = label if len(tags) != 1 else "%s (%s)" % (label, next(iter(tags)))
        rows.append(
            (title + " final", [_cell(r["metrics"].get(label, {}).get("final")) for r in runs])
        )
        if better is not None:
            rows.append(("  best", [_cell(r["metrics"].get(label, {}).get("best")) for r in runs]))
        rows.append(("  trend", [_cell(r["metrics"].get(label, {}).get("trend")) for r in runs]))
    checks = sorted({check for r in runs for check in r["checks"]})
    for check in checks:
        rows.append(("check: " + check, [r["checks"].get(check, "-") for r in runs]))
    first_width = max(display_width(title) for title, _ in rows)
    widths = [
        max(display_width(name), *(display_width(cells[i]) for _, cells in rows))
        for i, name in enumerate(names)
    ]
    lines = ["COMPARISON OF %d RUNS" % len(runs), "=" * 80]
    lines.append(
        "  ".join([" " * first_width] + [pad(n, w) for n, w in zip(names, widths)]).rstrip()
    )
    for title, cells in rows:
        rendered = []
        for cell, width in zip(cells, widths):
            text = pad(cell, width)
            status = cell.split()[-1] if cell.split() else ""
            if status in Status.__members__:
                text = paint(text, Status[status], colour)
            rendered.append(text)
        lines.append("  ".join([pad(title, first_width)] + rendered).rstrip())
    return "\n".join(lines)
