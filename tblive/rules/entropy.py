"""Entropy: rising entropy means the policy drifts towards randomness.

Works on entropy, on SB3's ``entropy_loss`` (= -entropy, sign flipped) and on Gaussian action
std (an entropy proxy). A significant rise of at least ``rise`` (relative) is:
* WARNING while the run clearly learns (main reward, success or a reward component rises) --
  many successful runs (e.g. MAPush MAPPO) raise a learnable std all run long;
* WARNING in grace;
* CRITICAL otherwise: rising entropy while nothing improves.
Falling or stable entropy is OK.
"""

from __future__ import annotations

from typing import List, Optional

from tblive.findings import Finding, Status
from tblive.metrics import Config, MetricRef, Roles
from tblive.rules._common import (
    Judgement,
    View,
    fmt,
    improving,
    in_grace,
    judge_all,
    learning_progress,
    pct,
    trend_details,
)
from tblive.stats import MetricStats

KEY = "entropy"
NAME = "Entropy"


def check(view: View, roles: Roles, config: Config) -> List[Finding]:
    if not roles.entropy:
        return []
    rise = config.threshold(KEY, "rise")
    progress = learning_progress(view, roles, config)

    def judge(ref: MetricRef, stats: MetricStats) -> Optional[Judgement]:
        if stats.finite_count == 0:
            return None
        details = trend_details(stats, ref.sign)
        grace = in_grace(stats, config)
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
                "evidence": progress.evidence,
            }
        )
        head, tail = details["head"], details["tail"]
        change = details["relative_change"] or 0.0
        if not improving(stats, rise, ref.sign):
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
        if grace:
            return Judgement(
                Status.WARNING,
                "%s and nothing improves yet; within the grace period (%d points). Watch it."
                % (base, config.grace.min_points),
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
