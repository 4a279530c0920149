"""Families of runs generated from parameters, judged at every 5% of their life (issue 10).

Each family draws runs from a seeded parameter grid (offset and scale of the return, noise,
length, cadence) and feeds the arrays straight into the engine (``MetricStats`` +
``evaluate``), judging the run after each 5% of its steps, optionally with a ``RunContext``
(planned length, finished state). Failing members must be CRITICAL by the share each family
states (30% where the signs are there from the start) and stay CRITICAL to the end (no
CRITICAL -> WARNING flip while nothing recovered); healthy members of the same family are never
CRITICAL at any prefix.

``python tests/test_judgement_families.py`` prints every member's status sequence
(``.`` OK, ``W`` WARNING, ``C`` CRITICAL; one letter per 5%).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

from tblive.judge.context import FINISHED, LIVE, RunContext
from tblive.judge.findings import Status, Verdict
from tblive.judge.verdict import evaluate
from tblive.series.stats import MetricStats

Series = Dict[str, Tuple[np.ndarray, np.ndarray]]
LETTER = {Status.OK: ".", Status.WARNING: "W", Status.CRITICAL: "C"}
PREFIXES = 20


def judge(series: Series, share: float, context: Optional[RunContext] = None) -> Verdict:
    """The verdict on the first ``share`` of the run's steps."""
    first = min(int(s[0]) for s, _ in series.values())
    last = max(int(s[-1]) for s, _ in series.values())
    cut = first + (last - first) * share
    view = {}
    for tag, (steps, values) in series.items():
        keep = steps <= cut + 1e-9
        if keep.any():
            stats = MetricStats()
            stats.update_many(steps[keep], values[keep])
            view[tag] = stats
    return evaluate("run", view, context=context)


def verdicts(
    series: Series, context: Optional[Callable[[float], Optional[RunContext]]] = None
) -> List[Verdict]:
    out = []
    for k in range(1, PREFIXES + 1):
        share = k / PREFIXES
        out.append(judge(series, share, context(share) if context else None))
    return out


def sequence(found: List[Verdict]) -> str:
    return "".join(LETTER[v.status] for v in found)


def first_critical(found: List[Verdict]) -> Optional[float]:
    for k, v in enumerate(found):
        if v.status == Status.CRITICAL:
            return (k + 1) / PREFIXES
    return None


def critical_messages(found: List[Verdict]) -> List[str]:
    return [f.message for v in found for f in v.findings if f.status == Status.CRITICAL][:3]


def ar_noise(rng: np.random.Generator, n: int, scale: float, rho: float = 0.6) -> np.ndarray:
    out = np.empty(n)
    x = 0.0
    for i in range(n):
        x = rho * x + math.sqrt(1 - rho * rho) * rng.normal()
        out[i] = x
    return scale * out


def sigmoid(p: np.ndarray, mid: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(p - mid) / width))


# ------------------------------------------------------------------------------ the families

OFFSETS = (-1000.0, 0.0, 1e6)
SCALES = (1e-3, 1.0, 50.0)


def ppo_run(
    points: int,
    seed: int,
    offset: float,
    scale: float,
    learn: Optional[np.ndarray] = None,
    entropy: Optional[np.ndarray] = None,
    every: int = 2048,
) -> Series:
    """An on-policy run: the return (offset + scale x (learning curve + noise)), entropy,
    value loss and grad norm at one cadence."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = every * np.arange(1, points + 1)
    learn = np.zeros(points) if learn is None else learn
    reward = offset + scale * (10.0 * learn + ar_noise(rng, points, 1.0))
    entropy = 1.4 - 0.0 * p if entropy is None else entropy
    return {
        "rollout/ep_rew_mean": (steps, reward),
        "train/entropy": (steps, entropy + rng.normal(0, 0.01, points)),
        "train/value_loss": (steps, np.abs(0.5 + rng.normal(0, 0.05, points))),
        "train/grad_norm": (steps, np.abs(0.4 + rng.normal(0, 0.04, points))),
    }


GRID = list(itertools.product(OFFSETS, SCALES, (1, 2)))


@pytest.mark.parametrize("offset,scale,seed", GRID)
def test_flat_return_with_converging_entropy_is_critical_by_30_percent(offset, scale, seed):
    """Flat return (relative to its noise, at any offset and scale) while the policy sharpens."""
    points = 300
    p = np.linspace(0, 1, points)
    run = ppo_run(points, seed, offset, scale, entropy=1.4 - 0.6 * p)
    found = verdicts(run)
    first = first_critical(found)
    assert first is not None and first <= 0.30, (sequence(found), [v.findings for v in found[5:6]])
    assert sequence(found)[int(0.3 * PREFIXES) - 1 :] == "C" * (PREFIXES - 5), sequence(found)
    final = [f for f in found[-1].findings if f.check == "Reward Trend"][0]
    assert final.status == Status.CRITICAL, final.message
    assert "not improved" in final.message or "no net improvement" in final.message, final.message


@pytest.mark.parametrize("offset,scale,seed", GRID)
def test_flat_start_then_learning_is_never_critical(offset, scale, seed):
    """The healthy twin: the same flat, sharpening start for 20% of the run, then learning."""
    points = 300
    p = np.linspace(0, 1, points)
    run = ppo_run(points, seed, offset, scale, learn=sigmoid(p, 0.35, 0.06), entropy=1.4 - 0.6 * p)
    found = verdicts(run)
    assert "C" not in sequence(found), (sequence(found), critical_messages(found))


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_flat_return_alone_with_planned_length_is_critical_by_half_the_run(seed):
    """A lone flat return is the weakest sign (DQN/TD3 warm-ups explore for long stretches):
    with the planned length known it must last half of it; without one it is a WARNING while
    live (a point count is not a share of the run) and CRITICAL once finished."""
    run = ppo_run(400, seed, 0.0, 1.0)
    planned = int(run["rollout/ep_rew_mean"][0][-1])
    found = verdicts(run, lambda share: RunContext(planned_steps=planned, state=LIVE))
    first = first_critical(found)
    assert first is not None and 0.45 <= first <= 0.55, sequence(found)
    assert sequence(found).endswith("C" * 10), sequence(found)
    live = verdicts(run)
    assert "C" not in sequence(live), sequence(live)
    assert judge(run, 1.0, RunContext(state=FINISHED)).status == Status.CRITICAL


@pytest.mark.parametrize("seed", (1, 2))
def test_td3_flat_episode_return_is_not_in_grace_after_tens_of_thousands_of_steps(seed):
    """TD3 with an episode return that never moves for 1,094 episodes over 30,000 steps."""
    rng = np.random.default_rng(seed)
    episodes = 1094
    steps = np.sort(rng.choice(np.arange(30, 30000), episodes, replace=False))
    series: Series = {
        "train/episode_reward": (steps, -50.0 + rng.normal(0, 3.0, episodes)),
        "train/actor_loss": (steps, -2.0 + rng.normal(0, 0.1, episodes)),
        "train/critic_loss": (steps, np.abs(1.0 + rng.normal(0, 0.1, episodes))),
    }
    found = verdicts(series)
    messages = [f.message for v in found[2:] for f in v.findings]
    assert not any("grace" in m for m in messages), [m for m in messages if "grace" in m][:2]
    # live with an unknown length a lone flat return is a WARNING; finished, CRITICAL
    assert found[-1].status == Status.WARNING, sequence(found)
    assert judge(series, 1.0, RunContext(state=FINISHED)).status == Status.CRITICAL


def test_mappo_return_flat_for_273_points_is_critical():
    rng = np.random.default_rng(5)
    points = 273
    steps = 3200 * np.arange(1, points + 1)
    series: Series = {
        "average_episode_rewards": (steps, -150.0 + rng.normal(0, 4.0, points)),
        "dist_entropy": (steps, 1.6 + rng.normal(0, 0.01, points)),
        "value_loss": (steps, np.abs(0.3 + rng.normal(0, 0.02, points))),
    }
    planned = int(steps[-1])
    found = verdicts(series, lambda share: RunContext(planned_steps=planned, state=LIVE))
    first = first_critical(found)
    assert first is not None and first <= 0.55 and sequence(found).endswith("C"), sequence(found)
    assert judge(series, 1.0, RunContext(state=FINISHED)).status == Status.CRITICAL


# ---------------------------------------------------------------- rise then plateau


def plateau_run(points: int, seed: int, success_final: float) -> Series:
    """The return rises in the first 20% and then plateaus; success rises to success_final."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 10_000 * np.arange(1, points + 1)
    rise = sigmoid(p, 0.1, 0.03)
    reward = 2.0 + 8.0 * rise + rng.normal(0, 0.3, points)
    success = np.clip(success_final * sigmoid(p, 0.3, 0.05) + rng.normal(0, 0.02, points), 0, 1)
    if success_final == 0:
        success = np.zeros(points)
    return {
        "test_return_mean": (steps, reward),
        "test_battle_won_mean": (steps, success),
        "q_taken_mean": (steps, 1.0 + 0.5 * rise + rng.normal(0, 0.02, points)),
    }


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_rise_then_plateau_with_success_zero_is_critical(seed):
    """The return rose early and plateaued, success never left 0: CRITICAL by 60%, for good;
    and the messages never cite the plateau as learning."""
    found = verdicts(plateau_run(200, seed, 0.0))
    assert sequence(found)[11:] == "C" * 9, sequence(found)
    for verdict in found[11:]:
        for finding in verdict.findings:
            assert "improves:" not in finding.message, finding.message


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_rise_then_plateau_while_winning_is_never_critical(seed):
    found = verdicts(plateau_run(200, seed, 0.9))
    assert "C" not in sequence(found), (sequence(found), critical_messages(found))


# ----------------------------------------------------------- success collapse, warm start


def warm_start_run(points: int, seed: int, collapse: bool) -> Series:
    """A warm-started multi-agent PPO: win rate starts at 0.5; the failing twin collapses to
    0.1 at 20% while its policy loss reaches -1e16 and its grad norm 1e8 on its non-zero
    updates (exactly 0 on 3 of 4 updates); the healthy twin dips to 0.35 and recovers."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 3200 * np.arange(1, points + 1)
    if collapse:
        win = 0.5 - 0.4 * sigmoid(p, 0.2, 0.02)
        blow = np.where(p > 0.2, np.exp(np.log(1e8) * np.clip((p - 0.2) / 0.1, 0, 1)), 1.0)
        grad = 0.5 * blow
        loss = -0.01 * np.where(p > 0.2, np.exp(np.log(1e18) * np.clip((p - 0.2) / 0.1, 0, 1)), 1)
    else:
        win = 0.5 + 0.3 * p - 0.15 * np.exp(-(((p - 0.4) / 0.05) ** 2))
        grad = np.full(points, 0.5)
        loss = np.full(points, -0.01)
    active = (np.arange(points) % 4) == 0
    series: Series = {
        "eval_win_rate": (steps, np.clip(win + rng.normal(0, 0.03, points), 0, 1)),
        "eval_average_episode_rewards": (steps, 10 + 10 * win + rng.normal(0, 0.3, points)),
    }
    for agent in range(3):
        series["agent%d/actor_grad_norm" % agent] = (
            steps,
            np.where(active, grad * (1 + rng.normal(0, 0.05, points)), 0.0),
        )
        series["agent%d/policy_loss" % agent] = (
            steps,
            np.where(active, loss * (1 + rng.normal(0, 0.05, points)), 0.0),
        )
    return series


@pytest.mark.parametrize("seed", (1, 2))
def test_win_rate_collapse_with_hidden_blowup_is_critical_by_30_percent(seed):
    found = verdicts(warm_start_run(200, seed, collapse=True))
    first = first_critical(found)
    assert first is not None and first <= 0.30, sequence(found)
    assert sequence(found).endswith("C" * 14), sequence(found)
    checks = {f.check for f in found[-1].findings if f.status == Status.CRITICAL}
    assert {"Gradient Norms", "Policy Loss", "Success Rate"} <= checks, checks


@pytest.mark.parametrize("seed", (1, 2))
def test_warm_start_with_a_dip_is_never_critical(seed):
    found = verdicts(warm_start_run(200, seed, collapse=False))
    assert "C" not in sequence(found), (sequence(found), critical_messages(found))


# --------------------------------------------------------------------- sparse eval metrics


def sparse_eval_run(points: int, seed: int, healthy: bool) -> Series:
    """Dense training metrics (``points``) and an evaluation success every 20 of them."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 5000 * np.arange(1, points + 1)
    learn = sigmoid(p, 0.35, 0.05) if healthy else np.zeros(points)
    entropy = 1.3 + (0.0 if healthy else 0.8) * p
    eval_idx = np.arange(19, points, 20)
    success = np.clip(0.8 * learn[eval_idx] + rng.normal(0, 0.02, eval_idx.size), 0, 1)
    if not healthy:
        success = np.zeros(eval_idx.size)
    return {
        "train/episode_reward": (steps, -300 + 200 * learn + rng.normal(0, 6, points)),
        "policy/entropy": (steps, entropy + rng.normal(0, 0.02, points)),
        "eval/success_rate": (steps[eval_idx], success),
    }


@pytest.mark.parametrize("seed", (1, 2))
def test_sparse_eval_success_follows_the_run_grace(seed):
    """15 evaluation points in a 300-point run: not "in grace" once the run is past it."""
    found = verdicts(sparse_eval_run(300, seed, healthy=False))
    first = first_critical(found)
    assert first is not None and first <= 0.30, sequence(found)
    assert sequence(found).endswith("C" * 14), sequence(found)
    late = [f.message for v in found[6:] for f in v.findings if f.metric == "eval/success_rate"]
    assert late and not any("grace" in m for m in late), late[:2]


@pytest.mark.parametrize("seed", (1, 2))
def test_sparse_eval_healthy_is_never_critical(seed):
    found = verdicts(sparse_eval_run(300, seed, healthy=True))
    assert "C" not in sequence(found), (sequence(found), critical_messages(found))


# ------------------------------------------------------------------- finished vs live


def zero_success_run(points: int, seed: int) -> Series:
    """Success exactly 0 at every point; the return improves 12%; entropy falls slowly."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 500_000 * np.arange(1, points + 1)
    return {
        "average_step_reward": (steps, -100 * (1 - 0.12 * p) + rng.normal(0, 1.0, points)),
        "mapush/success_rate": (steps, np.zeros(points)),
        "agent0/dist_entropy": (steps, 1.3 - 0.05 * p + rng.normal(0, 0.01, points)),
    }


@pytest.mark.parametrize("seed", (1, 2))
def test_success_zero_over_a_finished_run_is_critical_whatever_improved(seed):
    run = zero_success_run(200, seed)
    live = judge(run, 1.0, RunContext(state=LIVE))
    finished = judge(run, 1.0, RunContext(state=FINISHED, state_reason="files unchanged"))
    success = [f for f in finished.findings if f.check == "Success Rate"][0]
    assert success.status == Status.CRITICAL and "finished" in success.message, success.message
    assert live.status <= finished.status


def mapush_shape(points: int, seed: int, healthy: bool) -> Series:
    """As HARL/MAPush writes it: average_step_reward flat, a reward component improving,
    success exactly 0, entropy +56% (the failing twin); the healthy twin learns at 35%."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 500_000 * np.arange(1, points + 1)
    learn = sigmoid(p, 0.35, 0.06) if healthy else np.zeros(points)
    series: Series = {
        "average_step_reward": (steps, -380 + 250 * learn + rng.normal(0, 8, points)),
        "rewards/approach_reward": (steps, 2 + 3 * p + rng.normal(0, 0.2, points)),
        "mapush/success_rate": (
            steps,
            np.clip(0.65 * learn + rng.normal(0, 0.02, points), 0, 1) if healthy else 0 * p,
        ),
    }
    for agent in range(2):
        series["agent%d/dist_entropy" % agent] = (
            steps,
            1.31 * (1 + 0.56 * p) + rng.normal(0, 0.02, points),
        )
    return series


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_mapush_shape_with_an_improving_component_is_critical_and_stays(seed):
    """A reward component improving is not learning; CRITICAL by 30% and never back."""
    found = verdicts(mapush_shape(200, seed, healthy=False))
    first = first_critical(found)
    assert first is not None and first <= 0.30, sequence(found)
    assert sequence(found)[int(first * PREFIXES) - 1 :] == "C" * (
        PREFIXES - int(first * PREFIXES) + 1
    ), sequence(found)
    finished = judge(mapush_shape(200, seed, False), 1.0, RunContext(state=FINISHED))
    assert finished.status == Status.CRITICAL


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_mapush_shape_healthy_twin_is_never_critical(seed):
    found = verdicts(mapush_shape(200, seed, healthy=True))
    assert "C" not in sequence(found), (sequence(found), critical_messages(found))


# ------------------------------------------- healthy shapes that must never be CRITICAL


def never_critical(series: Series) -> None:
    """Never CRITICAL at any 5% prefix, without context and with the planned length known."""
    planned = max(int(steps[-1]) for steps, _ in series.values())
    plain = verdicts(series)
    known = verdicts(series, lambda share: RunContext(planned_steps=planned, state=LIVE))
    assert "C" not in sequence(plain), ("no context", sequence(plain), critical_messages(plain))
    assert "C" not in sequence(known), ("planned", sequence(known), critical_messages(known))


@pytest.mark.parametrize("seed,points", [(1, 2000), (2, 3000)])
def test_dense_logger_long_warmup_is_never_critical(seed, points):
    """A DQN-style run logged densely (thousands of points): the return sits at the random
    policy's level for 30% of the run while epsilon decays, then rises. Windows follow the run's
    progress, not its point count: 200 points are 10% of this run (R5)."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 5000 * np.arange(1, points + 1)
    reward = -20.5 + 35 * np.clip((p - 0.3) / 0.7, 0, 1) ** 1.5 + ar_noise(rng, points, 0.4)
    never_critical(
        {
            "rollout/ep_rew_mean": (steps, reward),
            "rollout/exploration_rate": (steps, np.maximum(0.01, 1 - p / 0.1)),
            "train/loss": (steps, np.abs(0.02 + rng.normal(0, 0.005, points))),
        }
    )


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_random_policy_bump_is_not_a_collapse(seed):
    """Per-episode returns of a random policy wander (CartPole: 8..24); a three-episode bump
    is not a rise, so its end is not a collapse (R19b). Learning starts at 40%."""
    rng = np.random.default_rng(seed)
    points = 380
    p = np.linspace(0, 1, points)
    steps = np.cumsum(rng.integers(8, 25, points))
    reward = np.round(10 + np.abs(rng.normal(0, 1.2, points)) * 1.5, 1)
    bump = int(0.2 * points)
    reward[bump : bump + 3] += (6, 5, 14)
    reward = reward + 150 * np.clip((p - 0.4) / 0.6, 0, 1) ** 1.5
    never_critical({"train/rew": (steps, reward), "loss": (steps, 0.3 + 0 * p)})


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_sparse_reward_with_lucky_blips_is_never_critical(seed):
    """A sparse task: reward exactly 0, lucky 0.01-0.05 episodes in 12-20% of the run, exactly
    0 again, real learning from 35% (R22): a blip is not a rise, its end is not a collapse, and
    success 0 with a flat return alone is the weakest sign."""
    rng = np.random.default_rng(seed)
    points = 400
    p = np.linspace(0, 1, points)
    steps = 5000 * np.arange(1, points + 1)
    reward = np.zeros(points)
    lucky = (p >= 0.12) & (p < 0.2) & (rng.random(points) < 0.5)
    reward[lucky] = rng.uniform(0.01, 0.05, int(lucky.sum()))
    learn = np.clip((p - 0.35) / 0.5, 0, 1)
    reward = reward + 0.9 * learn * (1 + 0.05 * rng.normal(size=points)) * (p >= 0.35)
    success = np.clip(0.9 * learn + rng.normal(0, 0.02, points), 0, 1) * (p >= 0.35)
    never_critical(
        {
            "rollout/ep_rew_mean": (steps, reward),
            "rollout/success_rate": (steps, success),
            "train/entropy_loss": (steps, -1.2 + rng.normal(0, 0.01, points)),
        }
    )


@pytest.mark.parametrize("seed", (1, 2))
def test_dip_and_recover_is_never_critical(seed):
    """The return rises by 20%, falls back to its floor for 8% of the run at 40%, recovers: a
    dip that has just started is a collapse candidate, never "no net improvement"; the rise
    and the dip do not inflate the noise (R28, R29, R33)."""
    rng = np.random.default_rng(seed)
    points = 200
    p = np.linspace(0, 1, points)
    steps = 50_000 * np.arange(1, points + 1)
    level = -1 + 2.2 * np.clip(p / 0.2, 0, 1)
    dip = (p >= 0.4) & (p < 0.48)
    level[dip] = -1
    reward = level + ar_noise(rng, points, 0.03)
    never_critical(
        {
            "average_step_reward": (steps, reward),
            "agent0/dist_entropy": (steps, 1.3 - 0.4 * p + rng.normal(0, 0.01, points)),
        }
    )


@pytest.mark.parametrize("seed,points", [(1, 100), (2, 100), (1, 300)])
def test_flat_start_then_clean_rise_is_never_critical(seed, points):
    """Flat for 20% of the run, then a clean rise (R28): the rise is not the noise."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0, 1, points)
    steps = 2048 * np.arange(1, points + 1)
    reward = -500 + ar_noise(rng, points, 10.0, rho=0.7) + 300 * np.clip((p - 0.2) / 0.4, 0, 1)
    never_critical(
        {
            "rollout/ep_rew_mean": (steps, reward),
            "train/entropy_loss": (steps, -(1.2 - 0.1 * p)),
        }
    )


@pytest.mark.parametrize("seed", (1, 2))
def test_td_gradient_that_grew_with_the_return_is_not_an_explosion(seed):
    """A TD-loss gradient norm starts near 0 before any reward and jumps x100 in the first few
    percent as the return grows, then hovers (PyMARL grad_norm): settled, not exploding (R18)."""
    rng = np.random.default_rng(seed)
    points = 205
    p = np.linspace(0, 1, points)
    steps = 10_000 * np.arange(1, points + 1)
    rise = np.clip(p / 0.05, 0, 1)
    grad = np.abs(0.15 + 15 * rise * np.exp(rng.normal(0, 0.35, points)))
    series: Series = {
        "return_mean": (steps, 2 + 16 * np.clip(p / 0.25, 0, 1) + rng.normal(0, 0.5, points)),
        "battle_won_mean": (steps, np.clip(0.95 * np.clip((p - 0.05) / 0.3, 0, 1), 0, 1)),
        "grad_norm": (steps, grad),
        "loss": (steps, np.abs(0.05 + 0.5 * rise + rng.normal(0, 0.02, points))),
    }
    never_critical(series)


@pytest.mark.parametrize("seed", (1, 2))
def test_wall_time_tags_do_not_move_the_run_clock(seed):
    """rsl_rl logs `Train/mean_reward/time` with wall seconds as its step (7 s an iteration)
    next to iteration-stepped tags: at iteration 150 of a planned 1500 the run is at 10%, not
    70% (R20). The run's clock is read on the axis most tags share."""
    rng = np.random.default_rng(seed)
    iters = 1500
    p = np.linspace(0, 1, iters)
    steps = np.arange(iters)
    reward = 0.05 + 20 * np.clip((p - 0.15) / 0.35, 0, 1) + ar_noise(rng, iters, 0.2)
    length = 20 + 900 * np.clip((p - 0.15) / 0.35, 0, 1) + rng.normal(0, 5, iters)
    series: Series = {
        "Train/mean_reward": (steps, reward),
        "Train/mean_episode_length": (steps, length),
        "Policy/mean_noise_std": (steps, 1.0 - 0.6 * np.clip((p - 0.15) / 0.45, 0, 1)),
        "Loss/value_function": (steps, np.abs(0.01 + rng.normal(0, 0.002, iters))),
        "Train/mean_reward/time": (steps * 7, reward),
        "Train/mean_episode_length/time": (steps * 7, length),
    }
    for share in (0.1, 0.14, 0.2):
        view = {}
        for tag, (s, v) in series.items():
            keep = s <= (7 if tag.endswith("/time") else 1) * share * (iters - 1)
            stats = MetricStats()
            stats.update_many(s[keep], v[keep])
            view[tag] = stats
        for context in (None, RunContext(planned_steps=iters, state=LIVE)):
            verdict = evaluate("run", view, context=context)
            assert verdict.status < Status.CRITICAL, (share, context, verdict.findings)


@pytest.mark.parametrize("seed", (1, 2))
def test_resumed_converged_run_is_never_critical(seed):
    """A checkpoint resumed into a new folder (steps 6M..10M), converged at the top: its start
    was not seen, so flat at the level it resumed at is not "never improved" (R27)."""
    rng = np.random.default_rng(seed)
    points = 200
    steps = 6_000_000 + 20_000 * np.arange(points)
    series: Series = {
        "rollout/ep_rew_mean": (steps, np.minimum(480 + ar_noise(rng, points, 10.0), 500)),
        "train/entropy_loss": (steps, -0.25 + ar_noise(rng, points, 0.005)),
        "train/value_loss": (steps, np.abs(0.5 + rng.normal(0, 0.05, points))),
    }
    never_critical(series)
    planned = int(steps[-1])
    final = judge(series, 1.0, RunContext(planned_steps=planned, state=FINISHED))
    assert final.status < Status.CRITICAL, final.findings


@pytest.mark.parametrize("seed", (1, 2))
def test_run_stopped_early_is_not_judged_as_finished(seed):
    """A run killed at 10% of its planned length and judged post-hoc (files unchanged) was
    stopped, not finished: success still 0 at 10% is not "the task was never solved" (R24)."""
    run = mapush_shape(200, seed, healthy=True)
    planned = max(int(steps[-1]) for steps, _ in run.values())
    stopped = judge(run, 0.1, RunContext(planned_steps=planned, state=FINISHED))
    assert stopped.status < Status.CRITICAL, [f.message for f in stopped.findings]
    failed = judge(mapush_shape(200, seed, healthy=False), 1.0, RunContext(state=FINISHED))
    assert failed.status == Status.CRITICAL


# ------------------------------------------------------------------------ not judged


@pytest.mark.parametrize("seed", (1, 2))
def test_unrecognized_tags_are_not_judged_never_green(seed):
    rng = np.random.default_rng(seed)
    steps = 1000 * np.arange(1, 101)
    series: Series = {
        "perf/team_score_avg": (steps, np.linspace(0, 5, 100) + rng.normal(0, 0.1, 100)),
        "misc/fps": (steps, 900 + rng.normal(0, 5, 100)),
    }
    for share in (0.3, 0.6, 1.0):
        verdict = judge(series, share)
        assert verdict.status == Status.WARNING, [f.message for f in verdict.findings]
        judged = [f for f in verdict.findings if f.check == "Judged"][0]
        assert "NOT JUDGED" in judged.message and "perf/team_score_avg" in judged.message
        assert verdict.not_judged and verdict.summary.startswith("NOT JUDGED"), verdict.summary


def test_recognized_run_says_what_it_was_judged_on():
    run = ppo_run(100, 1, 0.0, 1.0, learn=np.linspace(0, 1, 100))
    verdict = judge(run, 1.0)
    judged = [f for f in verdict.findings if f.check == "Judged"][0]
    assert judged.status == Status.OK and "rollout/ep_rew_mean" in judged.message


# ------------------------------------------------------------------------------ report


@dataclass
class Member:
    name: str
    build: Callable[[], Series]


def main() -> None:
    members = [
        Member(
            "flat+entropy 0/1",
            lambda: ppo_run(300, 1, 0, 1, entropy=1.4 - 0.6 * np.linspace(0, 1, 300)),
        ),
        Member("plateau success 0", lambda: plateau_run(200, 1, 0.0)),
        Member("plateau success .9", lambda: plateau_run(200, 1, 0.9)),
        Member("warm collapse", lambda: warm_start_run(200, 1, True)),
        Member("warm dip", lambda: warm_start_run(200, 1, False)),
        Member("sparse eval fail", lambda: sparse_eval_run(300, 1, False)),
        Member("sparse eval ok", lambda: sparse_eval_run(300, 1, True)),
        Member("mapush fail", lambda: mapush_shape(200, 1, False)),
        Member("mapush ok", lambda: mapush_shape(200, 1, True)),
    ]
    for member in members:
        print("%-22s %s" % (member.name, sequence(verdicts(member.build()))))


if __name__ == "__main__":
    main()
