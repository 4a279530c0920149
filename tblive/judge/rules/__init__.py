"""The checks, in report order.

Each check is a module with ``KEY`` (its ``[checks.<key>]`` config section), ``NAME`` (display
name) and ``check(view, roles, config, context=None) -> List[Finding]``: a pure function of the
statistics and the optional :class:`~tblive.judge.context.RunContext` (no I/O, no clock, no
globals). A check returns no finding when the run logs none of its
metrics, and an OK finding per metric it judged and found fine.
"""

from __future__ import annotations

from typing import Dict, Tuple

from tblive.judge.rules import (
    coverage,
    entropy,
    frozen_gradients,
    grad_norms,
    nonfinite,
    overfitting,
    peers,
    policy_loss,
    ppo_health,
    q_values,
    reward_components,
    reward_trend,
    success_rate,
    value_loss,
)

#: Check modules in report order.
CHECKS: Tuple = (
    nonfinite,
    coverage,
    success_rate,
    reward_trend,
    peers,
    entropy,
    value_loss,
    policy_loss,
    grad_norms,
    reward_components,
    ppo_health,
    frozen_gradients,
    q_values,
    overfitting,
)

#: config key -> display name
CHECK_NAMES: Dict[str, str] = {module.KEY: module.NAME for module in CHECKS}
