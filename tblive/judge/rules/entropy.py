"""Entropy: rising entropy means the policy drifts towards randomness.

Works on entropy, on SB3's ``entropy_loss`` (= -entropy, sign flipped) and on Gaussian action
std (an entropy proxy). A significant rise of at least ``rise`` (relative) is:
* WARNING while a primary signal (main return, success, evaluation return) improves now or
  keeps its gain -- many successful runs (e.g. MAPush MAPPO) raise a learnable std all run long;
* CRITICAL when nothing improves and the run's failure signs have persisted long enough (see
  ``_evidence.Evidence``: rising entropy alone needs 3x the grace period, with zero success or a
  dead reward component 2x, with both 1x); WARNING before that.
Entropy that collapses to ``collapse`` of its early level while the reward does not improve
is a WARNING (premature convergence). Otherwise falling or stable entropy is OK.
"""

from __future__ import annotations

from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import MetricRef, Roles
from tblive.judge.rules._common import (
    Judgement,
    View,
    early_level,
    fmt,
    improving,
    in_grace,
    judge_all,
    pct,
    trend_details,
)
from tblive.judge.rules._evidence import failure_evidence
from tblive.series.stats import MetricStats

KEY = "entropy"
NAME = "Entropy"


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    if not roles.entropy:
        return []
    rise = config.threshold(KEY, "rise")
    collapse = config.threshold(KEY, "collapse")
    evidence = failure_evidence(view, roles, config, context)
    progress = evidence.progress
    clock = evidence.clock

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats, ref.sign)
        grace = in_grace(stats, config, clock)
        what = {"std": "action std", "entropy_loss": "entropy (from -entropy_loss)"}.get(
            ref.kind, "entropy"
        )
        details.update(
            {
                "kind": ref.kind,
                "sign": ref.sign,
                "rise_threshold": rise,
                "in_grace": grace,
                "grace_points": config.grace.min_points,
                "learning": progress.improving,
                "holding": progress.holding,
                "evidence": progress.evidence,
                "failure_signs": evidence.signs,
                "points_needed": evidence.points_needed(config),
            }
        )
        head, tail = details["head"], details["tail"]
        change = details["relative_change"] or 0.0
        if not improving(stats, rise, ref.sign):
            early = ref.sign * early_level(stats)
            now = tail if tail is not None else float("nan")
            # only for entropies that are positive quantities (a Gaussian's differential
            # entropy can be negative, and then "a share of its early level" means nothing)
            if (
                early > 0
                and now >= 0
                and now <= collapse * early
                and stats.finite_count >= 8
                and not progress.holds
            ):
                details.update({"early_level": early, "collapse_threshold": collapse})
                return Judgement(
                    Status.WARNING,
                    "%s: %s collapsed %s -> %s (below %s of its early level) while nothing "
                    "improves (%s): the policy became deterministic too early. Try: a larger "
                    "entropy coefficient, a higher initial log-std, or a lower learning rate."
                    % (
                        ref.tag,
                        what,
                        fmt(early),
                        fmt(now),
                        pct(collapse).lstrip("+"),
                        progress.describe(),
                    ),
                    details,
                )
            return Judgement(
                Status.OK,
                "%s: %s %s -> %s (%s); not rising."
                % (ref.tag, what, fmt(head), fmt(tail), pct(change)),
                details,
            )
        base = "%s: %s rises %s -> %s (%s, threshold %s)" % (
            ref.tag,
            what,
            fmt(head),
            fmt(tail),
            pct(change),
            pct(rise),
        )
        if progress.improving:
            return Judgement(
                Status.WARNING,
                "%s, but the run is learning (%s). Not a failure while that lasts; if the "
                "improvement stops, lower the entropy coefficient or bound the log-std."
                % (base, progress.describe()),
                details,
            )
        if progress.holding:
            return Judgement(
                Status.WARNING,
                "%s; the run is not improving now but keeps its gains (%s). Not a failure while "
                "that lasts; lower the entropy coefficient or bound the log-std if it drifts."
                % (base, progress.describe()),
                details,
            )
        if not evidence.enough(stats, config):
            return Judgement(
                Status.WARNING,
                "%s and nothing improves yet (%s); early in a run that can be normal. CRITICAL "
                "if it lasts %s (%s). Watch it."
                % (base, progress.describe(), evidence.window(config), evidence.describe()),
                details,
            )
        return Judgement(
            Status.CRITICAL,
            "%s while nothing improves (%s): the policy drifts to randomness. Try: lower the "
            "entropy coefficient or learning rate, bound the log-std, check the reward reaches "
            "the agent." % (base, progress.describe()),
            details,
        )

    return judge_all(NAME, roles.entropy, view, judge)
