"""Which tag is what: name patterns per role, signs, thresholds, and TOML config loading.

Contract:

* :class:`Config` holds everything the checks may be tuned with: grace settings, per-check
  thresholds, the name patterns of each metric role and the disabled checks. ``Config.default()``
  gives the built-in defaults, which cover HARL/MAPush, on-policy/OpenRL MAPPO, SMAC MAPPO,
  Stable-Baselines3, CleanRL, rsl_rl/legged_gym, ML-Agents, custom TD3, Lightning and Keras.
* :func:`load_config` reads a TOML file on top of the defaults. Unknown keys and bad values raise
  :class:`ConfigError` with one line naming the file and the key.
* :func:`classify` maps tag names to :class:`Roles` (pure, no I/O).

Patterns are shell-style globs matched case-insensitively against the tag *with any leading
``agentN/`` prefix removed* (``*`` also matches ``/``). ``re:<regex>`` makes a pattern a regular
expression (``re.search``, case-insensitive) and a leading ``!`` excludes tags matching the rest.
A tag belongs to a role when it matches at least one positive pattern of that role and no
excluding one. For the main reward the order of the patterns is a priority order.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

__all__ = [
    "Config",
    "ConfigError",
    "Grace",
    "MetricRef",
    "Roles",
    "ROLE_NAMES",
    "CHECK_KEYS",
    "DEFAULT_PATTERNS",
    "DEFAULT_THRESHOLDS",
    "classify",
    "load_config",
    "matches",
    "split_agent",
]


class ConfigError(ValueError):
    """A config file is unreadable or holds an unknown key or a bad value (one-line message)."""


# --------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------

#: Role name -> patterns. Order matters only for ``reward`` (priority of the main reward).
DEFAULT_PATTERNS: Dict[str, List[str]] = {
    # Main reward, most preferred first. Tags containing "eval" are used only when no
    # training-time reward exists (they are sparse).
    "reward": [
        "rollout/ep_rew_mean",
        "charts/episodic_return",
        "train/mean_reward",
        "*self-play/elo",
        "environment/cumulative reward",
        "train_episode_rewards",
        "train_episode_rewards/aver_rewards",
        "average_episode_rewards",
        "average_step_reward",
        "train/episode_reward",
        "episode/return",
        "*episodic_return*",
        "*ep_rew_mean*",
        "*episode_reward",
        "*episode_rewards",
        "*mean_reward",
        "*average_*reward*",
        "eval_average_episode_rewards",
        "eval/mean_reward",
        "!*/time",
        "!*_hist",
    ],
    "success": ["*success_rate*", "*win_rate*", "*success*", "!*_hist"],
    # Entropy itself (higher = more random).
    "entropy": [
        "*dist_entropy",
        "policy/entropy",
        "losses/entropy",
        "*/entropy",
        "entropy",
        "*policy_entropy*",
        "!*entropy_loss*",
        "!*_hist",
    ],
    # Entropy logged with a minus sign (SB3 ``train/entropy_loss`` = -entropy).
    "entropy_negated": ["*entropy_loss*"],
    # Gaussian action std: an entropy proxy (higher = more random).
    "entropy_std": ["*mean_noise_std*", "train/std", "*action_std*", "*policy_std*", "!*_hist"],
    "value_loss": [
        "*value_loss*",
        "loss/value_function",
        "losses/value loss",
        "*critic_loss*",
        "*vf_loss*",
        "!*_hist",
    ],
    "explained_variance": ["*explained_variance*"],
    "policy_loss": [
        "*policy_loss*",
        "*policy_gradient_loss*",
        "loss/surrogate",
        "*pg_loss*",
        "*surrogate_loss*",
        "!*_hist",
    ],
    "grad_norm_actor": ["*actor*grad*norm*", "gradients/actor*norm*", "!*clip_ratio*"],
    "grad_norm_critic": ["*critic*grad*norm*", "gradients/critic*norm*", "!*clip_ratio*"],
    "grad_norm": ["*grad_norm*", "*gradient_norm*", "gradients/*norm*", "!*clip_ratio*"],
    # Reward components: everything here that is not the main reward.
    "reward_component": [
        "rewards/*",
        "episode/rew_*",
        "*_reward",
        "*_punishment",
        "*_penalty",
        "!*current_reward",
        "!*/time",
    ],
    "ratio": ["ratio", "*/ratio", "*policy_ratio*", "*importance_ratio*"],
    "approx_kl": ["*approx_kl*", "*approxkl*", "kl", "*/kl"],
    "clip_fraction": ["*clip_frac*", "*clipfrac*"],
    "q_value": [
        "*q_mean*",
        "*q1*",
        "*q2*",
        "*q_value*",
        "*qf1_values*",
        "*qf2_values*",
        "!*td_error*",
        "!*_std",
        "!*loss*",
        "!*grad*",
    ],
    "actor_loss": ["*actor_loss*"],
    "train_loss": [
        "train_loss*",
        "train/*loss*",
        "training loss",
        "learn/*loss*",
        "loss/train*",
        "!*value*",
        "!*entropy*",
        "!*policy*",
        "!*critic*",
        "!*actor*",
        "!*surrogate*",
        "!train/loss",
    ],
    "val_loss": [
        "val_loss*",
        "valid*_loss*",
        "validation/*loss*",
        "eval/*loss*",
        "test/*loss*",
        "loss/val*",
        "val/*loss*",
    ],
    # curriculum progress (ML-Agents lessons, task difficulty): a reward drop when it steps up
    # is expected, not a collapse
    "curriculum": ["*lesson*", "*curriculum*", "*difficulty*"],
}

ROLE_NAMES: Tuple[str, ...] = tuple(DEFAULT_PATTERNS)

#: Check key (TOML section under ``[checks]``) -> threshold name -> default.
DEFAULT_THRESHOLDS: Dict[str, Dict[str, float]] = {
    "nonfinite": {},
    "success": {
        # success at or below this counts as zero (after scaling percents to [0, 1])
        "zero": 1e-6,
        # recent mean below this (while not improving) is "low"
        "low": 0.1,
        # recent mean this far below the best seen (absolute, [0,1] scale) is a regression
        "drop": 0.2,
    },
    "reward": {
        # smallest relative change (head -> tail) that counts as improving / decreasing
        "min_change": 0.05,
        # share of its gain (best smoothed level - head) a reward lost from its best: WARNING
        "peak_drop": 0.3,
        # share of that gain lost, back near the start: CRITICAL when nothing else improves
        "collapse": 0.8,
    },
    "entropy": {
        # relative rise of entropy (head -> tail) that makes the check look at it
        "rise": 0.1,
        # entropy (or action std) down to this share of its early level while the reward does
        # not improve: premature convergence (WARNING)
        "collapse": 0.05,
    },
    "value_loss": {
        # tail / head factor of a rising value loss: WARNING / CRITICAL
        "rise_warning": 3.0,
        "rise_critical": 10.0,
        # growth beyond what the return scale explains (loss ~ return^2), past grace and still
        # rising: CRITICAL
        "diverge_critical": 100.0,
        # max history level / median level (after the first 10%) that counts as a spike (WARNING)
        "spike": 1000.0,
        # |explained variance| below this for the recent part, after grace: WARNING
        "explained_variance_floor": 0.05,
    },
    "policy_loss": {
        # share of exactly-zero values: WARNING; CRITICAL (after grace) at the second
        "zero_share_warning": 0.5,
        "zero_share_critical": 0.95,
        # recent |values| all below this: vanished
        "vanish_abs": 1e-8,
    },
    "grad_norm": {
        # tail / head factor of a rising norm: WARNING / CRITICAL (after grace)
        "explode_warning": 10.0,
        "explode_critical": 100.0,
        # the smallest head the factor is taken against: a norm that starts near 0 (no reward
        # yet, so nothing to fit) and then settles at a normal level has not exploded
        "floor": 0.01,
        # factor that is CRITICAL even in grace (numerical blow-up)
        "blowup": 1000.0,
        # max history level / median level that counts as a spike (WARNING)
        "spike": 30.0,
        # tail / median level of a falling norm: vanishing (WARNING)
        "vanish_factor": 1e-3,
    },
    "reward_component": {
        # a (non-penalty) component whose recent |values| stay below this share of the largest
        # component is dead
        "dead_relative": 1e-3,
        # ... or below this absolute level
        "dead_abs": 1e-4,
        # relative change that counts as improving / decreasing
        "min_change": 0.2,
        # a decrease smaller than this share of the largest component is ignored
        "negligible": 0.05,
    },
    "ppo": {
        "ratio_low": 0.8,
        "ratio_high": 1.25,
        "ratio_low_critical": 0.5,
        "ratio_high_critical": 2.0,
        # share of the history outside the bands: WARNING / CRITICAL (after grace)
        "ratio_share_warning": 0.05,
        "ratio_share_critical": 0.25,
        "kl_high": 0.1,
        "kl_critical": 0.5,
        "kl_share_warning": 0.1,
        "clip_fraction_high": 0.5,
        "clip_share_warning": 0.3,
    },
    "frozen_gradients": {
        "zero_share_warning": 0.5,
        "zero_share_critical": 0.98,
    },
    "q_value": {
        # |tail| / max(|early level|, 1) growth: WARNING, or CRITICAL after grace when nothing
        # improves; at growth_critical CRITICAL unless the run is learning (Q tracks returns)
        "growth_warning": 100.0,
        "growth_critical": 1000.0,
        # |tail| beyond this is CRITICAL on its own
        "abs_critical": 1e6,
    },
    "overfitting": {
        # validation tail this far above its best (relative): WARNING
        "val_rise": 0.1,
    },
}

CHECK_KEYS: Tuple[str, ...] = tuple(DEFAULT_THRESHOLDS)


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
    """Everything the checks can be tuned with. Build with :meth:`default` or :func:`load_config`."""

    grace: Grace = field(default_factory=Grace)
    patterns: Dict[str, List[str]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_PATTERNS))
    thresholds: Dict[str, Dict[str, float]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_THRESHOLDS)
    )
    disabled: List[str] = field(default_factory=list)
    source: Optional[str] = None

    @classmethod
    def default(cls) -> Config:
        return cls()

    def threshold(self, check: str, name: str) -> float:
        return float(self.thresholds[check][name])


# --------------------------------------------------------------------------------------------
# TOML loading
# --------------------------------------------------------------------------------------------


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib  # novermin

        return tomllib
    import tomli  # type: ignore[import-not-found]

    return tomli


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_config(path: Union[str, Path]) -> Config:
    """Read a TOML config over the defaults.

    Layout (every key optional)::

        [grace]            min_points, fraction, expected_steps, min_steps
        [checks.<check>]   thresholds (see DEFAULT_THRESHOLDS); ``enabled = false`` disables
        [patterns]         <role> = ["glob", "re:regex", "!excluded"]   (replaces the default)
        [patterns.extend]  <role> = [...]                                (added before the defaults)
        disabled = ["Entropy", ...]                                       (check display names)
    """
    path = Path(path)
    where = str(path)
    try:
        with path.open("rb") as handle:
            data = _toml_module().load(handle)
    except OSError as exc:
        raise ConfigError("%s: cannot read config: %s" % (where, exc.strerror or exc)) from None
    except Exception as exc:  # tomllib.TOMLDecodeError and friends
        raise ConfigError("%s: invalid TOML: %s" % (where, exc)) from None
    return config_from_dict(data, where)


def config_from_dict(data: Dict[str, Any], where: str = "<config>") -> Config:
    """Build a :class:`Config` from already-parsed TOML data (see :func:`load_config`)."""
    from tblive.judge.rules import CHECK_NAMES  # local: rules import this module

    config = Config.default()
    config.source = where

    def fail(key: str, what: str) -> ConfigError:
        return ConfigError("%s: %s: %s" % (where, key, what))

    for key, value in data.items():
        if key == "grace":
            if not isinstance(value, dict):
                raise fail("grace", "expected a table")
            for name, item in value.items():
                full = "grace.%s" % name
                if name not in ("min_points", "fraction", "expected_steps", "min_steps"):
                    raise fail(full, "unknown key")
                if not _is_number(item) or item < 0:
                    raise fail(full, "expected a non-negative number, got %r" % (item,))
                if name == "fraction" and item > 1:
                    raise fail(full, "expected a share between 0 and 1, got %r" % (item,))
                if name != "fraction":
                    if item != int(item):
                        raise fail(full, "expected a whole number, got %r" % (item,))
                    item = int(item)
                setattr(config.grace, name, item)
        elif key == "checks":
            if not isinstance(value, dict):
                raise fail("checks", "expected a table")
            for check, table in value.items():
                if check not in DEFAULT_THRESHOLDS:
                    raise fail(
                        "checks.%s" % check,
                        "unknown check (known: %s)" % ", ".join(CHECK_KEYS),
                    )
                if not isinstance(table, dict):
                    raise fail("checks.%s" % check, "expected a table")
                for name, item in table.items():
                    full = "checks.%s.%s" % (check, name)
                    if name == "enabled":
                        if not isinstance(item, bool):
                            raise fail(full, "expected true or false, got %r" % (item,))
                        display = CHECK_NAMES[check]
                        if not item and display not in config.disabled:
                            config.disabled.append(display)
                        continue
                    if name not in DEFAULT_THRESHOLDS[check]:
                        known = ", ".join(sorted(DEFAULT_THRESHOLDS[check])) or "none"
                        raise fail(full, "unknown key (known: %s, enabled)" % known)
                    if not _is_number(item) or item != item or item < 0:
                        raise fail(full, "expected a non-negative number, got %r" % (item,))
                    config.thresholds[check][name] = float(item)
        elif key == "patterns":
            if not isinstance(value, dict):
                raise fail("patterns", "expected a table")
            for role, patterns in value.items():
                if role == "extend":
                    if not isinstance(patterns, dict):
                        raise fail("patterns.extend", "expected a table")
                    for extra_role, extra in patterns.items():
                        full = "patterns.extend.%s" % extra_role
                        _check_role(extra_role, full, fail)
                        config.patterns[extra_role] = _pattern_list(extra, full, fail) + list(
                            config.patterns[extra_role]
                        )
                    continue
                full = "patterns.%s" % role
                _check_role(role, full, fail)
                config.patterns[role] = _pattern_list(patterns, full, fail)
        elif key == "disabled":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail("disabled", "expected a list of check names")
            known = {n.lower(): n for n in CHECK_NAMES.values()}
            for name in value:
                display = known.get(name.strip().lower())
                if display is None:
                    raise fail(
                        "disabled",
                        "unknown check %r (known: %s)" % (name, ", ".join(CHECK_NAMES.values())),
                    )
                if display not in config.disabled:
                    config.disabled.append(display)
        else:
            raise fail(key, "unknown key (known: grace, checks, patterns, disabled)")
    return config


def _check_role(role: str, full: str, fail: Any) -> None:
    if role not in DEFAULT_PATTERNS:
        raise fail(full, "unknown metric role (known: %s)" % ", ".join(ROLE_NAMES))


def _pattern_list(value: Any, full: str, fail: Any) -> List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail(full, "expected a list of non-empty pattern strings")
    for pattern in value:
        body = pattern[1:] if pattern.startswith("!") else pattern
        if body.startswith("re:"):
            try:
                re.compile(body[3:])
            except re.error as exc:
                raise fail(full, "bad regular expression %r: %s" % (body[3:], exc)) from None
    return list(value)


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------

_AGENT_PREFIX = re.compile(r"^(agent[_-]?\d+)/(.+)$", re.IGNORECASE)


def split_agent(tag: str) -> Tuple[Optional[str], str]:
    """``"agent3/dist_entropy"`` -> ``("agent3", "dist_entropy")``; other tags -> ``(None, tag)``."""
    found = _AGENT_PREFIX.match(tag)
    if found:
        return found.group(1), found.group(2)
    return None, tag


_SEPARATORS = str.maketrans({" ": "_", "-": "_"})


def _pattern_hit(pattern: str, name: str) -> bool:
    """Globs match case-insensitively with space, ``-`` and ``_`` as one character: writers
    rename tags (tensorboardX turns ML-Agents' ``Cumulative Reward`` into ``Cumulative_Reward``).
    ``re:`` patterns see the tag as written (lowercased)."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name, re.IGNORECASE) is not None
    return fnmatch.fnmatchcase(name.translate(_SEPARATORS), pattern.lower().translate(_SEPARATORS))


def match_index(patterns: List[str], name: str) -> Optional[int]:
    """Index of the first positive pattern matching ``name`` (lowercased), None if none or excluded."""
    lowered = name.lower()
    hit = None
    for index, pattern in enumerate(patterns):
        if pattern.startswith("!"):
            if _pattern_hit(pattern[1:], lowered):
                return None
        elif hit is None and _pattern_hit(pattern, lowered):
            hit = index
    return hit


def matches(patterns: List[str], name: str) -> bool:
    return match_index(patterns, name) is not None


@dataclass(frozen=True)
class MetricRef:
    """One tag in a role. ``sign`` multiplies the raw value into the role's direction
    (``-1`` for SB3's ``entropy_loss``); ``kind`` says what it is (``entropy``, ``std`` ...);
    ``agent`` is ``"agent3"`` for per-agent tags; ``base`` the tag without the agent prefix."""

    tag: str
    base: str
    agent: Optional[str] = None
    sign: float = 1.0
    kind: str = ""
    priority: int = 0


@dataclass
class Roles:
    """Tags of a run grouped by role; every list is in tag order except ``reward`` (priority)."""

    reward: List[MetricRef] = field(default_factory=list)
    success: List[MetricRef] = field(default_factory=list)
    entropy: List[MetricRef] = field(default_factory=list)
    value_loss: List[MetricRef] = field(default_factory=list)
    explained_variance: List[MetricRef] = field(default_factory=list)
    policy_loss: List[MetricRef] = field(default_factory=list)
    grad_norm: List[MetricRef] = field(default_factory=list)
    reward_component: List[MetricRef] = field(default_factory=list)
    ratio: List[MetricRef] = field(default_factory=list)
    approx_kl: List[MetricRef] = field(default_factory=list)
    clip_fraction: List[MetricRef] = field(default_factory=list)
    q_value: List[MetricRef] = field(default_factory=list)
    actor_loss: List[MetricRef] = field(default_factory=list)
    train_loss: List[MetricRef] = field(default_factory=list)
    val_loss: List[MetricRef] = field(default_factory=list)
    curriculum: List[MetricRef] = field(default_factory=list)
    #: the main reward: for per-agent rewards one per agent, else a single tag
    main_reward: List[MetricRef] = field(default_factory=list)
    #: agent prefix -> its tags
    agents: Dict[str, List[str]] = field(default_factory=dict)

    def role_of(self, tag: str) -> List[str]:
        """Names of the roles ``tag`` was put in (for reports and debugging)."""
        found = []
        for name, value in vars(self).items():
            if name == "agents":
                continue
            if any(ref.tag == tag for ref in value):
                found.append(name)
        return found

    def to_dict(self) -> Dict[str, List[str]]:
        return {
            name: [ref.tag for ref in value]
            for name, value in vars(self).items()
            if name != "agents" and value
        }


def classify(tags: Iterable[str], config: Optional[Config] = None) -> Roles:
    """Put each tag into the roles its name matches (a tag may have several roles)."""
    config = config or Config.default()
    patterns = config.patterns
    roles = Roles()
    reward_candidates: List[Tuple[bool, int, str, MetricRef]] = []
    for tag in sorted(set(tags)):
        agent, base = split_agent(tag)
        if agent is not None:
            roles.agents.setdefault(agent, []).append(tag)

        def ref(
            sign: float = 1.0,
            kind: str = "",
            priority: int = 0,
            tag: str = tag,
            base: str = base,
            agent: Optional[str] = agent,
        ) -> MetricRef:
            return MetricRef(
                tag=tag, base=base, agent=agent, sign=sign, kind=kind, priority=priority
            )

        reward_index = match_index(patterns["reward"], base)
        if reward_index is not None:
            item = ref(priority=reward_index)
            roles.reward.append(item)
            reward_candidates.append(("eval" in base.lower(), reward_index, tag, item))
        if matches(patterns["success"], base):
            roles.success.append(ref(kind="success"))
        if matches(patterns["entropy_negated"], base):
            roles.entropy.append(ref(sign=-1.0, kind="entropy_loss"))
        elif matches(patterns["entropy_std"], base):
            roles.entropy.append(ref(kind="std"))
        elif matches(patterns["entropy"], base):
            roles.entropy.append(ref(kind="entropy"))
        if matches(patterns["value_loss"], base):
            roles.value_loss.append(ref())
        if matches(patterns["explained_variance"], base):
            roles.explained_variance.append(ref())
        if matches(patterns["policy_loss"], base):
            roles.policy_loss.append(ref())
        if matches(patterns["grad_norm_actor"], base):
            roles.grad_norm.append(ref(kind="actor"))
        elif matches(patterns["grad_norm_critic"], base):
            roles.grad_norm.append(ref(kind="critic"))
        elif matches(patterns["grad_norm"], base):
            roles.grad_norm.append(ref(kind="other"))
        if reward_index is None and matches(patterns["reward_component"], base):
            roles.reward_component.append(ref())
        if matches(patterns["ratio"], base):
            roles.ratio.append(ref())
        if matches(patterns["approx_kl"], base):
            roles.approx_kl.append(ref())
        if matches(patterns["clip_fraction"], base):
            roles.clip_fraction.append(ref())
        if matches(patterns["q_value"], base):
            roles.q_value.append(ref())
        if matches(patterns["actor_loss"], base):
            roles.actor_loss.append(ref())
        if matches(patterns["train_loss"], base):
            roles.train_loss.append(ref())
        if matches(patterns["val_loss"], base):
            roles.val_loss.append(ref())
        if matches(patterns["curriculum"], base):
            roles.curriculum.append(ref())

    if reward_candidates:
        reward_candidates.sort(key=lambda item: (item[0], item[1], item[2]))
        best = reward_candidates[0][3]
        roles.main_reward = [
            item[3]
            for item in reward_candidates
            if item[3].base == best.base and (item[0], item[1]) == reward_candidates[0][:2]
        ]
        roles.reward.sort(key=lambda r: (r.priority, r.tag))
    return roles
