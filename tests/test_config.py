"""Config loading (TOML over defaults, one-line errors) and tag classification."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from tblive.errors import ConfigError
from tblive.judge.config import (
    CHECK_KEYS,
    DEFAULT_THRESHOLDS,
    THRESHOLD_TYPES,
    Config,
    threshold_docs,
)
from tblive.judge.config_file import load_config
from tblive.judge.roles import classify


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
    # [patterns] extends the defaults: the default success pattern still matches
    assert [r.tag for r in roles.success] == ["eval/success_rate", "my/solved"]
    # ... and the user's reward patterns come first: they take priority for the main reward
    assert [r.tag for r in roles.main_reward] == ["custom/score"]
    assert Config.default().patterns["success"] != config.patterns["success"]  # not mutated


def test_patterns_replace_list(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """
[patterns]
replace = ["success"]
success = ["my/solved"]
entropy = ["my/ent"]
""",
        )
    )
    roles = classify(["my/solved", "eval/success_rate", "my/ent", "policy/entropy"], config)
    assert [r.tag for r in roles.success] == ["my/solved"]  # replaced: defaults gone
    assert sorted(r.tag for r in roles.entropy) == ["my/ent", "policy/entropy"]  # extended


def test_patterns_extend_table_still_accepted(tmp_path):
    """The earlier ``[patterns.extend]`` spelling means the same as plain ``[patterns]``."""
    config = load_config(write(tmp_path, "[patterns.extend]\nreward = ['custom/score']\n"))
    plain = load_config(write(tmp_path, "[patterns]\nreward = ['custom/score']\n"))
    assert config.patterns == plain.patterns
    assert config.patterns["reward"][0] == "custom/score"
    assert set(Config.default().patterns["reward"]) < set(config.patterns["reward"])


def test_exclusion_pattern_extends_by_removing(tmp_path):
    """An excluding pattern added to a role removes matching tags from the default role."""
    config = load_config(write(tmp_path, "[patterns]\nsuccess = ['!*success_bonus*']\n"))
    roles = classify(["env/success_rate", "env/success_bonus"], config)
    assert [r.tag for r in roles.success] == ["env/success_rate"]
    assert sorted(r.tag for r in classify(["env/success_rate", "env/success_bonus"]).success) == [
        "env/success_bonus",
        "env/success_rate",
    ]


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
        ("[patterns]\nreplace = ['success']", "patterns.replace"),
        ("[patterns]\nreplace = ['nope']\nnope = ['x']", "patterns.replace"),
        ("[patterns]\nreplace = 3", "patterns.replace"),
        ("[patterns.extend]\nsucess = ['x']", "patterns.extend.sucess"),
        ("[checks.success]\nlow = 1.5", "checks.success.low"),
        ("[checks.success]\nlow = nan", "checks.success.low"),
        ("[grace]\nmin_points = 2.5", "grace.min_points"),
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


DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
FAILED_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "logs" / "mapush_failed"


def _toml_blocks(text):
    blocks, start = [], 0
    while "```toml" in text[start:]:
        begin = text.index("```toml", start) + len("```toml")
        end = text.index("```", begin)
        blocks.append(text[begin:end])
        start = end + 3
    return blocks


def _fmt(value):
    return repr(value) if (value == 0 or 1e-2 <= abs(value) < 1e5) else "%g" % value


def test_docs_reference_matches_declared_thresholds():
    """Every threshold declared in code is in docs/configuration.md with its default, and the
    page names no threshold the code does not have."""
    import tblive.judge.rules  # noqa: F401  (rules may register their own thresholds)

    text = DOCS.read_text(encoding="utf-8")
    assert set(CHECK_KEYS) <= set(THRESHOLD_TYPES)
    for check in THRESHOLD_TYPES:
        head = "### `[checks.%s]`" % check
        assert head in text, "docs/configuration.md lacks a %s table for [checks.%s]" % (
            head,
            check,
        )
        section = text[text.index(head) + len(head) :].split("\n### ", 1)[0]
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.MULTILINE)
        documented = {name: value.strip() for name, value in rows}
        declared = threshold_docs(check)
        assert set(documented) == set(declared), check
        for name, (default, doc, _share) in declared.items():
            assert documented[name] == _fmt(default), (check, name)
            assert doc, (check, name)  # every field carries its one-line doc


def test_typed_thresholds_are_the_defaults():
    for check, kind in THRESHOLD_TYPES.items():
        typed = Config.default().typed_thresholds(check)
        assert isinstance(typed, kind)
        for name, value in DEFAULT_THRESHOLDS[check].items():
            assert getattr(typed, name) == value
        for f in dataclasses.fields(typed):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(typed, f.name, 1.0)
    assert Config.default().typed_thresholds("grad_norm").spike == 30.0


@pytest.mark.skipif(not FAILED_EXAMPLE.is_dir(), reason="example logs not in this checkout")
def test_docs_example_is_safe_to_copy(tmp_path):
    """Copying the page's first TOML block keeps every check on the failed example run (the
    README's old example replaced the success patterns and silently dropped Success Rate)."""
    from tblive.cli import main
    from tblive.doors.posthoc import analyze

    path = tmp_path / "tblive.toml"
    path.write_text(_toml_blocks(DOCS.read_text(encoding="utf-8"))[0], encoding="utf-8")
    config = load_config(path)
    for role, patterns in Config.default().patterns.items():
        assert set(patterns) <= set(config.patterns[role]), role  # nothing removed
    default = {r.name: r.verdict for r in analyze(str(FAILED_EXAMPLE))}
    copied = {r.name: r.verdict for r in analyze(str(FAILED_EXAMPLE), config)}
    assert default.keys() == copied.keys()
    for name, verdict in default.items():
        checks = {f.check for f in verdict.findings} - set(config.disabled)
        assert "Success Rate" in checks
        assert checks == {f.check for f in copied[name].findings}
        assert copied[name].status == verdict.status
    out = tmp_path / "report.json"
    code = main(["report", str(FAILED_EXAMPLE), "--config", str(path), "--json", str(out)])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert "Success Rate" in {d["name"] for d in report["diagnostics"]}
    assert report["status"] == max(v.status for v in default.values()).name
    assert code == 0


def test_docs_replace_example_replaces(tmp_path):
    path = tmp_path / "tblive.toml"
    path.write_text(_toml_blocks(DOCS.read_text(encoding="utf-8"))[1], encoding="utf-8")
    config = load_config(path)
    assert config.patterns["success"] == ["re:^goal_(hit|reached)$"]
    assert config.patterns["entropy"][0] == "my/ent"
    assert len(config.patterns["entropy"]) == len(Config.default().patterns["entropy"]) + 1


def test_a_check_without_thresholds_can_be_disabled(tmp_path):
    from tblive.judge.rules import CHECK_NAMES

    for key, name in CHECK_NAMES.items():
        config = load_config(write(tmp_path, "[checks.%s]\nenabled = false\n" % key))
        assert config.disabled == [name]


def test_a_new_rule_registers_its_typed_thresholds(tmp_path):
    from tblive.judge import config as config_module

    @dataclasses.dataclass(frozen=True)
    class GapThresholds:
        gap: float = dataclasses.field(
            default=0.5, metadata={"doc": "gap to siblings", "share": True}
        )

    before = Config.default()  # made before the registration
    config_module.register_thresholds("probe_gap", GapThresholds)
    try:
        assert before.threshold("probe_gap", "gap") == 0.5  # falls back to the default
        assert Config.default().typed_thresholds("probe_gap") == GapThresholds()
        loaded = load_config(write(tmp_path, "[checks.probe_gap]\ngap = 0.25\n"))
        assert loaded.threshold("probe_gap", "gap") == 0.25
        with pytest.raises(ConfigError, match="checks.probe_gap.gap"):
            load_config(write(tmp_path, "[checks.probe_gap]\ngap = 2.0\n"))
        with pytest.raises(TypeError):
            config_module.register_thresholds(
                "probe_bad", dataclasses.make_dataclass("X", [("a", float)])
            )
    finally:
        config_module.THRESHOLD_TYPES.pop("probe_gap", None)
        config_module.DEFAULT_THRESHOLDS.pop("probe_gap", None)
