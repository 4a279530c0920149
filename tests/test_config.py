"""Config loading (TOML over defaults, one-line errors) and tag classification."""

from __future__ import annotations

import pytest

from tblive.judge.metrics import Config, ConfigError, classify, load_config


def write(tmp_path, text):
    path = tmp_path / "tblive.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file():
    config = Config.default()
    assert config.grace.min_points == 25
    assert config.threshold("entropy", "rise") == 0.1
    assert config.disabled == []


def test_load_overrides(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """
disabled = ["overfitting"]
[grace]
min_points = 80
expected_steps = 100000000
[checks.entropy]
rise = 0.3
[checks.ppo]
enabled = false
[patterns]
success = ["my/solved"]
[patterns.extend]
reward = ["custom/score"]
""",
        )
    )
    assert config.grace.min_points == 80 and config.grace.expected_steps == 100_000_000
    assert config.threshold("entropy", "rise") == 0.3
    assert config.threshold("value_loss", "rise_warning") == 3.0  # untouched default
    assert set(config.disabled) == {"Overfitting", "PPO Health"}
    roles = classify(
        ["my/solved", "eval/success_rate", "custom/score", "rollout/ep_rew_mean"], config
    )
    assert [r.tag for r in roles.success] == ["my/solved"]
    assert [r.tag for r in roles.main_reward] == ["custom/score"]
    assert (
        Config.default().patterns["success"] != config.patterns["success"]
    )  # defaults not mutated


@pytest.mark.parametrize(
    "text,key",
    [
        ("bogus = 1", "bogus"),
        ("[grace]\nmin_point = 3", "grace.min_point"),
        ("[grace]\nmin_points = -1", "grace.min_points"),
        ("[grace]\nfraction = 2.0", "grace.fraction"),
        ("[checks.entropy]\nrise = 'high'", "checks.entropy.rise"),
        ("[checks.entropy]\nraise = 0.2", "checks.entropy.raise"),
        ("[checks.nope]\nx = 1", "checks.nope"),
        ("[checks.ppo]\nenabled = 1", "checks.ppo.enabled"),
        ("[patterns]\nrewardz = ['x']", "patterns.rewardz"),
        ("[patterns]\nreward = 3", "patterns.reward"),
        ("[patterns]\nreward = ['re:(']", "patterns.reward"),
        ("disabled = ['No Such Check']", "disabled"),
        ("[grace\nmin_points = 1", "invalid TOML"),
    ],
)
def test_bad_config_one_line_error(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    "tags,role,expected",
    [
        # HARL / MAPush
        (
            ["agent0/dist_entropy", "agent1/dist_entropy"],
            "entropy",
            ["agent0/dist_entropy", "agent1/dist_entropy"],
        ),
        (
            ["agent0/actor_grad_norm", "critic/critic_grad_norm"],
            "grad_norm",
            ["agent0/actor_grad_norm", "critic/critic_grad_norm"],
        ),
        (["critic/value_loss"], "value_loss", ["critic/value_loss"]),
        (
            ["mapush/success_rate", "eval_win_rate", "incre_win_rate"],
            "success",
            ["eval_win_rate", "incre_win_rate", "mapush/success_rate"],
        ),
        (
            ["rewards/push_reward", "average_step_reward"],
            "reward_component",
            ["rewards/push_reward"],
        ),
        # old OpenRL layout: every *_reward / *_punishment except the main reward
        (
            ["average_step_reward", "push_reward", "collision_punishment", "ratio"],
            "reward_component",
            ["collision_punishment", "push_reward"],
        ),
        (
            ["ratio", "agent0/ratio", "agent0/dead_ratio", "debug/done_ratio"],
            "ratio",
            ["agent0/ratio", "ratio"],
        ),
        # SB3
        (["train/approx_kl"], "approx_kl", ["train/approx_kl"]),
        (["train/clip_fraction", "train/clip_range"], "clip_fraction", ["train/clip_fraction"]),
        # CleanRL, rsl_rl, ML-Agents
        (
            ["losses/value_loss", "Loss/value_function", "Losses/Value Loss"],
            "value_loss",
            ["Loss/value_function", "Losses/Value Loss", "losses/value_loss"],
        ),
        (
            ["Loss/surrogate", "losses/policy_loss", "train/policy_gradient_loss"],
            "policy_loss",
            ["Loss/surrogate", "losses/policy_loss", "train/policy_gradient_loss"],
        ),
        (["Episode/rew_torques", "Train/mean_reward"], "reward_component", ["Episode/rew_torques"]),
        # TD3
        (
            ["debug/actor_q_mean", "train/q1_value", "debug/td_error_q1", "debug/q1_std"],
            "q_value",
            ["debug/actor_q_mean", "train/q1_value"],
        ),
        (["train/actor_loss"], "actor_loss", ["train/actor_loss"]),
        # Lightning / Keras
        (
            ["train_loss", "val_loss", "train/epoch_loss", "train/value_loss", "train/loss"],
            "train_loss",
            ["train/epoch_loss", "train_loss"],
        ),
        (
            ["val_loss", "validation/epoch_loss", "test/Logloss"],
            "val_loss",
            ["test/Logloss", "val_loss", "validation/epoch_loss"],
        ),
    ],
)
def test_classify_roles(tags, role, expected):
    roles = classify(tags)
    assert sorted(r.tag for r in getattr(roles, role)) == expected


@pytest.mark.parametrize(
    "tags,main",
    [
        (["rollout/ep_rew_mean", "eval/mean_reward"], ["rollout/ep_rew_mean"]),
        (["charts/episodic_return"], ["charts/episodic_return"]),
        (["Train/mean_reward", "Episode/rew_tracking_lin_vel"], ["Train/mean_reward"]),
        (["Environment/Cumulative Reward", "Self-play/ELO"], ["Self-play/ELO"]),
        (
            ["train_episode_rewards/aver_rewards", "average_step_reward"],
            ["train_episode_rewards/aver_rewards"],
        ),
        (["eval_average_episode_rewards", "eval_win_rate"], ["eval_average_episode_rewards"]),
        (
            [
                "agent0/average_episode_rewards",
                "agent1/average_episode_rewards",
                "agent0/eval_average_episode_rewards",
            ],
            ["agent0/average_episode_rewards", "agent1/average_episode_rewards"],
        ),
        (
            ["train/episode_reward", "eval/mean_reward", "progress/current_reward"],
            ["train/episode_reward"],
        ),
    ],
)
def test_main_reward(tags, main):
    assert [r.tag for r in classify(tags).main_reward] == main


def test_entropy_signs_and_kinds():
    roles = classify(
        [
            "train/entropy_loss",
            "Policy/mean_noise_std",
            "train/std",
            "Policy/Entropy",
            "losses/entropy",
        ]
    )
    kinds = {r.tag: (r.sign, r.kind) for r in roles.entropy}
    assert kinds["train/entropy_loss"] == (-1.0, "entropy_loss")
    assert kinds["Policy/mean_noise_std"] == (1.0, "std") and kinds["train/std"] == (1.0, "std")
    assert kinds["Policy/Entropy"] == (1.0, "entropy") and kinds["losses/entropy"] == (
        1.0,
        "entropy",
    )


def test_agents_grouped():
    roles = classify(["agent0/ratio", "agent1/ratio", "agent0/value_loss", "eval_win_rate"])
    assert roles.agents == {
        "agent0": ["agent0/ratio", "agent0/value_loss"],
        "agent1": ["agent1/ratio"],
    }
    assert {(r.agent, r.base) for r in roles.ratio} == {("agent0", "ratio"), ("agent1", "ratio")}


def test_regex_and_exclusion_patterns():
    config = Config.default()
    config.patterns["success"] = [r"re:^goal_(hit|reached)$", "!*debug*"]
    roles = classify(["goal_hit", "goal_reached", "goal_hits", "debug/goal_hit"], config)
    assert sorted(r.tag for r in roles.success) == ["goal_hit", "goal_reached"]


def test_readme_documents_every_config_key(tmp_path):
    """The TOML example in docs/configuration.md loads, and names every threshold the code has."""
    from pathlib import Path

    from tblive.judge.metrics import DEFAULT_THRESHOLDS

    readme = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(
        encoding="utf-8"
    )
    section = readme[readme.index("# Configuration") :]
    block = section[
        section.index("```toml") + len("```toml") : section.index(
            "```", section.index("```toml") + 7
        )
    ]
    path = tmp_path / "tblive.toml"
    path.write_text(block, encoding="utf-8")
    config = load_config(str(path))
    for check, keys in DEFAULT_THRESHOLDS.items():
        for key in keys:
            assert config.threshold(check, key) == pytest.approx(DEFAULT_THRESHOLDS[check][key]), (
                check,
                key,
            )
            assert "\n%s = " % key in block or "\n%s =" % key in block, (check, key)
