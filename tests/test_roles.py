"""Tag roles: the table, the cache, evaluation tags, and the roles of common writers."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tblive.judge.config import Config
from tblive.judge.roles import (
    DEFAULT_PATTERNS,
    ROLE_TABLE,
    Roles,
    classify,
    classify_cache_info,
    is_eval_tag,
)

REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "realworld"


def tags_of(roles: Roles, role: str):
    return sorted(r.tag for r in getattr(roles, role))


def test_table_covers_every_role_and_pattern_list():
    fields = {f.name for f in dataclasses.fields(Roles)} - {"agents", "main_reward", "reward"}
    assert {rule.target for rule in ROLE_TABLE} == fields
    used = {name for rule in ROLE_TABLE for name, _, _ in rule.alternatives} | {"reward"}
    assert used == set(DEFAULT_PATTERNS)


def test_cache_returns_the_same_roles_for_the_same_tag_set():
    tags = ["rollout/ep_rew_mean", "train/entropy_loss", "train/value_loss", "cache/probe_a"]
    before = classify_cache_info()
    first = classify(tags)
    second = classify(list(reversed(tags)))  # order does not matter: a set
    after = classify_cache_info()
    assert first is second
    assert after["hits"] >= before["hits"] + 1
    assert tags_of(first, "main_reward") == ["rollout/ep_rew_mean"]


def test_cache_sees_changed_patterns():
    tags = ["my/solved", "eval/success_rate", "cache/probe_b"]
    config = Config.default()
    assert tags_of(classify(tags, config), "success") == ["eval/success_rate"]
    config.patterns["success"] = ["my/solved"]  # mutated in place: must not be served stale
    assert tags_of(classify(tags, config), "success") == ["my/solved"]
    assert tags_of(classify(tags), "success") == ["eval/success_rate"]


def test_classification_is_cheap_the_second_time():
    """The per-evaluation cost is a look-up, not a re-run of every pattern (issue: 25-31% of a
    verdict went to classification). Counted, not timed."""
    tags = ["agent%d/%s" % (a, t) for a in range(8) for t in ("dist_entropy", "policy_loss")]
    tags += ["average_step_reward", "cache/probe_c"]
    classify(tags)
    misses = classify_cache_info()["misses"]
    for _ in range(50):
        classify(tags)
    assert classify_cache_info()["misses"] == misses


@pytest.mark.parametrize(
    "tag,expected",
    [
        ("eval/mean_reward", True),
        ("eval_average_episode_rewards", True),
        ("test/reward", True),
        ("test_return_mean", True),
        ("ray/tune/evaluation/episode_reward_mean", True),
        ("val/loss", True),
        ("Loss/value_function", False),
        ("interval_reward", False),
        ("retest_score", False),
        ("train/reward", False),
    ],
)
def test_eval_words_are_whole_words(tag, expected):
    assert is_eval_tag(tag) is expected


@pytest.mark.parametrize(
    "tags,main",
    [
        # Tianshou: train/reward is the return; test/reward is its evaluation
        (["train/reward", "test/reward", "train/length"], ["train/reward"]),
        (["test/reward", "test/reward_std"], ["test/reward"]),
        (["train/rew", "test/rew", "train/rew_std"], ["train/rew"]),
        # PyMARL: return_mean before test_return_mean; the std is not a return
        (["return_mean", "return_std", "test_return_mean"], ["return_mean"]),
        # RLlib: the mean, not its extremes, not the evaluation
        (
            [
                "ray/tune/episode_reward_max",
                "ray/tune/episode_reward_mean",
                "ray/tune/episode_reward_min",
                "ray/tune/evaluation/episode_reward_mean",
            ],
            ["ray/tune/episode_reward_mean"],
        ),
        # Sample Factory
        (["reward/reward", "reward/reward_max", "reward/reward_min"], ["reward/reward"]),
        # per-step rewards of multi-agent trainers
        (["step_rewards_agent0"], ["step_rewards_agent0"]),
    ],
)
def test_main_reward_of_common_writers(tags, main):
    assert [r.tag for r in classify(tags).main_reward] == main


@pytest.mark.parametrize(
    "tags,role,expected",
    [
        (
            ["battle_won_mean", "test_battle_won_mean"],
            "success",
            ["battle_won_mean", "test_battle_won_mean"],
        ),
        (
            ["Episode/terrain_level", "Episode/max_command_x", "Episode/rew_tracking_lin_vel"],
            "curriculum",
            ["Episode/max_command_x", "Episode/terrain_level"],
        ),
        (
            ["Environment/Lesson Number/ball_touch", "Train/mean_reward/time"],
            "curriculum",
            ["Environment/Lesson Number/ball_touch"],
        ),
        (["Loss/value_function", "loss/val", "val/loss"], "val_loss", ["loss/val", "val/loss"]),
        (["Losses/Baseline Loss"], "value_loss", ["Losses/Baseline Loss"]),
        (
            ["learner_stats/vf_explained_var"],
            "explained_variance",
            ["learner_stats/vf_explained_var"],
        ),
        (
            ["train/kl_divergence", "learner_stats/cur_kl_coeff"],
            "approx_kl",
            ["train/kl_divergence"],
        ),
        (["train/fraction_clipped"], "clip_fraction", ["train/fraction_clipped"]),
        (
            ["agent0/individual_rewards", "agent0/average_episode_rewards"],
            "reward_component",
            ["agent0/individual_rewards"],
        ),
    ],
)
def test_roles_of_common_writers(tags, role, expected):
    assert tags_of(classify(tags), role) == expected


def test_value_function_loss_is_not_a_validation_loss():
    roles = classify(["Loss/value_function", "Loss/surrogate", "Train/mean_reward"])
    assert roles.val_loss == []
    assert tags_of(roles, "value_loss") == ["Loss/value_function"]


def test_unclassified_lists_tags_without_a_role():
    tags = ["rollout/ep_rew_mean", "time/fps", "train/learning_rate"]
    assert classify(tags).unclassified(tags) == ["time/fps", "train/learning_rate"]


def _realworld_tag_sets():
    from tblive.read.runs import load_points

    for case in sorted(p for p in REALWORLD.iterdir() if p.is_dir()):
        for run, series in load_points(str(case)).items():
            yield case.name, run, sorted(series)


_RETURN_WORD = re.compile(r"(^|[^a-z])(reward|rewards|rew|return|returns)([^a-z]|$)")


@pytest.mark.skipif(not REALWORLD.is_dir(), reason="../shared/realworld not present")
def test_every_realworld_run_logging_a_return_gets_a_main_reward():
    """A general property, not a list of files: a run that logs a tag named like an episode
    reward or return (not a spread, an extreme, a time axis or a component) gets a main reward,
    and a run logging a win or success rate gets the success role."""
    missing = []
    for case, run, tags in _realworld_tag_sets():
        roles = classify(tags)
        returns = [
            t
            for t in tags
            if _RETURN_WORD.search(t.lower())
            and not re.search(r"(_std|_max|_min|/time|current_reward|/\w+_reward)$", t.lower())
            and not t.lower().startswith(("episode/rew_", "rewards/", "debug/", "eval/"))
        ]
        if returns and not roles.main_reward:
            missing.append((case, run, returns))
        wins = [t for t in tags if re.search(r"(win|won|success)", t.lower())]
        if wins and not roles.success:
            missing.append((case, run, wins))
    assert missing == []
