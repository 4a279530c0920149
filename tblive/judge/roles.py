"""Which tag is what: the name patterns of each metric role and the classification of a tag set.

Contract:

* :data:`DEFAULT_PATTERNS` maps each role to its name patterns; the defaults cover HARL/MAPush,
  on-policy/OpenRL MAPPO, SMAC MAPPO, PyMARL, Stable-Baselines3, CleanRL, Tianshou,
  rsl_rl/legged_gym, ML-Agents, Sample Factory, custom TD3, Lightning and Keras.
* :data:`ROLE_TABLE` says, row by row, which pattern lists put a tag into which :class:`Roles`
  field (with which sign and kind). :func:`classify` is a pure function of the tag set and the
  patterns; its result is cached per (tag set, patterns), so evaluating a run again with the
  same tags costs one dictionary look-up. The returned :class:`Roles` is shared between callers
  of the cache: treat it as read-only.

Patterns are shell-style globs matched case-insensitively against the tag *with any leading
``agentN/`` prefix removed* (``*`` also matches ``/``; space, ``-`` and ``_`` count as one
character). ``re:<regex>`` makes a pattern a regular expression (``re.search``,
case-insensitive) and a leading ``!`` excludes tags matching the rest. A tag belongs to a role
when it matches at least one positive pattern of that role and no excluding one. For the main
reward the order of the patterns is a priority order, and evaluation rewards (a word ``eval``,
``evaluation``, ``test`` or ``val`` in the tag) are used only when no training reward exists.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
)


class PatternSource(Protocol):
    """Anything with the role patterns to classify by (a :class:`tblive.judge.config.Config`);
    a protocol so that roles, below config, need not import it."""

    patterns: Dict[str, List[str]]


__all__ = [
    "DEFAULT_PATTERNS",
    "EVAL_WORDS",
    "MetricRef",
    "ROLE_NAMES",
    "ROLE_TABLE",
    "RoleRule",
    "Roles",
    "classify",
    "classify_cache_info",
    "is_eval_tag",
    "match_index",
    "matches",
    "split_agent",
]

# --------------------------------------------------------------------------------------------
# Default patterns
# --------------------------------------------------------------------------------------------

#: Role name -> patterns. Order matters only for ``reward`` (priority of the main reward).
DEFAULT_PATTERNS: Dict[str, List[str]] = {
    # Main reward, most preferred first. Evaluation rewards (see is_eval_tag) are used only when
    # no training-time reward exists (they are sparse).
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
        # Tianshou (train/reward = mean return of the episodes finished in the collect step;
        # train/rew before 0.5)
        "train/reward",
        "train/rew",
        # Sample Factory
        "reward/reward",
        # PyMARL (return_mean; test_return_mean is its evaluation)
        "return_mean",
        "*episodic_return*",
        "*episode_return*",
        "*return_mean",
        "*mean_return",
        "*ep_rew_mean*",
        "*episode_reward",
        # RLlib
        "*episode_reward_mean",
        "*episode_rewards",
        "*mean_reward",
        "*average_*reward*",
        # per-step reward of multi-agent trainers (step_rewards_<agent or env>)
        "step_rewards*",
        "*/step_rewards*",
        "eval_average_episode_rewards",
        "eval/mean_reward",
        # Tianshou's evaluation return
        "test/reward",
        "test/rew",
        # spread and extremes of a return are not the return
        "!*/time",
        "!*_hist",
        "!*_std",
        "!*_max",
        "!*_min",
    ],
    # success or win rate (PyMARL/SMAC: battle_won_mean)
    "success": [
        "*success_rate*",
        "*win_rate*",
        "*success*",
        "*battle_won*",
        "*won_mean*",
        "!*_hist",
        "!*_std",
    ],
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
        # ML-Agents POCA's centralised critic
        "*baseline loss*",
        "!*_hist",
    ],
    "explained_variance": ["*explained_variance*", "*explained_var"],
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
        # per-agent individual rewards (MPE MAPPO)
        "*individual_rewards",
        "!*current_reward",
        "!*/time",
    ],
    "ratio": ["ratio", "*/ratio", "*policy_ratio*", "*importance_ratio*"],
    "approx_kl": ["*approx_kl*", "*approxkl*", "kl", "*/kl", "*kl_divergence", "!*coeff*"],
    "clip_fraction": ["*clip_frac*", "*clipfrac*", "*fraction_clipped*"],
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
    # ``val`` only as a whole word: ``Loss/value_function`` is not a validation loss
    "val_loss": [
        "val_loss*",
        "valid*_loss*",
        "validation/*loss*",
        "eval/*loss*",
        "test/*loss*",
        "val/*loss*",
        "loss/val",
        "loss/val_*",
        "loss/val/*",
        "loss/valid*",
    ],
    # Curriculum progress (ML-Agents lessons, task difficulty, legged_gym terrain levels and
    # command ranges): a reward drop when it steps up is expected, not a collapse.
    "curriculum": [
        "*lesson*",
        "*curriculum*",
        "*difficulty*",
        "*terrain_level*",
        "*max_command*",
        "!*/time",
    ],
}

ROLE_NAMES: Tuple[str, ...] = tuple(DEFAULT_PATTERNS)

#: Words that mark an evaluation (held-out) series; matched as whole words of the tag.
EVAL_WORDS: FrozenSet[str] = frozenset(
    {"eval", "evaluation", "evaluate", "test", "testing", "val", "valid", "validation"}
)

_WORDS = re.compile(r"[a-z0-9]+")


def is_eval_tag(base: str) -> bool:
    """True when a word of ``base`` marks evaluation (``eval``, ``test``, ``val`` ...).

    Words are runs of letters and digits, so ``eval_average_episode_rewards`` and
    ``test/reward`` are evaluation tags while ``loss/value_function`` and ``retest`` are not.
    A word starting with ``eval`` (``evaluations``) counts too.
    """
    for word in _WORDS.findall(base.lower()):
        if word in EVAL_WORDS or word.startswith("eval"):
            return True
    return False


# --------------------------------------------------------------------------------------------
# Pattern matching
# --------------------------------------------------------------------------------------------

_AGENT_PREFIX = re.compile(r"^(agent[_-]?\d+)/(.+)$", re.IGNORECASE)


def split_agent(tag: str) -> Tuple[Optional[str], str]:
    """``"agent3/dist_entropy"`` -> ``("agent3", "dist_entropy")``; other tags -> ``(None, tag)``."""
    found = _AGENT_PREFIX.match(tag)
    if found:
        return found.group(1), found.group(2)
    return None, tag


_SEPARATORS = str.maketrans({" ": "_", "-": "_"})
_COMPILED: Dict[str, Callable[[str], bool]] = {}


def _compile(pattern: str) -> Callable[[str], bool]:
    """A predicate on a lowercased name for one positive pattern (cached; patterns are few).

    Globs match with space, ``-`` and ``_`` as one character: writers rename tags
    (tensorboardX turns ML-Agents' ``Cumulative Reward`` into ``Cumulative_Reward``).
    ``re:`` patterns see the tag as written (lowercased)."""
    test = _COMPILED.get(pattern)
    if test is None:
        if pattern.startswith("re:"):
            search = re.compile(pattern[3:], re.IGNORECASE).search

            def test(name: str, search: Any = search) -> bool:
                return search(name) is not None

        else:
            glob = re.compile(fnmatch.translate(pattern.lower().translate(_SEPARATORS)))
            full = glob.match

            def test(name: str, full: Any = full) -> bool:
                return full(name.translate(_SEPARATORS)) is not None

        if len(_COMPILED) < 4096:
            _COMPILED[pattern] = test
    return test


def match_index(patterns: List[str], name: str) -> Optional[int]:
    """Index of the first positive pattern matching ``name``; None if none matches or an
    excluding (``!``) pattern does."""
    lowered = name.lower()
    hit = None
    for index, pattern in enumerate(patterns):
        if pattern.startswith("!"):
            if _compile(pattern[1:])(lowered):
                return None
        elif hit is None and _compile(pattern)(lowered):
            hit = index
    return hit


def matches(patterns: List[str], name: str) -> bool:
    """True when ``name`` is matched by a positive pattern of ``patterns`` and no excluding one."""
    return match_index(patterns, name) is not None


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------


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
    """Tags of a run grouped by role; every list is in tag order except ``reward`` (priority).

    A :class:`Roles` returned by :func:`classify` may be shared (cached): do not mutate it.
    """

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
    #: curriculum progress (lesson, terrain level, command range): a reward drop when it steps
    #: up is expected, not a collapse
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
        """Role -> tags, for roles that hold any tag."""
        return {
            name: [ref.tag for ref in value]
            for name, value in vars(self).items()
            if name != "agents" and value
        }

    def unclassified(self, tags: Iterable[str]) -> List[str]:
        """The tags of ``tags`` that got no role (sorted)."""
        placed = set()
        for name, value in vars(self).items():
            if name != "agents":
                placed.update(ref.tag for ref in value)
        return sorted(set(tags) - placed)


@dataclass(frozen=True)
class RoleRule:
    """One row of :data:`ROLE_TABLE`: a tag goes into the :class:`Roles` field ``target`` with
    the ``(kind, sign)`` of the first of ``alternatives`` (pattern-list names, in order) that
    matches it. ``unless_reward``: skip tags that are already a reward."""

    target: str
    alternatives: Tuple[Tuple[str, str, float], ...]
    unless_reward: bool = False


def _one(role: str, kind: str = "") -> RoleRule:
    return RoleRule(role, ((role, kind, 1.0),))


#: Every role but ``reward`` (handled first: its pattern index is a priority) and
#: ``main_reward`` (chosen among the rewards).
ROLE_TABLE: Tuple[RoleRule, ...] = (
    _one("success", "success"),
    RoleRule(
        "entropy",
        (
            ("entropy_negated", "entropy_loss", -1.0),
            ("entropy_std", "std", 1.0),
            ("entropy", "entropy", 1.0),
        ),
    ),
    _one("value_loss"),
    _one("explained_variance"),
    _one("policy_loss"),
    RoleRule(
        "grad_norm",
        (
            ("grad_norm_actor", "actor", 1.0),
            ("grad_norm_critic", "critic", 1.0),
            ("grad_norm", "other", 1.0),
        ),
    ),
    RoleRule("reward_component", (("reward_component", "", 1.0),), unless_reward=True),
    _one("ratio"),
    _one("approx_kl"),
    _one("clip_fraction"),
    _one("q_value"),
    _one("actor_loss"),
    _one("train_loss"),
    _one("val_loss"),
    _one("curriculum"),
)

_PatternKey = Tuple[Tuple[str, Tuple[str, ...]], ...]


#: What a tag name (without its agent prefix) matched: its reward priority (or None) and the
#: (role field, kind, sign) of every table row it fell into.
_BaseRoles = Tuple[Optional[int], Tuple[Tuple[str, str, float], ...]]


def _roles_of_base(base: str, patterns: Mapping[str, List[str]]) -> _BaseRoles:
    reward_index = match_index(patterns.get("reward", []), base)
    found = []
    for rule in ROLE_TABLE:
        if rule.unless_reward and reward_index is not None:
            continue
        for name, kind, sign in rule.alternatives:
            if matches(patterns.get(name, []), base):
                found.append((rule.target, kind, sign))
                break
    return reward_index, tuple(found)


def _classify(
    tags: FrozenSet[str],
    patterns: Mapping[str, List[str]],
    memo: Mapping[str, _BaseRoles],
    fresh: Dict[str, _BaseRoles],
) -> Roles:
    """Classify ``tags``; names already in ``memo`` are not matched again, new ones go to
    ``fresh``."""
    roles = Roles()
    reward_candidates: List[Tuple[bool, int, str, MetricRef]] = []
    for tag in sorted(tags):
        agent, base = split_agent(tag)
        if agent is not None:
            roles.agents.setdefault(agent, []).append(tag)
        matched = memo.get(base) or fresh.get(base)
        if matched is None:
            matched = fresh[base] = _roles_of_base(base, patterns)
        reward_index, found = matched
        if reward_index is not None:
            item = MetricRef(tag=tag, base=base, agent=agent, priority=reward_index)
            roles.reward.append(item)
            reward_candidates.append((is_eval_tag(base), reward_index, tag, item))
        for target, kind, sign in found:
            ref = MetricRef(tag=tag, base=base, agent=agent, sign=sign, kind=kind)
            getattr(roles, target).append(ref)

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


_CACHE: OrderedDict[Tuple[FrozenSet[str], _PatternKey], Roles] = OrderedDict()
_CACHE_SIZE = 1024
_CACHE_LOCK = threading.Lock()
#: per pattern set: tag name -> what it matched, so a new tag set (a sweep's runs differ by a
#: tag or two, per-agent tags repeat a base) only matches the names not seen before
_BASE_MEMO: OrderedDict[_PatternKey, Dict[str, _BaseRoles]] = OrderedDict()
_BASE_MEMO_SIZE = 8
_BASE_MEMO_NAMES = 100_000
_cache_stats = {"hits": 0, "misses": 0}


def classify(
    tags: Iterable[str],
    config: Optional[PatternSource] = None,
    patterns: Optional[Mapping[str, List[str]]] = None,
) -> Roles:
    """Put each tag into the roles its name matches (a tag may have several roles).

    Patterns come from ``patterns`` if given, else ``config.patterns``, else the defaults. The
    result is cached (LRU, 1024 entries) on the tag set and the patterns' content, so a changed
    pattern list is never served a stale answer; the returned object is shared: read-only. A new
    tag set only matches the tag names (agent prefix removed) not seen before with the same
    patterns.
    """
    if patterns is None:
        patterns = config.patterns if config is not None else DEFAULT_PATTERNS
    tag_set = frozenset(tags)
    key = (tag_set, tuple((role, tuple(items)) for role, items in patterns.items()))
    with _CACHE_LOCK:  # the daemon and monitors judge from several threads
        roles = _CACHE.get(key)
        if roles is not None:
            _CACHE.move_to_end(key)
            _cache_stats["hits"] += 1
            return roles
        _cache_stats["misses"] += 1
        memo = _BASE_MEMO.get(key[1])
        if memo is None or len(memo) > _BASE_MEMO_NAMES:
            memo = _BASE_MEMO[key[1]] = {}
            if len(_BASE_MEMO) > _BASE_MEMO_SIZE:
                _BASE_MEMO.popitem(last=False)
        _BASE_MEMO.move_to_end(key[1])
    fresh: Dict[str, _BaseRoles] = {}
    roles = _classify(tag_set, patterns, memo, fresh)
    with _CACHE_LOCK:
        memo.update(fresh)
        _CACHE[key] = roles
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return roles


def classify_cache_info() -> Dict[str, int]:
    """Hits, misses and current size of the :func:`classify` cache (for benchmarks and tests)."""
    return {"hits": _cache_stats["hits"], "misses": _cache_stats["misses"], "size": len(_CACHE)}
