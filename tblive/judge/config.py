"""What the checks can be tuned with: grace settings, typed per-check thresholds, role patterns.

Contract:

* Each check's thresholds are declared once, as a frozen dataclass below (one field per
  threshold, its default and a one-line ``doc``); :data:`THRESHOLD_TYPES` maps the check key
  (the ``[checks.<key>]`` TOML section) to it, and :data:`DEFAULT_THRESHOLDS` and the TOML
  validation in :mod:`tblive.judge.config_file` derive from it.
* :class:`Config` holds the grace settings, the thresholds (check -> name -> float), the name
  patterns of each metric role (see :mod:`tblive.judge.roles`) and the disabled checks.
  ``Config.default()`` gives the built-in defaults; ``config.threshold(check, name)`` reads one.
* No I/O here: TOML files are read by :func:`tblive.judge.config_file.load_config`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional, Tuple, Type

from tblive.judge.roles import DEFAULT_PATTERNS

__all__ = [
    "CHECK_KEYS",
    "Config",
    "DEFAULT_THRESHOLDS",
    "Grace",
    "THRESHOLD_TYPES",
    "register_thresholds",
    "threshold_field",
    "threshold_docs",
]


def threshold_field(default: float, doc: str, share: bool = False) -> Any:
    """A threshold field: its default, a one-line doc, and whether it is a share in [0, 1]."""
    return field(default=default, metadata={"doc": doc, "share": share})


@dataclass(frozen=True)
class NonfiniteThresholds:
    """``[checks.nonfinite]``: NaN / inf values (no thresholds)."""


@dataclass(frozen=True)
class SuccessThresholds:
    """``[checks.success]``: success or win rate (values scaled to [0, 1] first)."""

    zero: float = threshold_field(1e-6, "success at or below this counts as zero")
    low: float = threshold_field(
        0.1, "recent mean below this (while not improving) is low", share=True
    )
    drop: float = threshold_field(
        0.2, "recent mean this far below the best seen (absolute) is a regression", share=True
    )


@dataclass(frozen=True)
class RewardThresholds:
    """``[checks.reward]``: the main reward's trend."""

    min_change: float = threshold_field(
        0.05, "smallest relative change (head -> tail) that counts as a trend"
    )
    peak_drop: float = threshold_field(
        0.3, "share of its gain (best level - head) lost from its best: WARNING", share=True
    )
    collapse: float = threshold_field(
        0.8, "share of that gain lost, back near the start: CRITICAL when nothing else improves"
    )


@dataclass(frozen=True)
class EntropyThresholds:
    """``[checks.entropy]``: policy entropy (or action std)."""

    rise: float = threshold_field(
        0.1, "relative rise of entropy (head -> tail) that makes the check look"
    )
    collapse: float = threshold_field(
        0.05,
        "entropy down to this share of its early level while the reward does not improve: "
        "premature convergence (WARNING)",
        share=True,
    )


@dataclass(frozen=True)
class ValueLossThresholds:
    """``[checks.value_loss]``: value (critic) loss and explained variance."""

    rise_warning: float = threshold_field(3.0, "tail / head factor of a rising value loss: WARNING")
    rise_critical: float = threshold_field(
        10.0, "tail / head factor of a rising value loss: CRITICAL"
    )
    diverge_critical: float = threshold_field(
        100.0,
        "growth beyond what the return scale explains (loss ~ return^2), past grace and still "
        "rising: CRITICAL",
    )
    spike: float = threshold_field(
        1000.0, "max level / median level (after the first 10%): spike (WARNING)"
    )
    explained_variance_floor: float = threshold_field(
        0.05, "|explained variance| below this for the recent part, after grace: WARNING"
    )


@dataclass(frozen=True)
class PolicyLossThresholds:
    """``[checks.policy_loss]``: policy (actor) loss."""

    zero_share_warning: float = threshold_field(
        0.5, "share of exactly-zero values: WARNING", share=True
    )
    zero_share_critical: float = threshold_field(
        0.95, "share of exactly-zero values: CRITICAL (after grace)", share=True
    )
    vanish_abs: float = threshold_field(1e-8, "recent |values| all below this: vanished")


@dataclass(frozen=True)
class GradNormThresholds:
    """``[checks.grad_norm]``: gradient norms."""

    explode_warning: float = threshold_field(10.0, "tail / head factor of a rising norm: WARNING")
    explode_critical: float = threshold_field(
        100.0, "tail / head factor of a rising norm: CRITICAL"
    )
    floor: float = threshold_field(
        0.01,
        "the smallest head the factor is taken against (a norm starting near 0 that settles "
        "at a normal level has not exploded)",
    )
    blowup: float = threshold_field(
        1000.0, "factor that is CRITICAL even in grace (numerical blow-up)"
    )
    spike: float = threshold_field(
        30.0, "max level / median level that counts as a spike (WARNING)"
    )
    vanish_factor: float = threshold_field(
        1e-3, "tail / median level of a falling norm: vanishing (WARNING)"
    )


@dataclass(frozen=True)
class RewardComponentThresholds:
    """``[checks.reward_component]``: the terms of a composite reward."""

    dead_relative: float = threshold_field(
        1e-3, "recent |values| below this share of the largest component: dead", share=True
    )
    dead_abs: float = threshold_field(1e-4, "... or below this absolute level: dead")
    min_change: float = threshold_field(
        0.2, "relative change that counts as improving / decreasing"
    )
    negligible: float = threshold_field(
        0.05, "a decrease smaller than this share of the largest component is ignored", share=True
    )


@dataclass(frozen=True)
class PpoThresholds:
    """``[checks.ppo]``: PPO ratio, approximate KL and clip fraction."""

    ratio_low: float = threshold_field(0.8, "ratio below this is outside the normal band")
    ratio_high: float = threshold_field(1.25, "ratio above this is outside the normal band")
    ratio_low_critical: float = threshold_field(
        0.5, "ratio below this is outside the critical band"
    )
    ratio_high_critical: float = threshold_field(
        2.0, "ratio above this is outside the critical band"
    )
    ratio_share_warning: float = threshold_field(
        0.05, "share of the history outside the normal band: WARNING", share=True
    )
    ratio_share_critical: float = threshold_field(
        0.25, "share of the history outside the critical band: CRITICAL (after grace)", share=True
    )
    kl_high: float = threshold_field(0.1, "approximate KL above this is high")
    kl_critical: float = threshold_field(0.5, "approximate KL above this is CRITICAL")
    kl_share_warning: float = threshold_field(
        0.1, "share of the history with high KL: WARNING", share=True
    )
    clip_fraction_high: float = threshold_field(0.5, "clip fraction above this is high", share=True)
    clip_share_warning: float = threshold_field(
        0.3, "share of the history with a high clip fraction: WARNING", share=True
    )


@dataclass(frozen=True)
class FrozenGradientsThresholds:
    """``[checks.frozen_gradients]``: gradient norms that are exactly zero."""

    zero_share_warning: float = threshold_field(
        0.5, "share of exactly-zero norms: WARNING", share=True
    )
    zero_share_critical: float = threshold_field(
        0.98, "share of exactly-zero norms: CRITICAL (after grace)", share=True
    )


@dataclass(frozen=True)
class QValueThresholds:
    """``[checks.q_value]``: Q-value estimates (off-policy methods)."""

    growth_warning: float = threshold_field(
        100.0,
        "|tail| / max(|early level|, 1) growth: WARNING, or CRITICAL after grace when nothing "
        "improves",
    )
    growth_critical: float = threshold_field(
        1000.0, "growth that is CRITICAL unless the run is learning (Q tracks returns)"
    )
    abs_critical: float = threshold_field(1e6, "|tail| beyond this is CRITICAL on its own")


@dataclass(frozen=True)
class OverfittingThresholds:
    """``[checks.overfitting]``: validation loss against training loss."""

    val_rise: float = threshold_field(
        0.1, "validation tail this far above its best (relative): WARNING"
    )


@dataclass(frozen=True)
class CoverageThresholds:
    """``[checks.coverage]``: whether the run's learning could be judged at all (no thresholds)."""


@dataclass(frozen=True)
class PeersThresholds:
    """``[checks.peers]``: a run against its sibling seeds of the same configuration."""

    spread: float = threshold_field(
        2.0, "gap to the lowest sibling, in units of the siblings' spread, that is a WARNING"
    )
    progress: float = threshold_field(
        1.0 / 3.0,
        "the gap must also be at least this share of what the siblings gained since their start",
        share=True,
    )


#: Check key (TOML section under ``[checks]``) -> its thresholds type, in report order.
THRESHOLD_TYPES: Dict[str, Type[Any]] = {
    "nonfinite": NonfiniteThresholds,
    "success": SuccessThresholds,
    "reward": RewardThresholds,
    "entropy": EntropyThresholds,
    "value_loss": ValueLossThresholds,
    "policy_loss": PolicyLossThresholds,
    "grad_norm": GradNormThresholds,
    "reward_component": RewardComponentThresholds,
    "ppo": PpoThresholds,
    "frozen_gradients": FrozenGradientsThresholds,
    "q_value": QValueThresholds,
    "overfitting": OverfittingThresholds,
    "coverage": CoverageThresholds,
    "peers": PeersThresholds,
}

#: Check key -> threshold name -> default (derived from :data:`THRESHOLD_TYPES`).
DEFAULT_THRESHOLDS: Dict[str, Dict[str, float]] = {
    key: {name: float(value) for name, value in asdict(kind()).items()}
    for key, kind in THRESHOLD_TYPES.items()
}

#: The built-in check keys with thresholds (checks registered later: :data:`THRESHOLD_TYPES`).
CHECK_KEYS: Tuple[str, ...] = tuple(THRESHOLD_TYPES)


def register_thresholds(check: str, kind: Type[Any]) -> Type[Any]:
    """Declare the thresholds of a check that is not built in here (a new rule module does
    ``register_thresholds(KEY, MyThresholds)`` at import): a frozen dataclass whose fields are
    made with a default and a ``doc`` (see the classes above). Its defaults join
    :data:`DEFAULT_THRESHOLDS`, and ``[checks.<check>]`` in TOML is validated against it.
    Returns ``kind`` (usable as a class decorator through ``functools.partial``)."""
    if not is_dataclass(kind) or not kind.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError("thresholds of %s must be a frozen dataclass" % check)
    for item in fields(kind):
        if not isinstance(item.default, (int, float)) or not item.metadata.get("doc"):
            raise TypeError(
                "threshold %s.%s needs a numeric default and a doc" % (check, item.name)
            )
    THRESHOLD_TYPES[check] = kind
    DEFAULT_THRESHOLDS[check] = {name: float(v) for name, v in asdict(kind()).items()}
    return kind


def threshold_docs(check: str) -> Dict[str, Tuple[float, str, bool]]:
    """Threshold name -> (default, doc, is a share in [0, 1]) for ``check`` ({} if none)."""
    kind = THRESHOLD_TYPES.get(check)
    if kind is None:
        return {}
    return {
        f.name: (float(f.default), f.metadata.get("doc", ""), bool(f.metadata.get("share")))
        for f in fields(kind)
    }


@dataclass
class Grace:
    """When a check may go CRITICAL.

    A metric is *in grace* while it has fewer than ``min_points`` finite points, or, when the
    run's planned length ``expected_steps`` is known (> 0), while its last step is below
    ``fraction * expected_steps``, or while its last step is below ``min_steps``. In grace
    the slow checks report at most WARNING; numerical blow-ups (non-finite values, growth by
    orders of magnitude) are CRITICAL regardless.
    """

    min_points: int = 25
    fraction: float = 0.1
    expected_steps: int = 0
    min_steps: int = 0


@dataclass
class Config:
    """Everything the checks can be tuned with. Build with :meth:`default` or
    :func:`tblive.judge.config_file.load_config`."""

    grace: Grace = field(default_factory=Grace)
    patterns: Dict[str, List[str]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_PATTERNS))
    thresholds: Dict[str, Dict[str, float]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_THRESHOLDS)
    )
    disabled: List[str] = field(default_factory=list)
    source: Optional[str] = None

    @classmethod
    def default(cls) -> Config:
        """The built-in defaults (a fresh, independent copy)."""
        return cls()

    def threshold(self, check: str, name: str) -> float:
        """One threshold, e.g. ``config.threshold("grad_norm", "spike")``; the default when
        this config predates the registration of ``check`` (see :func:`register_thresholds`)."""
        table = self.thresholds.get(check)
        if table is not None and name in table:
            return float(table[name])
        return float(DEFAULT_THRESHOLDS[check][name])

    def typed_thresholds(self, check: str) -> Any:
        """The thresholds of ``check`` as its frozen dataclass (see :data:`THRESHOLD_TYPES`)."""
        kind = THRESHOLD_TYPES[check]
        return kind(**{f.name: self.threshold(check, f.name) for f in fields(kind)})
