"""Checks on synthetic metric sequences: each check fires on its pattern and stays quiet otherwise."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pytest

from tblive.judge.config import Config
from tblive.judge.context import FINISHED, RunContext
from tblive.judge.findings import Status
from tblive.judge.roles import classify
from tblive.judge.rules import CHECK_NAMES, CHECKS
from tblive.judge.verdict import evaluate
from tblive.series.stats import MetricStats

N = 200
RNG_SEED = 7


def build(series: Dict[str, np.ndarray], points: Optional[int] = None) -> Dict[str, MetricStats]:
    view = {}
    for tag, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        count = len(values) if points is None else min(points, len(values))
        stats = MetricStats()
        stats.update_many(np.arange(count) * 1000, values[:count])
        view[tag] = stats
    return view


def ramp(
    start: float, end: float, noise: float = 0.0, n: int = N, seed: int = RNG_SEED
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.linspace(start, end, n) + rng.normal(0.0, noise, n)


def flat(level: float, noise: float = 0.0, n: int = N, seed: int = RNG_SEED) -> np.ndarray:
    return ramp(level, level, noise, n, seed)


def worst(series: Dict[str, np.ndarray], check: str, points: Optional[int] = None, config=None):
    verdict = evaluate("run", build(series, points), config)
    found = [f for f in verdict.findings if f.check == check]
    return max((f.status for f in found), default=None), found


# (case id, check, series, expected worst status of that check)
CASES = [
    # Non-finite Values
    (
        "nan-loss",
        "Non-finite Values",
        {"train/value_loss": np.r_[flat(0.5, 0.01, 100), [np.nan], flat(0.5, 0.01, 99)]},
        Status.CRITICAL,
    ),
    (  # a "best so far" initialised at -inf, finite ever since: said, not fatal
        "inf-first-point-only",
        "Non-finite Values",
        {"eval/best_mean_reward": np.r_[[-np.inf], ramp(10, 400, 5.0, 99)]},
        Status.WARNING,
    ),
    (
        "inf-grad",
        "Non-finite Values",
        {"actor_grad_norm": np.r_[flat(1.0, 0.1, 50), [np.inf]]},
        Status.CRITICAL,
    ),
    ("all-finite", "Non-finite Values", {"train/value_loss": flat(0.5, 0.01)}, Status.OK),
    # Success Rate
    (
        "success-zero-no-learning",
        "Success Rate",
        {"mapush/success_rate": np.zeros(N), "average_step_reward": flat(-0.05, 0.01)},
        Status.WARNING,
    ),
    (
        "success-zero-reward-rising",
        "Success Rate",
        {"mapush/success_rate": np.zeros(N), "average_step_reward": ramp(-400, -150, 10)},
        Status.WARNING,
    ),
    (  # success never clearly left ~0 and the return is flat for 200 points: not solved
        "success-near-zero-nothing-improves",
        "Success Rate",
        {"eval_win_rate": flat(0.04, 0.01), "eval_average_episode_rewards": flat(10, 0.5)},
        Status.WARNING,
    ),
    (  # the same low success while the return improves: said, not fatal
        "success-low-return-improving",
        "Success Rate",
        {"eval_win_rate": flat(0.04, 0.01), "eval_average_episode_rewards": ramp(10, 30, 0.5)},
        Status.WARNING,
    ),
    (
        "success-percent-rising",
        "Success Rate",
        {"success_rate": ramp(0, 80, 2).clip(0, 100)},
        Status.OK,
    ),
    (
        "success-regressed",
        "Success Rate",
        {"eval_win_rate": np.r_[ramp(0.1, 0.9, 0.02, 100), ramp(0.9, 0.3, 0.02, 100)].clip(0, 1)},
        Status.WARNING,
    ),
    # Reward Trend
    ("reward-rising", "Reward Trend", {"rollout/ep_rew_mean": ramp(20, 500, 10)}, Status.OK),
    (
        "reward-fast-then-plateau",
        "Reward Trend",
        {"eval_average_episode_rewards": np.r_[ramp(12, 19, 0.3, 20), flat(19.3, 0.3, 180)]},
        Status.OK,
    ),
    # a lone flat return is the weakest sign: WARNING for a while, CRITICAL after 8 x grace
    (
        "reward-flat-150-points",
        "Reward Trend",
        {"charts/episodic_return": flat(5.0, 1.0, 150)},
        Status.WARNING,
    ),
    (
        "reward-flat-200-points",
        "Reward Trend",
        {"charts/episodic_return": flat(5.0, 1.0)},
        Status.WARNING,
    ),
    ("reward-falling", "Reward Trend", {"Train/mean_reward": ramp(10, 2, 0.3)}, Status.CRITICAL),
    (
        "reward-falling-but-success-rising",
        "Reward Trend",
        {"Train/mean_reward": ramp(10, 2, 0.3), "eval/success_rate": ramp(0.1, 0.8, 0.02)},
        Status.WARNING,
    ),
    # Entropy
    (
        "entropy-rising-no-learning",
        "Entropy",
        {"dist_entropy": ramp(1.3, 2.2, 0.03), "average_step_reward": flat(-0.05, 0.01)},
        Status.CRITICAL,
    ),
    (
        "entropy-rising-while-learning",
        "Entropy",
        {"dist_entropy": ramp(4.3, 17.4, 0.2), "average_step_reward": ramp(-378, -174, 15)},
        Status.WARNING,
    ),
    ("entropy-falling", "Entropy", {"Policy/Entropy": ramp(1.6, 0.5, 0.02)}, Status.OK),
    # SB3 entropy_loss = -entropy: rising loss is FALLING entropy (CartPole -0.69 -> -0.23)
    (
        "sb3-entropy-loss-rising-is-fine",
        "Entropy",
        {"train/entropy_loss": ramp(-0.69, -0.23, 0.02), "rollout/ep_rew_mean": flat(20, 2)},
        Status.OK,
    ),
    (
        "sb3-entropy-loss-falling-is-rising-entropy",
        "Entropy",
        {"train/entropy_loss": ramp(-0.5, -1.2, 0.02), "rollout/ep_rew_mean": flat(20, 2)},
        Status.CRITICAL,
    ),
    (
        "noise-std-rising",
        "Entropy",
        {"Policy/mean_noise_std": ramp(1.0, 2.5, 0.02), "Train/mean_reward": flat(0.1, 0.01)},
        Status.CRITICAL,
    ),
    # Value Loss
    (
        "value-loss-falling",
        "Value Loss",
        {"critic/value_loss": ramp(0.5, 0.03, 0.01).clip(1e-3)},
        Status.OK,
    ),
    (
        "value-loss-growing",
        "Value Loss",
        {"value_loss": ramp(0.1, 3.0, 0.02).clip(1e-3)},
        Status.WARNING,
    ),
    ("value-loss-blowup", "Value Loss", {"value_loss": np.geomspace(0.1, 1e4, N)}, Status.CRITICAL),
    (
        "explained-variance-zero",
        "Value Loss",
        {"train/explained_variance": flat(0.0, 0.003)},
        Status.WARNING,
    ),
    (
        "explained-variance-good",
        "Value Loss",
        {"train/explained_variance": flat(0.9, 0.02)},
        Status.OK,
    ),
    # Policy Loss
    ("policy-loss-normal", "Policy Loss", {"policy_loss": flat(-0.01, 0.003)}, Status.OK),
    ("policy-loss-zero", "Policy Loss", {"policy_loss": np.zeros(N)}, Status.CRITICAL),
    (
        "policy-loss-vanished",
        "Policy Loss",
        {"losses/policy_loss": flat(1e-10, 1e-11)},
        Status.WARNING,
    ),
    # Gradient Norms
    ("grad-norm-stable", "Gradient Norms", {"agent0/actor_grad_norm": flat(0.5, 0.05)}, Status.OK),
    (
        "grad-norm-exploding",
        "Gradient Norms",
        {"actor_grad_norm": np.geomspace(0.5, 5e4, N)},
        Status.CRITICAL,
    ),
    (
        "grad-norm-growing",
        "Gradient Norms",
        {"critic_grad_norm": ramp(0.2, 10.0, 0.05)},
        Status.WARNING,
    ),
    (
        "grad-norm-spike",
        "Gradient Norms",
        {"critic_grad_norm": np.r_[flat(0.5, 0.02, 150), [500.0], flat(0.5, 0.02, 49)]},
        Status.WARNING,
    ),
    # Reward Components
    (
        "component-dead",
        "Reward Components",
        {
            "rewards/push_reward": flat(1e-5, 1e-6).clip(0),
            "rewards/approach_reward": flat(2.0, 0.1),
        },
        Status.WARNING,
    ),
    (
        "component-decreasing",
        "Reward Components",
        {"collision_punishment": ramp(-80, -160, 3), "average_step_reward": flat(-1, 0.1)},
        Status.WARNING,
    ),
    (
        "component-healthy",
        "Reward Components",
        {"Episode/rew_tracking_lin_vel": ramp(0.1, 0.9, 0.02)},
        Status.OK,
    ),
    (
        "penalty-near-zero-is-fine",
        "Reward Components",
        {"Episode/rew_torques": flat(-3e-5, 1e-6), "Episode/rew_tracking_lin_vel": flat(0.8, 0.02)},
        Status.OK,
    ),
    # PPO Health
    ("ratio-normal", "PPO Health", {"ratio": flat(1.0, 0.002)}, Status.OK),
    (
        "ratio-off",
        "PPO Health",
        {"ratio": np.r_[flat(1.0, 0.01, 140), flat(3.0, 0.3, 60)]},
        Status.CRITICAL,
    ),
    (
        "ratio-spikes",
        "PPO Health",
        {"ratio": np.r_[flat(1.0, 0.01, 180), flat(1.6, 0.05, 20)]},
        Status.WARNING,
    ),
    (
        "kl-spikes",
        "PPO Health",
        {"train/approx_kl": np.where(np.arange(N) % 4 == 0, 0.5, 0.01)},
        Status.WARNING,
    ),
    ("kl-huge", "PPO Health", {"train/approx_kl": flat(2.0, 0.1)}, Status.CRITICAL),
    ("kl-normal", "PPO Health", {"train/approx_kl": flat(0.01, 0.002)}, Status.OK),
    ("clip-fraction-high", "PPO Health", {"train/clip_fraction": flat(0.8, 0.02)}, Status.WARNING),
    # Frozen Gradients
    (
        "frozen-most",
        "Frozen Gradients",
        {"agent0/actor_grad_norm": np.where(np.arange(N) % 5 == 0, 0.3, 0.0)},
        Status.WARNING,
    ),
    ("frozen-all", "Frozen Gradients", {"gradients/actor_mlp_norm": np.zeros(N)}, Status.CRITICAL),
    ("not-frozen", "Frozen Gradients", {"actor_grad_norm": flat(0.3, 0.02)}, Status.OK),
    # Q-Value Divergence
    (
        "q-diverging",
        "Q-Value Divergence",
        {"debug/actor_q_mean": np.geomspace(8, 14000, N), "train/episode_reward": flat(10, 3)},
        Status.CRITICAL,
    ),
    (
        "actor-loss-blowup-short",
        "Q-Value Divergence",
        {"train/actor_loss": -np.geomspace(3, 7.6e6, 25)},
        Status.CRITICAL,
    ),
    ("q-bounded", "Q-Value Divergence", {"train/q1_value": ramp(3, 40, 1)}, Status.OK),
    # Overfitting
    (
        "overfit",
        "Overfitting",
        {
            "train/epoch_loss": ramp(2.2, 0.8, 0.01),
            "validation/epoch_loss": np.r_[ramp(2.2, 1.35, 0.01, 60), ramp(1.35, 2.0, 0.01, 140)],
        },
        Status.WARNING,
    ),
    (
        "no-overfit",
        "Overfitting",
        {"train_loss": ramp(0.6, 0.3, 0.005), "val_loss": ramp(0.6, 0.31, 0.005)},
        Status.OK,
    ),
    # Sparse reward: nothing to fit at first, so critic norms and losses start near 0 and settle
    # at a normal level once rewards arrive. That is not an explosion nor a divergence.
    (
        "sparse-start-grad-norm",
        "Gradient Norms",
        {"critic_grad_norm": np.r_[flat(1e-4, 1e-5, 40), flat(0.5, 0.05, 160)]},
        Status.WARNING,
    ),
    (
        "sparse-start-value-loss",
        "Value Loss",
        {"critic/value_loss": np.r_[flat(1e-5, 1e-6, 40), flat(0.3, 0.03, 160)]},
        Status.WARNING,
    ),
    (
        "value-loss-exponential-blowup",
        "Value Loss",
        {"critic/value_loss": np.r_[flat(0.5, 0.02, 150), 0.5 * np.exp(np.linspace(0, 12, 50))]},
        Status.CRITICAL,
    ),
    # TD3/SAC critics track the return: Q growing 1 -> 2000 while the return improves is healthy.
    (
        "q-tracks-improving-return",
        "Q-Value Divergence",
        {
            "train/q1_mean": ramp(1.0, 2000.0, 5.0),
            "charts/episodic_return": ramp(-100.0, 3000.0, 50.0),
        },
        Status.WARNING,
    ),
]


@pytest.mark.parametrize("case,check,series,expected", CASES, ids=[c[0] for c in CASES])
def test_check_on_sequence(case, check, series, expected):
    status, found = worst(series, check)
    assert status == expected, [f.message for f in found]
    for finding in found:
        assert finding.message and finding.details
        assert finding.metric or finding.status == Status.OK


def test_messages_name_metric_value_threshold():
    _, found = worst(
        {"dist_entropy": ramp(1.3, 2.2, 0.03), "average_step_reward": flat(-0.05, 0.01)}, "Entropy"
    )
    (finding,) = found
    assert (
        "dist_entropy" in finding.message
        and "threshold" in finding.message
        and "Try" in finding.message
    )
    assert finding.details["relative_change"] > 0.5 and finding.details["rise_threshold"] == 0.1


def test_nan_names_first_step():
    values = np.r_[flat(0.5, 0.01, 120), [np.nan, 0.4, np.inf]]
    _, found = worst({"loss/value_function": values}, "Non-finite Values")
    (finding,) = found
    assert finding.details["first_nonfinite_step"] == 120 * 1000
    assert "120000" in finding.message and "1 NaN and 1 Inf" in finding.message


def test_checks_without_metrics_are_omitted():
    verdict = evaluate("run", build({"rollout/ep_rew_mean": ramp(20, 500, 10)}))
    assert {f.check for f in verdict.findings} == {"Non-finite Values", "Judged", "Reward Trend"}
    assert verdict.status == Status.OK and verdict.total_steps == (N - 1) * 1000


def test_per_agent_metrics_summarised_once():
    series = {"agent%d/dist_entropy" % a: ramp(1.3, 2.2, 0.03, seed=a) for a in range(4)}
    series["agent2/dist_entropy"] = ramp(1.3, 0.9, 0.03, seed=9)
    series["average_step_reward"] = flat(-0.05, 0.01)
    _, found = worst(series, "Entropy")
    assert len(found) == 1
    finding = found[0]
    assert finding.metric == "agent*/dist_entropy" and finding.status == Status.CRITICAL
    assert finding.details["flagged"] == ["agent0", "agent1", "agent3"]
    assert set(finding.details["agents"]) == {"agent0", "agent1", "agent2", "agent3"}
    assert finding.message.startswith("3 of 4 agents")


def finished_worst(series: Dict[str, np.ndarray], check: str, points: Optional[int] = None):
    verdict = evaluate("run", build(series, points), context=RunContext(state=FINISHED))
    found = [f for f in verdict.findings if f.check == check]
    return max((f.status for f in found), default=None), found


@pytest.mark.parametrize(
    "case,check,series",
    [
        (c[0], c[1], c[2])
        for c in CASES
        if c[0]
        in (
            "success-zero-no-learning",
            "success-near-zero-nothing-improves",
            "reward-flat-200-points",
        )
    ],
)
def test_never_improved_alone_is_warning_live_and_critical_finished(case, check, series):
    """The lone "never improved" sign (flat return, success 0 with a flat return): a WARNING
    while the run is live with an unknown length (a point count is not a share of the run),
    CRITICAL once the run has finished."""
    live, found = worst(series, check)
    assert live == Status.WARNING, [f.message for f in found]
    said = [f.message for f in evaluate("run", build(series)).findings]
    assert any("until the run finishes" in m for m in said), said
    assert finished_worst(series, check)[0] == Status.CRITICAL


def test_grace_period_success_zero():
    series = {"mapush/success_rate": np.zeros(N), "average_step_reward": flat(-0.05, 0.01)}
    # zero success with a flat return is the only failure sign: live with an unknown length it
    # stays a WARNING; on a finished run it is CRITICAL past the grace period
    for points in (20, 60, 80, 200):
        assert worst(series, "Success Rate", points=points)[0] == Status.WARNING
    assert finished_worst(series, "Success Rate", points=80)[0] == Status.CRITICAL
    assert finished_worst(series, "Success Rate", points=200)[0] == Status.CRITICAL


def test_grace_expected_steps():
    config = Config.default()
    # points are 1,000 steps apart: grace is the first 10% = 50 points, and zero success with a
    # flat return as the only failure sign must last half the planned run = 250 points
    config.grace.expected_steps = 500_000
    series = {"mapush/success_rate": np.zeros(300), "average_step_reward": flat(-0.05, 0.01, 300)}
    assert worst(series, "Success Rate", points=40, config=config)[0] == Status.WARNING
    assert worst(series, "Success Rate", points=160, config=config)[0] == Status.WARNING
    assert worst(series, "Success Rate", points=240, config=config)[0] == Status.WARNING
    assert worst(series, "Success Rate", points=260, config=config)[0] == Status.CRITICAL


def failure_run(seed: int, n: int = 200) -> Dict[str, np.ndarray]:
    """The original HARL/MAPush failure: entropy 1.31 -> 2.17, success 0, push_reward ~1e-5."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    series = {}
    for agent in range(2):
        series["agent%d/dist_entropy" % agent] = 1.31 + 0.86 * t + rng.normal(0, 0.03, n)
        series["agent%d/actor_grad_norm" % agent] = 0.5 + rng.normal(0, 0.05, n)
    series["mapush/success_rate"] = np.zeros(n)
    series["rewards/push_reward"] = 1e-5 * rng.random(n)
    series["average_step_reward"] = -0.05 + rng.normal(0, 0.01, n)
    series["critic/value_loss"] = 0.2 + rng.normal(0, 0.02, n)
    return series


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_failure_pattern_critical_by_30_percent(seed):
    series = failure_run(seed)
    statuses = {}
    for percent in range(5, 101, 5):
        statuses[percent] = evaluate("run", build(series, 2 * percent)).status
    assert all(statuses[p] == Status.CRITICAL for p in range(30, 101, 5)), statuses
    verdict = evaluate("run", build(series))
    critical = {f.check for f in verdict.findings if f.status == Status.CRITICAL}
    assert {"Entropy", "Success Rate"} <= critical
    dead = [f for f in verdict.findings if f.check == "Reward Components"]
    assert dead and dead[0].status == Status.WARNING and "dead" in dead[0].message


def healthy_rising_entropy_run(seed: int, n: int = 200) -> Dict[str, np.ndarray]:
    """Like the real MAPush runs: entropy rises all run while reward and components improve."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    late = np.clip((t - 0.1) / 0.9, 0, 1)
    return {
        "dist_entropy": 4.26 + 13.1 * t + rng.normal(0, 0.15, n),
        "average_step_reward": -390 + 220 * late + rng.normal(0, 12, n),
        "push_reward": 0.3 + 14 * late + rng.normal(0, 0.3, n),
        "reach_target_reward": np.where(t > 0.2, 150 * late, 0.0) + rng.normal(0, 0.5, n).clip(0),
        "value_loss": 0.3 - 0.27 * t + rng.normal(0, 0.02, n).clip(-0.02),
        "ratio": 1.0 + rng.normal(0, 0.001, n),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_rising_entropy_never_critical(seed):
    series = healthy_rising_entropy_run(seed)
    for percent in range(5, 101, 5):
        verdict = evaluate("run", build(series, 2 * percent))
        assert verdict.status <= Status.WARNING, (
            percent,
            [f.message for f in verdict.findings if f.status],
        )
    entropy = [f for f in evaluate("run", build(series)).findings if f.check == "Entropy"]
    assert entropy[0].status == Status.WARNING and "learning" in entropy[0].message


def test_disabled_check_not_run():
    config = Config.default()
    config.disabled.append("Entropy")
    verdict = evaluate("run", build({"dist_entropy": ramp(1.3, 2.2, 0.03)}), config)
    assert all(f.check != "Entropy" for f in verdict.findings)


def test_check_registry_order_and_names():
    names = [module.NAME for module in CHECKS]
    assert names[0] == "Non-finite Values"
    assert set(names) == {
        "Non-finite Values",
        "Judged",
        "Success Rate",
        "Reward Trend",
        "Peers",
        "Entropy",
        "Value Loss",
        "Policy Loss",
        "Gradient Norms",
        "Reward Components",
        "PPO Health",
        "Frozen Gradients",
        "Q-Value Divergence",
        "Overfitting",
    }
    assert set(CHECK_NAMES) == set(Config.default().thresholds)


def test_rules_are_pure_and_repeatable():
    view = build(failure_run(3))
    first = evaluate("run", view)
    second = evaluate("run", view)
    assert [f.to_dict() for f in first.findings] == [f.to_dict() for f in second.findings]
    classify(view)  # classification alone does not touch the statistics
    assert view["average_step_reward"].count == N


# ------------------------------------------------------------- learning state, run clock


@pytest.mark.parametrize("offset,scale", [(-1000.0, 1e-3), (0.0, 1.0), (1e6, 50.0)])
def test_signal_state_is_relative_to_noise_not_to_offset(offset, scale):
    from tblive.judge.rules._progress import signal_state

    flat_series = build({"r": offset + scale * flat(0.0, 1.0)})["r"]
    rising = build({"r": offset + scale * ramp(0.0, 20.0, 1.0)})["r"]
    flat_state = signal_state("r", flat_series, "reward")
    rising_state = signal_state("r", rising, "reward")
    assert not flat_state.net_gain and not flat_state.improving, flat_state
    assert rising_state.net_gain and rising_state.improving, rising_state


def test_rise_then_plateau_holds_but_does_not_improve():
    from tblive.judge.rules._progress import signal_state

    curve = np.r_[np.linspace(0, 10, 40), np.full(160, 10.0)] + flat(0.0, 0.2)
    state = signal_state("r", build({"r": curve})["r"], "reward")
    assert state.rose and state.holding and not state.improving, state


def test_nonzero_growth_sees_through_zeros():
    from tblive.judge.rules._common import nonzero_growth

    values = np.zeros(N)
    values[::5] = np.geomspace(0.5, 5e7, N // 5)
    early, current, factor = nonzero_growth(build({"g": values})["g"])
    assert early < 10 and current > 1e6 and factor > 1e5, (early, current, factor)


def test_sparse_metric_follows_the_run_grace():
    """An evaluation metric with 15 points in a 200-point run is past grace with the run."""
    from tblive.judge.config import Config
    from tblive.judge.roles import classify
    from tblive.judge.rules._common import in_grace
    from tblive.judge.rules._progress import run_clock

    view = build({"rollout/ep_rew_mean": flat(5.0, 1.0)})
    sparse = MetricStats()
    sparse.update_many(np.arange(15) * 13000, np.zeros(15))
    view["eval/success_rate"] = sparse
    config = Config.default()
    clock = run_clock(view, classify(view.keys(), config), config)
    assert clock.points == N
    assert in_grace(sparse, config) and not in_grace(sparse, config, clock)
