"""Realistic training runs tblive has never seen, judged at every 5% of the run.

Each scenario generates the scalars one trainer really logs (its exact tag names and logging
cadence: SB3 PPO/SAC/TD3, CleanRL PPO, rsl_rl/legged_gym, HARL/MAPush HAPPO, Lightning, Keras),
writes them with tensorboardX's ``SummaryWriter``, reads them back with tblive's reader
(``load_points``) and feeds them, 5% of the run's steps at a time, into the same incremental
statistics the daemon keeps, judging the run after each chunk.

Expectations:

* healthy runs are never CRITICAL at any prefix (WARNING allowed);
* failures present from the start are CRITICAL by 30% of the run; failures that start later
  are CRITICAL soon after they start (each scenario says by when);
* where tblive does not meet that today the case is ``xfail(strict=True)`` with the reason, so
  the suite stays green and the gap stays visible (a fixed rule turns it into an XPASS failure).

``python tests/test_scenarios.py`` prints the status sequence of every case (``.`` OK,
``W`` WARNING, ``C`` CRITICAL; one letter per 5% prefix) and the checks that fired.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from tensorboardX import SummaryWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patterns import failure_pattern  # noqa: E402

from tblive.doors.posthoc import new_stats  # noqa: E402
from tblive.judge.context import LIVE, RunContext  # noqa: E402
from tblive.judge.findings import Status, Verdict  # noqa: E402
from tblive.judge.verdict import evaluate  # noqa: E402
from tblive.read.runs import load_points  # noqa: E402

PREFIXES = 20  # judge at every 5%
LETTER = {Status.OK: ".", Status.WARNING: "W", Status.CRITICAL: "C"}

# tag -> (steps, values); "grouped" tags are written like HARL does (add_scalars per tag)
Series = Dict[str, Tuple[np.ndarray, np.ndarray]]


@dataclass
class Log:
    plain: Series
    grouped: Series


# ------------------------------------------------------------------------------- noise helpers


def progress(points: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, points)


def sigmoid(p: np.ndarray, mid: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(p - mid) / width))


def smooth_noise(rng: np.random.Generator, n: int, scale: float, rho: float = 0.7) -> np.ndarray:
    """AR(1) noise: rolling means (SB3's 100-episode ep_rew_mean) are autocorrelated."""
    out = np.empty(n)
    x = 0.0
    for i in range(n):
        x = rho * x + math.sqrt(1 - rho * rho) * rng.normal()
        out[i] = x
    return scale * out


def lognormal(rng: np.random.Generator, level: np.ndarray, sigma: float) -> np.ndarray:
    return level * np.exp(rng.normal(0.0, sigma, np.shape(level)) - sigma * sigma / 2)


def staircase(p: np.ndarray, steps: List[Tuple[float, float, float]]) -> np.ndarray:
    """Sum of sigmoids (mid, width, height): a rise with plateaus."""
    return sum(h * sigmoid(p, m, w) for m, w, h in steps)  # type: ignore[return-value]


# ------------------------------------------------------------------------------ SB3 (on-policy)


def sb3_ppo(points: int, seed: int, continuous: bool = False, fail: str = "") -> Log:
    """SB3 PPO: one dump per rollout (``n_steps`` x envs); train/* of rollout i is dumped at
    rollout i+1 (``train()`` runs after ``_dump_logs``), so train/* has one point fewer."""
    rng = np.random.default_rng(seed)
    p = progress(points)
    n_steps = 2048
    steps = n_steps * np.arange(1, points + 1)
    s: Series = {}
    if continuous:  # HalfCheetah-like
        learn = staircase(p, [(0.15, 0.05, 0.4), (0.5, 0.08, 0.6)])
        reward = -300 + 3300 * learn + smooth_noise(rng, points, 60)
        ep_len = np.full(points, 1000.0)
        std = 1.0 - 0.7 * sigmoid(p, 0.4, 0.2) + rng.normal(0, 0.005, points)
        entropy_loss = -6 * (1.4189 + np.log(std))  # SB3: -entropy of a 6-dim Gaussian
    else:  # CartPole-like: ep length = return, capped at 500
        learn = staircase(p, [(0.12, 0.04, 0.35), (0.45, 0.06, 0.65)])
        reward = np.clip(22 + 478 * learn + smooth_noise(rng, points, 12), 9, 500)
        ep_len = reward.copy()
        std = None
        entropy_loss = -(0.69 - 0.14 * sigmoid(p, 0.35, 0.15)) + rng.normal(0, 0.004, points)
    s["rollout/ep_rew_mean"] = (steps, reward)
    s["rollout/ep_len_mean"] = (steps, ep_len)
    s["time/fps"] = (steps, 1500 + rng.normal(0, 40, points))
    s["time/iterations"] = (steps, np.arange(1, points + 1, dtype=float))
    s["time/total_timesteps"] = (steps, steps.astype(float))
    s["time/time_elapsed"] = (steps, steps / 1500.0)
    ts = steps[1:]
    n = points - 1
    pt = p[1:]
    value_scale = 80 if not continuous else 400
    value_loss = lognormal(rng, 3 + value_scale * np.exp(-(((pt - 0.3) / 0.18) ** 2)), 0.35)
    explained = np.clip(-0.4 + 1.3 * sigmoid(pt, 0.2, 0.08) + rng.normal(0, 0.06, n), -1.5, 0.98)
    approx_kl = lognormal(rng, np.full(n, 0.01), 0.4)
    approx_kl[rng.random(n) < 0.05] = rng.uniform(0.03, 0.06)  # occasional big update
    clip_fraction = np.clip(0.05 + 0.15 * rng.random(n), 0, 1)
    pg_loss = -0.01 + rng.normal(0, 0.005, n)
    entropy_t = entropy_loss[1:]
    if fail == "nan_value_loss":
        value_loss[int(0.5 * n) :] = np.nan
    if fail == "ppo_collapse":  # from 50%: huge updates, policy collapses, reward falls
        c = sigmoid(pt, 0.55, 0.03)
        approx_kl = approx_kl + 5.0 * c
        clip_fraction = np.clip(clip_fraction + 0.75 * c, 0, 0.95)
        value_loss = value_loss * (1 + 20 * c)
        explained = explained - 1.5 * c
        pg_loss = pg_loss + 0.1 * c * rng.normal(0, 1, n)
        fall = sigmoid(p, 0.6, 0.03)
        reward = reward - (reward - 20) * fall
        s["rollout/ep_rew_mean"] = (steps, np.clip(reward, 9, 500))
        s["rollout/ep_len_mean"] = (steps, np.clip(reward, 9, 500))
        entropy_t = entropy_t - 0.3 * c  # entropy jumps as the policy is wrecked
    if fail == "entropy_collapse":  # deterministic at 10%, nothing learned
        ent = 0.69 * np.exp(-pt / 0.03) + 1e-3
        entropy_t = -ent
        s["rollout/ep_rew_mean"] = (steps, np.clip(22 + smooth_noise(rng, points, 2.5), 9, 500))
        s["rollout/ep_len_mean"] = s["rollout/ep_rew_mean"]
        approx_kl = lognormal(rng, 0.01 * np.exp(-pt / 0.05) + 1e-5, 0.4)
        clip_fraction = np.clip(0.1 * np.exp(-pt / 0.05), 0, 1)
        value_loss = lognormal(rng, np.full(n, 40.0), 0.2)
        explained = np.clip(0.3 + rng.normal(0, 0.05, n), -1, 1)
    s["train/entropy_loss"] = (ts, entropy_t)
    s["train/value_loss"] = (ts, value_loss)
    s["train/explained_variance"] = (ts, explained)
    s["train/approx_kl"] = (ts, approx_kl)
    s["train/clip_fraction"] = (ts, clip_fraction)
    s["train/policy_gradient_loss"] = (ts, pg_loss)
    s["train/loss"] = (ts, 0.5 * value_loss + pg_loss + 0.0 * entropy_t)
    s["train/learning_rate"] = (ts, np.full(n, 3e-4))
    s["train/clip_range"] = (ts, np.full(n, 0.2))
    s["train/n_updates"] = (ts, 10.0 * np.arange(1, n + 1))
    if std is not None:
        s["train/std"] = (ts, std[1:])
    return Log(s, {})


# ----------------------------------------------------------------------------- SB3 off-policy


def sb3_offpolicy(points: int, seed: int, algo: str = "sac", fail: str = "") -> Log:
    """SB3 SAC/TD3 (dump every 4 episodes of 1000 steps) plus a logged ``train/q1_mean``.

    Healthy: return -> ~3000, Q (≈ return-to-go, gamma 0.99) follows to ~300-800,
    actor_loss ≈ -Q, critic_loss grows with the return scale, SAC's ent_coef decays."""
    rng = np.random.default_rng(seed)
    p = progress(points)
    steps = 4000 * np.arange(1, points + 1)
    s: Series = {}
    learn = staircase(p, [(0.2, 0.07, 0.5), (0.55, 0.1, 0.5)])
    reward = -250 + 3250 * learn + smooth_noise(rng, points, 80)
    q = -2 + 800 * staircase(p, [(0.18, 0.07, 0.5), (0.52, 0.1, 0.5)]) + rng.normal(0, 5, points)
    critic = lognormal(rng, 0.5 + 25 * learn, 0.3)
    if fail == "q_divergence":  # Q explodes 10 -> 1e5 while the return first rises, then falls
        q = 10 * np.power(1e4, p) * (1 + rng.normal(0, 0.05, points))
        reward = -250 + 900 * np.exp(-(((p - 0.25) / 0.12) ** 2)) + smooth_noise(rng, points, 40)
        reward = reward - 300 * sigmoid(p, 0.6, 0.1)
        critic = lognormal(rng, 0.5 * np.power(1e5, p), 0.3)
    s["rollout/ep_rew_mean"] = (steps, reward)
    s["rollout/ep_len_mean"] = (steps, np.full(points, 1000.0))
    s["time/fps"] = (steps, 120 + rng.normal(0, 4, points))
    s["time/episodes"] = (steps, 4.0 * np.arange(1, points + 1))
    s["train/q1_mean"] = (steps, q)
    s["train/critic_loss"] = (steps, critic)
    s["train/learning_rate"] = (steps, np.full(points, 3e-4))
    s["train/n_updates"] = (steps, steps - 1000.0)
    if algo == "sac":
        ent_coef = 0.9 * np.exp(-p * 6) + 0.02 + rng.normal(0, 0.002, points)
        s["train/ent_coef"] = (steps, ent_coef)
        s["train/ent_coef_loss"] = (steps, rng.normal(-0.5, 0.5, points) * np.exp(-p * 3))
        s["train/actor_loss"] = (steps, -q + ent_coef * rng.normal(-3, 0.5, points))
    else:
        s["train/actor_loss"] = (steps, -q + rng.normal(0, 2, points))
    return Log(s, {})


# --------------------------------------------------------------------------------- CleanRL PPO


def cleanrl_ppo(points: int, seed: int) -> Log:
    """CleanRL ppo.py (CartPole, 4 envs x 128 steps per iteration): every finished episode is
    logged at its global step (charts/episodic_return, charts/episodic_length); losses/* and
    charts/learning_rate (annealed to 0) once per iteration."""
    rng = np.random.default_rng(seed)
    envs, per_iter = 4, 128
    p = progress(points)
    mean_len = 20 + 480 * staircase(p, [(0.15, 0.05, 0.4), (0.5, 0.08, 0.6)])
    ep_steps: List[int] = []
    ep_returns: List[float] = []
    remaining = [int(rng.geometric(1 / 20.0)) for _ in range(envs)]
    for it in range(points):
        for t in range(per_iter):
            gstep = (it * per_iter + t + 1) * envs
            for e in range(envs):
                remaining[e] -= 1
                if remaining[e] <= 0:
                    length = min(500, max(8, int(rng.normal(mean_len[it], 0.3 * mean_len[it]))))
                    if it > 0:
                        ep_steps.append(gstep)
                        ep_returns.append(float(length))
                    remaining[e] = length
    es, er = np.asarray(ep_steps), np.asarray(ep_returns)
    steps = per_iter * envs * np.arange(1, points + 1)
    s: Series = {
        "charts/episodic_return": (es, er),
        "charts/episodic_length": (es, er.copy()),
        "charts/learning_rate": (steps, 2.5e-4 * (1 - np.arange(points) / points)),
        "losses/value_loss": (
            steps,
            lognormal(rng, 5 + 60 * np.exp(-(((p - 0.3) / 0.2) ** 2)), 0.4),
        ),
        "losses/policy_loss": (steps, rng.normal(-0.005, 0.006, points)),
        "losses/entropy": (
            steps,
            0.69 - 0.2 * sigmoid(p, 0.4, 0.15) + rng.normal(0, 0.005, points),
        ),
        "losses/old_approx_kl": (steps, lognormal(rng, np.full(points, 0.008), 0.5)),
        "losses/approx_kl": (steps, lognormal(rng, np.full(points, 0.007), 0.5)),
        "losses/clipfrac": (steps, np.clip(rng.normal(0.08, 0.04, points), 0, 1)),
        "losses/explained_variance": (
            steps,
            np.clip(-0.2 + 1.1 * sigmoid(p, 0.2, 0.07) + rng.normal(0, 0.08, points), -1, 0.99),
        ),
        "charts/SPS": (steps, 3000 + rng.normal(0, 100, points)),
    }
    return Log(s, {})


# ----------------------------------------------------------------------------- rsl_rl / legged


def rsl_rl(points: int, seed: int) -> Log:
    """rsl_rl OnPolicyRunner.log (legged_gym): one point per iteration, step = iteration;
    ``*/time`` tags use the elapsed seconds as step."""
    rng = np.random.default_rng(seed)
    p = progress(points)
    it = np.arange(points)
    learn = sigmoid(p, 0.3, 0.1)
    walk = sigmoid(p, 0.45, 0.08)
    s: Series = {}
    s["Loss/value_function"] = (
        it,
        lognormal(rng, 0.02 + 0.4 * np.exp(-p / 0.15), 0.6)
        * np.where(rng.random(points) < 0.05, 5.0, 1.0),
    )
    s["Loss/surrogate"] = (it, rng.normal(-0.004, 0.003, points))
    s["Loss/learning_rate"] = (it, 1e-3 * np.exp(rng.normal(0, 0.4, points)))
    s["Policy/mean_noise_std"] = (
        it,
        1.0 - 0.5 * sigmoid(p, 0.4, 0.2) + rng.normal(0, 0.003, points),
    )
    s["Perf/total_fps"] = (it, 60000 + rng.normal(0, 2000, points))
    s["Perf/collection time"] = (it, 0.5 + rng.normal(0, 0.02, points))
    s["Perf/learning_time"] = (it, 0.3 + rng.normal(0, 0.01, points))
    mean_reward = -1.5 + 23 * learn + smooth_noise(rng, points, 0.6)
    ep_len = np.clip(30 + 970 * sigmoid(p, 0.25, 0.08) + smooth_noise(rng, points, 25), 10, 1001)
    s["Train/mean_reward"] = (it, mean_reward)
    s["Train/mean_episode_length"] = (it, ep_len)
    wall = (2.0 * (it + 1)).astype(np.int64)
    s["Train/mean_reward/time"] = (wall, mean_reward)
    s["Train/mean_episode_length/time"] = (wall, ep_len)
    comps = {
        "rew_tracking_lin_vel": 0.05 + 0.75 * learn,
        "rew_tracking_ang_vel": 0.03 + 0.3 * learn,
        "rew_lin_vel_z": -0.08 + 0.06 * learn,
        "rew_ang_vel_xy": -0.12 + 0.08 * learn,
        "rew_orientation": -0.05 + 0.045 * learn,
        "rew_torques": -0.002 - 0.002 * walk,
        "rew_dof_acc": -0.06 + 0.03 * learn,
        "rew_action_rate": -0.03 + 0.015 * learn,
        "rew_collision": -0.03 * (1 - learn),
        "rew_feet_air_time": np.where(p < 0.2, 0.0, 0.12 * walk),
        "rew_termination": -0.0,  # noqa
    }
    for name, level in comps.items():
        level = np.broadcast_to(np.asarray(level, dtype=float), (points,))
        noisy = level + 0.05 * np.abs(level) * rng.normal(0, 1, points)
        if name == "rew_feet_air_time":
            noisy = np.where(level == 0, 0.0, noisy)
        if name == "rew_termination":
            noisy = -0.002 * (1 - learn) * (rng.random(points) < 0.3)
        s["Episode/" + name] = (it, noisy)
    return Log(s, {})


# ------------------------------------------------------------------------------- HARL / MAPush


def harl_happo(points: int, seed: int, fail: str = "", sparse: bool = False) -> Log:
    """HARL HAPPO on MAPush: ``add_scalars`` per agent (agentN/*) and critic (critic/*);
    MAPush's own add_scalar tags. Healthy: a long flat start (first ~20%), entropy RISES
    while reward, push/reach rewards and success improve."""
    rng = np.random.default_rng(seed)
    p = progress(points)
    steps = 500_000 * np.arange(1, points + 1)
    agents = 2
    start = 0.3 if sparse else 0.2
    learn = np.where(p < start, 0.0, 1 - np.exp(-(p - start) / 0.25))
    g: Series = {}
    s: Series = {}
    for a in range(agents):
        ent0 = 1.3 + 0.02 * a
        ent = ent0 * (1 + (0.12 if sparse else 0.35) * p) + rng.normal(0, 0.02, points)
        grad = lognormal(rng, np.full(points, 0.4 if not sparse else 0.25), 0.3)
        if fail == "nan_grad" and a == 1:
            grad[int(0.55 * points) :] = np.nan
        if fail == "exploding_grad" and a == 0:
            grad = grad * np.where(p < 0.4, 1.0, np.power(1e4, (p - 0.4) / 0.6))
        g["agent%d/dist_entropy" % a] = (steps, ent)
        g["agent%d/actor_grad_norm" % a] = (steps, grad)
        g["agent%d/policy_loss" % a] = (steps, rng.normal(-0.004, 0.003, points))
        g["agent%d/ratio" % a] = (steps, 1 + rng.normal(0, 0.004, points))
    if sparse:  # nothing to fit until the first reward: value loss, critic grads ~0
        vl = np.where(
            p < start,
            lognormal(rng, np.full(points, 2e-7), 0.5),
            lognormal(rng, 0.05 * learn + 2e-3, 0.3),
        )
        cg = np.where(
            p < start,
            lognormal(rng, np.full(points, 2e-4), 0.5),
            lognormal(rng, 0.5 * learn + 0.02, 0.3),
        )
    else:
        vl = lognormal(rng, 0.5 * (1 - 0.5 * learn), 0.25)
        cg = lognormal(rng, np.full(points, 2.0), 0.3)
    if fail == "value_divergence":  # from 30% on the value loss grows x1e4
        vl = vl * np.where(p < 0.3, 1.0, np.power(1e4, (p - 0.3) / 0.7))
        cg = cg * np.where(p < 0.3, 1.0, np.power(30.0, (p - 0.3) / 0.7))
    g["critic/value_loss"] = (steps, vl)
    g["critic/critic_grad_norm"] = (steps, cg)
    if sparse:
        reward = np.where(p < start, 0.0, 0.02 * learn + rng.normal(0, 0.002, points))
        s["average_step_reward"] = (steps, reward)
        s["rewards/reach_target_reward"] = (
            steps,
            np.where(p < start, 0.0, 0.5 * learn * (1 + rng.normal(0, 0.05, points))),
        )
        s["mapush/success_rate"] = (
            steps,
            np.where(p < start, 0.0, np.clip(0.6 * learn + rng.normal(0, 0.03, points), 0, 1)),
        )
    else:
        reward = -380 + 250 * learn + rng.normal(0, 8, points)
        s["average_step_reward"] = (steps, reward)
        s["rewards/push_reward"] = (steps, 1e-5 + 14 * learn + np.abs(rng.normal(0, 0.3, points)))
        s["rewards/reach_target_reward"] = (
            steps,
            np.where(p < 0.2, 0.0, 3 * learn + np.abs(rng.normal(0, 0.1, points))),
        )
        s["rewards/collision_punishment"] = (
            steps,
            -0.5 + 0.2 * learn + rng.normal(0, 0.03, points),
        )
        success = np.where(p < 0.22, 0.0, np.clip(0.6 * learn + rng.normal(0, 0.03, points), 0, 1))
        s["mapush/success_rate"] = (steps, success)
    return Log(s, g)


def mapush_failure(points: int, seed: int) -> Log:
    """The original MAPush failure, from tests/patterns.py (entropy 1.31 -> 2.17, success 0,
    push reward ~1e-5, step reward flat with noise)."""
    s: Dict[str, Tuple[List[int], List[float]]] = {}
    g: Dict[str, Tuple[List[int], List[float]]] = {}
    for step, _wall, plain, grouped in failure_pattern(points, seed):
        for target, values in ((s, plain), (g, grouped)):
            for tag, v in values.items():
                target.setdefault(tag, ([], []))
                target[tag][0].append(step)
                target[tag][1].append(v)
    conv = lambda d: {k: (np.asarray(a), np.asarray(b, dtype=float)) for k, (a, b) in d.items()}  # noqa
    return Log(conv(s), conv(g))


def reward_collapse(points: int, seed: int) -> Log:
    """SB3 PPO whose return rises to a peak at 45% then falls back to its start level by 75%
    and stays there (catastrophic forgetting); the losses look ordinary."""
    log = sb3_ppo(points, seed, continuous=True)
    rng = np.random.default_rng(seed + 100)
    p = progress(points)
    steps, _ = log.plain["rollout/ep_rew_mean"]
    rise = sigmoid(p, 0.2, 0.06)
    fall = sigmoid(p, 0.6, 0.05)
    reward = -300 + 2500 * rise * (1 - fall) + smooth_noise(rng, points, 60)
    log.plain["rollout/ep_rew_mean"] = (steps, reward)
    return log


# ------------------------------------------------------------------------- supervised learning


def lightning(points: int, seed: int) -> Log:
    """Lightning: train_loss every 50 optimizer steps, val_loss and epoch once per epoch
    (10 train logs per epoch)."""
    rng = np.random.default_rng(seed)
    n = points * 10
    steps = 50 * np.arange(1, n + 1)
    q = np.arange(n) / n
    train = lognormal(rng, 0.25 + 2.0 * np.exp(-q / 0.1), 0.12)
    ep_steps = steps[9::10]
    e = np.arange(points) / points
    val = 0.32 + 2.0 * np.exp(-e / 0.1) + rng.normal(0, 0.01, points)
    return Log(
        {
            "train_loss": (steps, train),
            "val_loss": (ep_steps, val),
            "epoch": (ep_steps, np.arange(points, dtype=float)),
            "lr-Adam": (steps, np.full(n, 1e-3)),
        },
        {},
    )


def keras(points: int, seed: int) -> Log:
    """Keras TensorBoard callback: ``train/`` and ``validation/`` folders, step = epoch.
    Written as add_scalars so the folders exist (the group key is the folder name)."""
    rng = np.random.default_rng(seed)
    e = np.arange(points)
    q = e / points
    train = 0.2 + 1.8 * np.exp(-q / 0.15) + rng.normal(0, 0.01, points)
    val = 0.28 + 1.8 * np.exp(-q / 0.15) + rng.normal(0, 0.015, points)
    acc = 0.95 - 0.85 * np.exp(-q / 0.15)
    return Log(
        {},
        {
            "train/epoch_loss": (e, train),
            "validation/epoch_loss": (e, val),
            "train/epoch_accuracy": (e, acc + rng.normal(0, 0.005, points)),
            "validation/epoch_accuracy": (e, acc - 0.02 + rng.normal(0, 0.008, points)),
        },
    )


# ------------------------------------------------------------------------------- write & judge


def write(log: Log, logdir: Path, keras_layout: bool = False) -> None:
    """Write every point through tensorboardX in step order, as a trainer does."""
    events: List[Tuple[int, int, str, float, bool]] = []
    order = 0
    for grouped, series in ((False, log.plain), (True, log.grouped)):
        for tag, (steps, values) in series.items():
            for st, v in zip(np.asarray(steps).tolist(), np.asarray(values).tolist()):
                events.append((int(st), order, tag, float(v), grouped))
            order += 1
    events.sort(key=lambda e: (e[0], e[1]))
    if keras_layout:  # one writer per folder, tag without the folder (what Keras writes)
        writers: Dict[str, SummaryWriter] = {}
        for step, _, tag, value, _ in events:
            folder, name = tag.split("/", 1)
            if folder not in writers:
                writers[folder] = SummaryWriter(str(logdir / folder), flush_secs=3600)
            writers[folder].add_scalar(name, value, step, walltime=1.7e9 + step)
        for w in writers.values():
            w.close()
        return
    writer = SummaryWriter(str(logdir), flush_secs=3600)
    for step, _, tag, value, grouped in events:
        if grouped:
            writer.add_scalars(tag, {tag: value}, step, walltime=1.7e9 + step / 1000.0)
        else:
            writer.add_scalar(tag, value, step, walltime=1.7e9 + step / 1000.0)
    writer.close()


@dataclass
class Prefix:
    share: float
    verdict: Verdict


def judge_prefixes(logdir: Path, planned: bool = False) -> List[Prefix]:
    """Read the run back with tblive's reader and judge it with :func:`judge_arrays`."""
    logging.disable(logging.WARNING)
    try:
        runs = load_points(str(logdir))
    finally:
        logging.disable(logging.NOTSET)
    assert len(runs) == 1, sorted(runs)
    ((name, series),) = runs.items()
    arrays = {tag: sink.arrays() for tag, sink in series.items()}
    return judge_arrays(name, arrays, planned)


def log_arrays(log: Log) -> Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """What the reader returns for ``log`` after :func:`write`, without the round trip: values
    as the float32 the event file holds, spaces in plain tags as underscores (tensorboardX)."""
    out: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for grouped, series in ((False, log.plain), (True, log.grouped)):
        for tag, (steps, values) in series.items():
            st = np.asarray(steps, dtype=np.int64)
            vals = np.asarray(values, dtype=np.float32).astype(np.float64)
            out[tag if grouped else tag.replace(" ", "_")] = (st, vals, 1.7e9 + st / 1000.0)
    return out


def judge_arrays(
    name: str,
    arrays: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]],
    planned: bool = False,
    prefixes: int = PREFIXES,
    config: Optional[object] = None,
    time_axis: bool = True,
) -> List[Prefix]:
    """Feed ``1/prefixes`` of the run's steps at a time into fresh incremental statistics (what
    the daemon keeps) and judge after each chunk; with ``planned`` the run's planned length (its
    last step) is known, as a live run. ``*/time`` tags (a seconds axis) are cut by count."""
    # the run's step axis: the densest non-/time series (the trainer's iteration counter)
    axis = max((a[0][-1] for t, a in arrays.items() if not t.endswith("/time")))
    stats = {tag: new_stats(tag) for tag in arrays}
    fed = {tag: 0 for tag in arrays}
    out = []
    for k in range(1, prefixes + 1):
        cut = axis * k / prefixes
        for tag, (steps, values, walls) in arrays.items():
            if time_axis and tag.endswith("/time"):  # seconds axis: cut proportionally
                upto = int(round(len(steps) * k / prefixes))
            else:
                upto = int(np.searchsorted(steps, cut, side="right"))
            if upto > fed[tag]:
                sl = slice(fed[tag], upto)
                stats[tag].update_many(steps[sl], values[sl], walls[sl])
                fed[tag] = upto
        view = {tag: st for tag, st in stats.items() if st.count}
        context = RunContext(planned_steps=int(axis), state=LIVE) if planned else None
        out.append(Prefix(k / prefixes, evaluate(name, view, config, context)))  # type: ignore[arg-type]
    return out


def sequence(prefixes: List[Prefix]) -> str:
    return "".join(LETTER[p.verdict.status] for p in prefixes)


def first_critical(prefixes: List[Prefix], checks: Tuple[str, ...] = ()) -> Optional[float]:
    """Share of the run at which one of ``checks`` (any check when empty) is first CRITICAL."""
    for p in prefixes:
        if any(
            f.status == Status.CRITICAL and (not checks or f.check in checks)
            for f in p.verdict.findings
        ):
            return p.share
    return None


# ------------------------------------------------------------------------------- the scenarios


@dataclass
class Scenario:
    name: str
    build: Callable[[int, int], Log]
    healthy: bool
    critical_by: float = 0.3  # failing runs: first CRITICAL at or before this share
    keras_layout: bool = False
    lengths: Tuple[int, ...] = (50, 100, 300)
    seeds: Tuple[int, ...] = (1, 2)
    at_least_warning: bool = False  # failing runs that should say WARNING (not OK) at the end
    checks: Tuple[str, ...] = ()  # failing runs: the checks whose CRITICAL counts


SCENARIOS = [
    Scenario("sb3_ppo_cartpole", lambda n, s: sb3_ppo(n, s), True, seeds=(1, 2, 3)),
    Scenario("sb3_ppo_halfcheetah", lambda n, s: sb3_ppo(n, s, continuous=True), True),
    Scenario("cleanrl_ppo", cleanrl_ppo, True),
    Scenario("rsl_rl_legged", rsl_rl, True, seeds=(1, 2, 3)),
    Scenario("harl_happo_mapush", harl_happo, True, seeds=(1, 2, 3)),
    Scenario("sb3_sac", lambda n, s: sb3_offpolicy(n, s, "sac"), True),
    Scenario("sb3_td3", lambda n, s: sb3_offpolicy(n, s, "td3"), True),
    Scenario("sparse_harl", lambda n, s: harl_happo(n, s, sparse=True), True, seeds=(1, 2, 3)),
    Scenario("lightning", lightning, True, lengths=(20, 50, 100)),
    Scenario("keras", keras, True, keras_layout=True, lengths=(20, 50, 100)),
    # failing
    Scenario(
        "mapush_failure", mapush_failure, False, seeds=(1, 2, 3), checks=("Success Rate", "Entropy")
    ),
    Scenario(
        "nan_value_loss@50%",
        lambda n, s: sb3_ppo(n, s, fail="nan_value_loss"),
        False,
        0.55,
        checks=("Non-finite Values",),
    ),
    Scenario(
        "nan_grad_norm@55%",
        lambda n, s: harl_happo(n, s, fail="nan_grad"),
        False,
        0.6,
        checks=("Non-finite Values",),
    ),
    # x10 per 15% of the run from 40%: the x100 CRITICAL factor (explode_critical, on the
    # current level against the start) is crossed at 70%, the x1000 blow-up at 85%; the
    # current level (median of the last 5 points) lags a prefix on 50 points
    Scenario(
        "exploding_grad@40%",
        lambda n, s: harl_happo(n, s, fail="exploding_grad"),
        False,
        0.8,
        checks=("Gradient Norms",),
    ),
    # x10 per 17.5% of the run from 30%: x100 beyond the return scale (diverge_critical) is
    # crossed at ~68%; a lower threshold would call the healthy ML-Agents curriculum run (value
    # loss x51 while ELO rises) CRITICAL
    Scenario(
        "value_divergence@30%",
        lambda n, s: harl_happo(n, s, fail="value_divergence"),
        False,
        0.75,
        checks=("Value Loss",),
    ),
    # Q grows from the start but the return rises too until ~25%: distinguishable once the
    # return falls while Q keeps growing (~40-50%)
    Scenario(
        "td3_q_divergence",
        lambda n, s: sb3_offpolicy(n, s, "td3", "q_divergence"),
        False,
        0.55,
        checks=("Q-Value Divergence", "Value Loss"),
    ),
    Scenario(
        "ppo_collapse@55%",
        lambda n, s: sb3_ppo(n, s, fail="ppo_collapse"),
        False,
        0.7,
        checks=("PPO Health", "Reward Trend", "Entropy", "Value Loss"),
    ),
    # back at its start level by ~70% and staying there
    # the fall is complete at ~70% and a collapse must last a fifth of the run so far
    Scenario("reward_collapse@60%", reward_collapse, False, 0.85, checks=("Reward Trend",)),
    # premature convergence: the right verdict is a WARNING naming the entropy collapse
    Scenario(
        "entropy_collapse@10%",
        lambda n, s: sb3_ppo(n, s, fail="entropy_collapse"),
        False,
        at_least_warning=True,
    ),
]

# Known gaps: (scenario, length; 0 = every length) -> why tblive misses the expectation today.
KNOWN_GAPS: Dict[Tuple[str, int], str] = {}

#: gaps that depend on the noise of one seed
KNOWN_SEED_GAPS: Dict[Tuple[str, int, int], str] = {
    ("td3_q_divergence", 50, 1): "first CRITICAL at 60% (due 55%): the critic loss crosses x100 "
    "beyond the return scale (diverge_critical) at 60%, the Q estimate x100 later",
}


def cases(scenarios=None, gaps=None, seed_gaps=None) -> Iterator[object]:
    """One pytest param per scenario x length x seed; known gaps become strict xfails."""
    gaps = KNOWN_GAPS if gaps is None else gaps
    seed_gaps = KNOWN_SEED_GAPS if seed_gaps is None else seed_gaps
    for sc in SCENARIOS if scenarios is None else scenarios:
        for length in sc.lengths:
            for seed in sc.seeds:
                reason = (
                    gaps.get((sc.name, length))
                    or gaps.get((sc.name, 0))
                    or seed_gaps.get((sc.name, length, seed))
                )
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                yield pytest.param(
                    sc, length, seed, marks=marks, id="%s-%d-s%d" % (sc.name, length, seed)
                )


#: Cases judged with the run's planned length known (``RunContext.planned_steps`` = its last
#: step, what the report reads from the trainer's saved config): without it the grace and the
#: failure windows are counted in points, and a 50-point run is still in grace at 50%.
PLANNED: Dict[Tuple[str, int], str] = {
    ("mapush_failure", 50): "grace is 25 points = 50% of a 50-point run",
    ("reward_collapse@60%", 50): "a collapse must last 10 points = 20% of a 50-point run",
}


def round_trip(sc: Scenario, length: int, seed: int) -> bool:
    """Only the first length and seed of a scenario (and every Keras layout) go through the real
    writer and reader; the rest feed the same arrays straight into the engine (fast)."""
    return getattr(sc, "keras_layout", False) or (length == sc.lengths[0] and seed == sc.seeds[0])


def run_case(sc: Scenario, length: int, seed: int) -> List[Prefix]:
    log = sc.build(length, seed)
    planned = (sc.name, length) in PLANNED
    if not round_trip(sc, length, seed):
        return judge_arrays("run", log_arrays(log), planned)
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp) / "run"
        write(log, logdir, sc.keras_layout)
        return judge_prefixes(logdir, planned)


@pytest.mark.parametrize("sc,length,seed", list(cases()))
def test_scenario(sc: Scenario, length: int, seed: int) -> None:
    prefixes = run_case(sc, length, seed)
    seq = sequence(prefixes)
    if sc.healthy:
        assert "C" not in seq, (seq, describe(prefixes))
        return
    if sc.at_least_warning:  # a WARNING that names the entropy collapse
        final = prefixes[-1].verdict.findings
        assert any(f.check == "Entropy" and f.status == Status.WARNING for f in final), (
            seq,
            describe(prefixes),
        )
        return
    first = first_critical(prefixes, sc.checks)
    assert first is not None and first <= sc.critical_by + 1e-9, (seq, first, describe(prefixes))
    assert seq.endswith("C"), (seq, describe(prefixes))
    if sc.checks == ("Non-finite Values",):  # names the metric and the first bad step
        named = [
            f
            for f in prefixes[-1].verdict.findings
            if f.check == "Non-finite Values"
            and f.status == Status.CRITICAL
            and ("grad_norm" in (f.metric or "") or "value_loss" in (f.metric or ""))
        ]
        assert named and "first" in named[0].message, describe(prefixes)
        assert named[0].details.get("first_nonfinite_step") or named[0].details.get("agents")


def describe(prefixes: List[Prefix], index: int = -1) -> List[str]:
    v = prefixes[index].verdict
    return [
        "%s %s: %s" % (f.status.name, f.check, f.message[:200])
        for f in v.findings
        if f.status > Status.OK
    ]


# ------------------------------------------------------------------------------------ report


def main() -> None:
    for sc in SCENARIOS:
        for length in sc.lengths:
            for seed in sc.seeds:
                prefixes = run_case(sc, length, seed)
                seq = sequence(prefixes)
                fired: Dict[str, str] = {}
                for pr in prefixes:
                    for f in pr.verdict.findings:
                        if f.status > Status.OK:
                            key = "%s[%s]" % (f.check, f.metric)
                            letter = LETTER[f.status]
                            if fired.get(key) != "C":
                                fired[key] = letter
                first = first_critical(prefixes, sc.checks)
                seq += (
                    ""
                    if sc.healthy
                    else "  first C%s: %s"
                    % (
                        "(%s)" % "/".join(sc.checks) if sc.checks else "",
                        "%d%%" % round(100 * first) if first else "never",
                    )
                )
                print(
                    "%-22s %4d s%d  %s  %s"
                    % (
                        sc.name,
                        length,
                        seed,
                        seq,
                        " ".join("%s:%s" % (k, v) for k, v in fired.items()),
                    )
                )


if __name__ == "__main__":
    main()
