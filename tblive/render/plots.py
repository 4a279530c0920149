"""Plots of a run's metrics from the bounded history, as PNG bytes (matplotlib, imported lazily).

Every figure is drawn from :meth:`MetricStats.history` (at most ``history_buckets`` buckets per
series: each bucket's mean as the line, its min..max as a faint band), so plotting never reads
an event file again and costs the same for a 1k-point and a 100M-step run.

Each plot marks where a finding's evidence lies (:func:`evidence_marks`):

* the first non-finite value of a series (red line);
* the end of the grace period (dotted line: before it slow checks cannot go CRITICAL);
* a step a finding names in its ``details`` (any key ending in ``_step`` except ``first_step`` /
  ``last_step``, the series' extent) and a range it names (any key ending in ``_steps``,
  ``_window`` or ``_range`` holding ``[start, end]``); per-agent findings are searched in
  ``details["agents"]``;
* otherwise, for a WARNING or CRITICAL finding, its metric's recent window (shaded): the last
  :data:`TAIL_FRACTION` of its points, which the "now" figure of a check is computed on.

matplotlib is used through its object API (``Figure`` + the Agg canvas): no pyplot state, no
display, safe to call from any thread.  Without matplotlib every function returns ``None``.
Nothing here prints or raises on ordinary data.
"""

from __future__ import annotations

import io
import logging
import math
import re
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

from tblive.judge.findings import Finding, Status

if TYPE_CHECKING:  # pragma: no cover
    from tblive.series.stats import MetricStats

log = logging.getLogger(__name__)

#: (panel title, role name) of the key metrics, in display order; ``main_reward`` falls back to
#: ``reward`` when the roles have no main reward
KEY_PANELS = (
    ("main reward", "main_reward"),
    ("success", "success"),
    ("entropy", "entropy"),
    ("value loss", "value_loss"),
    ("policy loss", "policy_loss"),
    ("grad norm", "grad_norm"),
    ("reward components", "reward_component"),
)
#: most lines drawn in one panel (a 64-agent run would be unreadable otherwise)
MAX_LINES = 8
#: status -> colour of its marks
STATUS_COLOURS = {Status.OK: "#2e7d32", Status.WARNING: "#ef8f00", Status.CRITICAL: "#c62828"}
_LINE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: share of a series' points shaded as its recent window when a finding names no steps (the
#: share ``MetricStats.tail_value`` averages)
TAIL_FRACTION = 0.10
#: step keys that only say where a series starts or ends: not evidence
_EXTENT_KEYS = ("first_step", "last_step")
_RANGE_KEY = re.compile(r"(_steps|_window|_range)$")


class Mark(NamedTuple):
    """Something drawn over a plot: a vertical line (``start == end``) or a shaded step range."""

    start: float
    end: float
    label: str
    status: Status


def matplotlib_available() -> bool:
    """True when matplotlib can be imported (the ``tblive[plots]`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    """A new Figure on the Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


# -- which tags a panel or a finding is about --------------------------------------------------


def role_tags(roles: Any, role: str, stats: Mapping[str, MetricStats]) -> List[str]:
    """The tags ``roles`` puts in ``role`` that have data (``main_reward`` falls back to reward)."""
    refs = list(getattr(roles, role, None) or [])
    if role == "main_reward" and not refs:
        refs = list(getattr(roles, "reward", None) or [])[:1]
    tags = []
    for ref in refs:
        tag = getattr(ref, "tag", ref)
        if tag in stats and stats[tag].finite_count and tag not in tags:
            tags.append(tag)
    return tags


def finding_tags(finding: Finding, stats: Mapping[str, MetricStats]) -> List[str]:
    """The series a finding is about, in a stable order.

    Its ``metric`` when that is a series; for a per-agent summary (``agent*/base``) every agent's
    ``base`` series, the flagged ones first; otherwise the series its message names.
    """
    metric = finding.metric
    if metric and metric in stats:
        return [metric]
    tags: List[str] = []
    if metric and "*" in metric:
        base = metric.split("/", 1)[-1]
        members = sorted(tag for tag in stats if tag.endswith("/" + base))
        worst = finding.details.get("worst") if isinstance(finding.details, dict) else None
        flagged = set(finding.details.get("flagged") or []) if finding.details else set()
        first = [t for t in members if t == worst or t.split("/", 1)[0] in flagged]
        tags = first + [t for t in members if t not in first]
    if not tags:
        named = [tag for tag in stats if tag and tag in finding.message]
        # a tag that is part of a longer named tag is not named by itself
        tags = [t for t in named if not any(t != o and t in o for o in named)]
        tags.sort(key=finding.message.index)
    return [tag for tag in tags if stats[tag].finite_count]


# -- evidence ----------------------------------------------------------------------------------


def grace_end(stats: MetricStats, grace: Any) -> Optional[float]:
    """The step where ``stats`` leaves grace (see ``Grace``), or None when it never was in it.

    ``grace`` needs ``min_points``, ``min_steps``, ``expected_steps`` and ``fraction``; the step
    of the ``min_points``-th finite point is read off the bounded history (interpolated within
    its bucket).
    """
    if grace is None:
        return None
    ends: List[float] = []
    history = stats.history()
    min_points = int(getattr(grace, "min_points", 0) or 0)
    if min_points and len(history.counts):
        total = history.counts.cumsum()
        reached = int((total < min_points).sum())  # the bucket holding the min_points-th point
        if reached >= len(total):
            ends.append(math.inf)
        else:
            # interpolate inside the bucket (its points are spread over first..last step)
            count = int(history.counts[reached])
            before = int(total[reached]) - count
            share = (min_points - before) / float(count)
            first, last = float(history.first_steps[reached]), float(history.last_steps[reached])
            ends.append(first + share * (last - first) if count > 1 else last)
    min_steps = float(getattr(grace, "min_steps", 0) or 0)
    if min_steps:
        ends.append(min_steps)
    expected = float(getattr(grace, "expected_steps", 0) or 0)
    if expected:
        ends.append(float(getattr(grace, "fraction", 0.0) or 0.0) * expected)
    if not ends:
        return None
    end = max(ends)
    first = stats.first_step
    if first is None or end <= first:
        return None
    return end


def tail_window(stats: MetricStats, fraction: float = TAIL_FRACTION) -> Optional[tuple]:
    """``(first, last)`` step of the last ``fraction`` of a series' finite points (from history).

    That is the part a check's "now" figure (``tail_value``) is computed on; None when empty.
    """
    history = stats.history()
    if not len(history.counts):
        return None
    from_end = history.counts[::-1].cumsum()
    target = max(1.0, fraction * float(from_end[-1]))
    reached = int((from_end < target).sum())  # buckets wholly inside, counted from the end
    first = history.first_steps[len(history.counts) - 1 - min(reached, len(from_end) - 1)]
    return float(first), float(history.last_steps[-1])


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _label(key: str) -> str:
    """``last_new_best_step -> "last new best"``, ``rise_window -> "rise"``."""
    return re.sub(r"_(step|steps|window|range)$", "", key).replace("_", " ")


def _detail_marks(details: Any, status: Status, prefix: str = "") -> List[Mark]:
    marks: List[Mark] = []
    if not isinstance(details, dict):
        return marks
    for key, value in details.items():
        key = str(key)
        if key == "agents" and isinstance(value, dict):
            for agent, sub in value.items():
                marks.extend(_detail_marks(sub, status, "%s: " % agent))
            continue
        if key.endswith("_step") and key not in _EXTENT_KEYS:
            step = _number(value)
            if step is not None:
                marks.append(Mark(step, step, prefix + _label(key), status))
        elif _RANGE_KEY.search(key) and isinstance(value, (list, tuple)) and len(value) == 2:
            start, end = _number(value[0]), _number(value[1])
            if start is not None and end is not None:
                marks.append(Mark(min(start, end), max(start, end), prefix + _label(key), status))
    return marks


def evidence_marks(
    tags: Sequence[str],
    stats: Mapping[str, MetricStats],
    findings: Iterable[Finding] = (),
    grace: Any = None,
) -> List[Mark]:
    """The marks of a plot of ``tags``: see the module docstring for what is marked."""
    marks: List[Mark] = []
    for tag in tags:
        step = stats[tag].first_nonfinite_step
        if step is not None:
            marks.append(Mark(float(step), float(step), "first non-finite", Status.CRITICAL))
    ends = [grace_end(stats[tag], grace) for tag in tags]
    ends = [e for e in ends if e is not None and math.isfinite(e)]
    if ends:
        marks.append(Mark(max(ends), max(ends), "grace end", Status.OK))
    for finding in findings:
        if finding.status == Status.OK:
            continue
        about = finding_tags(finding, stats)
        if not set(about) & set(tags):
            continue
        found = _detail_marks(finding.details, finding.status)
        if not found:
            window = tail_window(stats[about[0]])
            if window is not None:
                found = [Mark(window[0], window[1], "recent", finding.status)]
        marks.extend(found)
    return list(dict.fromkeys(marks))


# -- drawing -----------------------------------------------------------------------------------


def _short(tag: str, tags: Sequence[str]) -> str:
    """A legend label: the agent prefix when the tags differ only by it, else the tag."""
    bases = {t.split("/", 1)[-1] for t in tags}
    if len(bases) == 1 and len(tags) > 1 and "/" in tag:
        return tag.split("/", 1)[0]
    return tag if len(tag) <= 40 else "..." + tag[-37:]


def _draw(
    axes: Any,
    title: str,
    tags: Sequence[str],
    stats: Mapping[str, MetricStats],
    marks: Sequence[Mark],
    labels: Optional[Sequence[str]] = None,
    mark_labels: bool = False,
) -> None:
    for number, tag in enumerate(tags[:MAX_LINES]):
        history = stats[tag].history()
        if not len(history.steps):
            continue
        colour = _LINE_COLOURS[number % len(_LINE_COLOURS)]
        label = labels[number] if labels else _short(tag, tags)
        axes.fill_between(
            history.steps, history.mins, history.maxs, color=colour, alpha=0.15, linewidth=0
        )
        axes.plot(history.steps, history.means, color=colour, linewidth=1.4, label=label)
    for mark in marks:
        colour = STATUS_COLOURS[mark.status]
        if mark.start == mark.end:
            style = ":" if mark.label == "grace end" else "--"
            axes.axvline(
                mark.start,
                color=colour if mark.label != "grace end" else "#777777",
                linestyle=style,
                linewidth=1.3,
            )
        else:
            axes.axvspan(mark.start, mark.end, color=colour, alpha=0.12, linewidth=0)
        if mark_labels:
            low, high = axes.get_xlim()
            right = mark.start > low + 0.6 * (high - low)  # keep the label inside the plot
            axes.text(
                mark.end if right else mark.start,
                0.98,
                mark.label + " " if right else " " + mark.label,
                transform=axes.get_xaxis_transform(),
                fontsize=7,
                color=colour if mark.label != "grace end" else "#555555",
                va="top",
                ha="right" if right else "left",
            )
    axes.set_title(title, fontsize=10, loc="left")
    axes.tick_params(labelsize=8)
    axes.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    axes.grid(True, color="#e6e6e6", linewidth=0.6)
    if len(tags) > 1 or labels:
        axes.legend(fontsize=7, loc="best", frameon=False)


def key_panels(roles: Any, stats: Mapping[str, MetricStats]) -> List[tuple]:
    """``[(title, tags)]`` of the key metrics this run has, in :data:`KEY_PANELS` order."""
    panels = []
    for title, role in KEY_PANELS:
        tags = role_tags(roles, role, stats)
        if tags:
            panels.append((title, tags[:MAX_LINES]))
    return panels


def run_png(
    stats: Mapping[str, MetricStats],
    roles: Any,
    findings: Sequence[Finding] = (),
    grace: Any = None,
    columns: int = 3,
) -> Optional[bytes]:
    """Small multiples of a run's key metrics with their evidence marks, as one PNG.

    None without matplotlib or when the run has none of the key metrics.
    """
    if not matplotlib_available():
        return None
    panels = key_panels(roles, stats)
    if not panels:
        return None
    columns = max(1, min(columns, len(panels)))
    rows = int(math.ceil(len(panels) / float(columns)))
    figure = _figure(4.0 * columns, 2.7 * rows)
    for number, (title, tags) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, number + 1)
        marks = evidence_marks(tags, stats, findings, grace)
        _draw(axes, title, tags, stats, marks, mark_labels=True)
    # fixed margins in inches (tight_layout would cost ~40% of the figure's time)
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=0.75 / width,
        right=1 - 0.15 / width,
        bottom=0.45 / height,
        top=1 - 0.35 / height,
        wspace=0.28,
        hspace=0.42,
    )
    return _png(figure)


def finding_png(
    stats: Mapping[str, MetricStats],
    finding: Finding,
    run: str = "",
    grace: Any = None,
    width: float = 8.0,
    height: float = 3.2,
) -> Optional[bytes]:
    """The curves behind one finding, with its evidence marked, as PNG bytes.

    ``stats`` maps a run's tags to their statistics (``RunRecord.series``, ``Run.sinks``, the
    monitor's series); ``grace`` is the config's ``Grace`` (or None: no grace line).  Returns None
    (never raises) when matplotlib is missing, the finding names no series with finite values,
    or drawing fails.  About 50-150 ms a figure; the first call also imports matplotlib (~1 s).
    """
    try:
        if not matplotlib_available():
            return None
        tags = finding_tags(finding, stats)[:MAX_LINES]
        if not tags:
            return None
        figure = _figure(width, height)
        axes = figure.add_subplot(1, 1, 1)
        title = "%s[%s] %s" % (run + ": " if run else "", finding.status.name, finding.check)
        marks = evidence_marks(tags, stats, [finding], grace)
        _draw(axes, title, tags, stats, marks, mark_labels=True)
        axes.set_xlabel("step", fontsize=8)
        figure.tight_layout()
        return _png(figure)
    except Exception:  # a picture is a bonus: never lose the alert over it
        log.debug("finding_png failed for %s", finding.key, exc_info=True)
        return None


def overlay_png(
    series: Sequence[tuple], title: str, width: float = 4.0, height: float = 2.7
) -> Optional[bytes]:
    """One plot overlaying several runs' series: ``series`` is ``[(label, MetricStats)]``."""
    if not matplotlib_available() or not series:
        return None
    stats = {"%d" % i: s for i, (_, s) in enumerate(series) if s.finite_count}
    if not stats:
        return None
    labels = [label for i, (label, s) in enumerate(series) if "%d" % i in stats]
    figure = _figure(width, height)
    axes = figure.add_subplot(1, 1, 1)
    _draw(axes, title, list(stats), stats, [], labels=labels)
    figure.tight_layout()
    return _png(figure)


def history_points(stats: MetricStats) -> Dict[str, List[float]]:
    """``{"steps": [...], "values": [...]}`` of the bounded history (for inline SVG sparklines)."""
    history = stats.history()
    return {"steps": [float(s) for s in history.steps], "values": [float(v) for v in history.means]}
