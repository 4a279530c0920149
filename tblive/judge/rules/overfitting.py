"""Overfitting: validation loss rising while training loss falls.

Training and validation losses are paired by name with the split word removed (``train_loss``
/ ``val_loss``, ``train/epoch_loss`` / ``validation/epoch_loss``, ``learn/Logloss`` /
``test/Logloss``). WARNING when the validation tail is at least ``val_rise`` (relative) above
its best smoothed level and the training loss is lower now than at the validation best.
"""

from __future__ import annotations

import re
from typing import List, Optional

import numpy as np

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import Roles
from tblive.judge.rules._common import View, fmt, pct, smoothed_levels, usable

KEY = "overfitting"
NAME = "Overfitting"

_TRAIN = re.compile(r"(?<![a-z])(train|training|learn)(?![a-z])")
_VAL = re.compile(r"(?<![a-z])(val|valid|validation|eval|evaluation|test)(?![a-z])")


def pair_key(tag: str) -> str:
    return _VAL.sub("{split}", _TRAIN.sub("{split}", tag.lower()))


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    rise = config.threshold(KEY, "val_rise")
    trains = {pair_key(r.tag): r.tag for r in roles.train_loss}
    findings: List[Finding] = []
    for ref in roles.val_loss:
        train_tag = trains.get(pair_key(ref.tag))
        if train_tag is None:
            continue
        val, train = view.get(ref.tag), view.get(train_tag)
        if not (usable(val, 8) and usable(train, 8)):
            continue
        finding = _judge(ref.tag, train_tag, val, train, rise)
        if finding is not None:
            findings.append(finding)
    return findings


def _judge(val_tag: str, train_tag: str, val, train, rise: float) -> Optional[Finding]:
    hist = val.history()
    smooth = smoothed_levels(val)
    offset = (hist.means.size - smooth.size) // 2
    best_index = int(np.argmin(smooth))
    best = float(smooth[best_index])
    best_step = float(hist.steps[min(best_index + offset, hist.steps.size - 1)])
    val_tail = val.tail_value()
    train_hist = train.history()
    train_at_best = float(np.interp(best_step, train_hist.steps, train_hist.means))
    train_tail = train.tail_value()
    val_rise = (val_tail - best) / max(abs(best), 1e-12)
    details = {
        "val_best": best,
        "val_best_step": best_step,
        "val_tail": val_tail,
        "val_rise": val_rise,
        "threshold": rise,
        "train_at_val_best": train_at_best,
        "train_tail": train_tail,
        "train_metric": train_tag,
    }
    if val_rise >= rise and train_tail < train_at_best:
        message = (
            "%s rose %s from its best %s (step %d) to %s while %s kept falling (%s -> %s); "
            "threshold %s: overfitting. Try: the checkpoint from step %d (early stopping), more "
            "regularisation (dropout, weight decay) or more data."
            % (
                val_tag,
                pct(val_rise),
                fmt(best),
                int(best_step),
                fmt(val_tail),
                train_tag,
                fmt(train_at_best),
                fmt(train_tail),
                pct(rise),
                int(best_step),
            )
        )
        return Finding(NAME, Status.WARNING, message, details, val_tag)
    return Finding(
        NAME,
        Status.OK,
        "%s: %s (best %s) alongside %s %s; no overfitting."
        % (val_tag, fmt(val_tail), fmt(best), train_tag, fmt(train_tail)),
        details,
        val_tag,
    )
