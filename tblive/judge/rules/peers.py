"""Peers: a seed far behind every sibling seed of its configuration, at the same step.

Sweeps run several seeds of one configuration (what "same configuration" means is decided by
the door, see :func:`tblive.run.find_siblings`; the siblings arrive in
``RunContext.siblings`` as run -> tag -> statistics).  For each primary signal of the run (its
success tags and its main reward) the check compares the run with every sibling that logs the
same tag and reached at least :data:`MIN_COMMON_SHARE` of this run's steps:

* The comparison step ``S`` is the shortest of those runs' last steps (this run included), so
  every level is taken at the same point of training; a run's *level* is the mean of its
  history over the last :data:`WINDOW_SHARE` of ``[0, S]``, its *start* the mean over the first
  tenth, its *noise* the spread of its history in the window.
* The run is **far behind** when its level is below the lowest sibling's by a gap ``G`` that
  is at least ``spread`` times the siblings' spread (the sample standard deviation of their
  levels), at least ``spread`` times the typical noise of the runs in the window, and at least
  ``progress`` (a share) of what the siblings gained since their start; and the siblings did
  gain something (more than ``spread`` times the noise: among runs that all stay flat nobody
  is behind, whatever their offsets).  That is a WARNING naming the siblings, their levels and the gap.  Never
  CRITICAL: a seed behind its peers may still be learning, only slower.
* Otherwise an OK finding says where the run stands among its siblings.  Fewer than
  :data:`MIN_SIBLINGS` comparable siblings: no finding.

Higher is better for both signals.  Thresholds: ``[checks.peers]`` ``spread`` (default 2.0)
and ``progress`` (default 1/3) when the config defines them, else the module defaults.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import Judgement, View, fmt, judge_all
from tblive.series.stats import MetricStats

KEY = "peers"
NAME = "Peers"

#: fewest comparable siblings for a comparison
MIN_SIBLINGS = 2
#: a level is the mean over this last share of the common steps
WINDOW_SHARE = 0.2
#: the start is the mean over this first share of the common steps
START_SHARE = 0.1
#: a sibling must have reached this share of the run's last step to be compared
MIN_COMMON_SHARE = 0.5
#: siblings named in a message (the rest are counted)
MAX_NAMED = 4


class _Level(NamedTuple):
    level: float
    noise: float
    start: float


def _mean(means: np.ndarray, counts: np.ndarray) -> float:
    weights = np.maximum(counts.astype(np.float64), 1.0)
    return float(np.sum(means * weights) / np.sum(weights))


def _level(stats: MetricStats, step: float) -> Optional[_Level]:
    """Level, noise and start of ``stats`` at ``step`` from its bounded history; None if the
    history has nothing near ``step``.  Memoised on the statistics until they change: in a sweep
    every sibling's level at the common step is computed once, not once per sibling."""
    cached = getattr(stats, "cached", None)
    if cached is not None:
        return cached(("peers.level", float(step)), lambda: _compute_level(stats, step))
    return _compute_level(stats, step)


def _compute_level(stats: MetricStats, step: float) -> Optional[_Level]:
    history = stats.history()
    if history.means.size == 0 or step <= 0:
        return None
    low = step * (1.0 - WINDOW_SHARE)
    inside = (history.steps >= low) & (history.steps <= step)
    if not inside.any():  # coarse buckets: any bucket overlapping the window
        inside = (history.first_steps <= step) & (history.last_steps >= low)
    if not inside.any():
        return None
    means = history.means[inside]
    level = _mean(means, history.counts[inside])
    noise = float(np.std(means)) if means.size >= 2 else 0.0
    early = history.steps <= step * START_SHARE
    if not early.any():
        early = np.zeros(history.means.size, bool)
        early[0] = True
    start = _mean(history.means[early], history.counts[early])
    return _Level(level, noise, start)


def _compare(
    tag: str,
    stats: MetricStats,
    siblings: Mapping[str, Mapping[str, MetricStats]],
    spread_factor: float,
    progress_share: float,
) -> Optional[Judgement]:
    if stats.finite_count == 0 or stats.last_step is None:
        return None
    mine_last = float(stats.last_step)
    peers: Dict[str, MetricStats] = {}
    for name, series in siblings.items():
        other = series.get(tag)
        if other is None or other.finite_count == 0 or other.last_step is None:
            continue
        if other.last_step >= MIN_COMMON_SHARE * mine_last:
            peers[name] = other
    if len(peers) < MIN_SIBLINGS:
        return None
    step = min([mine_last] + [float(s.last_step) for s in peers.values()])  # type: ignore[misc]
    mine = _level(stats, step)
    if mine is None:
        return None
    levels: Dict[str, _Level] = {}
    for name, other in peers.items():
        found = _level(other, step)
        if found is not None:
            levels[name] = found
    if len(levels) < MIN_SIBLINGS:
        return None
    sibling_levels = np.array([item.level for item in levels.values()])
    spread = float(np.std(sibling_levels, ddof=1))
    noise = float(np.median([item.noise for item in levels.values()] + [mine.noise]))
    progress = float(np.median([item.level - item.start for item in levels.values()]))
    lowest = float(np.min(sibling_levels))
    gap = lowest - mine.level
    needed = max(spread_factor * spread, spread_factor * noise, progress_share * max(progress, 0))
    ordered: List[Tuple[str, float]] = sorted(
        ((name, item.level) for name, item in levels.items()), key=lambda item: -item[1]
    )
    named = ", ".join("%s %s" % (name, fmt(value)) for name, value in ordered[:MAX_NAMED])
    if len(ordered) > MAX_NAMED:
        named += " and %d more" % (len(ordered) - MAX_NAMED)
    details = {
        "step": step,
        "window": [step * (1.0 - WINDOW_SHARE), step],
        "level": mine.level,
        "sibling_levels": {name: value for name, value in ordered},
        "gap": gap,
        "sibling_spread": spread,
        "noise": noise,
        "sibling_progress": progress,
        "gap_needed": needed,
    }
    first = int(step * (1.0 - WINDOW_SHARE))
    where = f"at step {int(step):,} (mean over steps {first:,}..{int(step):,})"
    learned = progress > spread_factor * noise and progress > 0
    details["siblings_improved"] = learned
    if learned and gap > 0 and gap >= needed:
        spread_text = (
            "%.1fx their spread (%s)" % (gap / spread, fmt(spread))
            if spread > 0
            else "far more than any difference among them (they agree exactly)"
        )
        return Judgement(
            Status.WARNING,
            "%s is far behind all %d sibling runs (same configuration, other seeds) %s: %s here "
            "vs %s. The gap to the closest sibling, %s, is %s and %.0f%% of what they gained "
            "since their start. Try: compare this seed's entropy, KL and gradient norms with "
            "its siblings'; restart it or leave it out of the sweep's results."
            % (
                tag,
                len(levels),
                where,
                fmt(mine.level),
                named,
                fmt(gap),
                spread_text,
                100.0 * gap / progress,
            ),
            details,
        )
    head = "%s: %s here vs %s %s" % (tag, fmt(mine.level), named, where)
    if not learned:
        text = "%s; the siblings have not improved beyond their noise, so none is behind." % head
    elif gap > 0:
        text = "%s; below them by %s, within the spread seeds of one configuration show." % (
            head,
            fmt(gap),
        )
    elif mine.level > float(np.max(sibling_levels)):
        text = "%s; ahead of its siblings." % head
    else:
        text = "%s; within the siblings' range." % head
    return Judgement(Status.OK, text, details)


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if context is None or not context.siblings:
        return []
    spread_factor = config.threshold(KEY, "spread")
    progress_share = config.threshold(KEY, "progress")
    refs: List[MetricRef] = []
    seen = set()
    for ref in list(roles.success) + list(roles.main_reward):
        if ref.tag not in seen:
            seen.add(ref.tag)
            refs.append(ref)
    siblings = context.siblings

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        return _compare(ref.tag, stats, siblings, spread_factor, progress_share)

    return judge_all(NAME, refs, view, judge)
