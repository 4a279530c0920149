"""Training-log patterns the tests write with real writers (tensorboardX, HARL/MAPush layout).

``failure_pattern`` is the failure our users met with the original analyzer: entropy rising
1.31 -> 2.17, success stuck at 0, the push reward dead at ~1e-5, the step reward flat with noise.
``healthy_pattern`` has the same rising entropy (as the real MAPush runs that succeeded) while
reward, push reward and success improve after a flat start.
"""

from __future__ import annotations

from typing import Dict, Iterator, Tuple

import numpy as np

AGENTS = 2
STEP_EVERY = 500_000
START_TIME = 1_760_000_000.0

Row = Tuple[int, float, Dict[str, float], Dict[str, float]]  # step, wall, add_scalar, add_scalars


def _rows(points: int, healthy: bool, seed: int) -> Iterator[Row]:
    rng = np.random.default_rng(seed)
    for i in range(points):
        progress = i / max(points - 1, 1)
        learn = 1.0 / (1.0 + np.exp(-10 * (progress - 0.35))) if healthy else 0.0
        grouped: Dict[str, float] = {}
        for agent in range(AGENTS):
            grouped["agent%d/dist_entropy" % agent] = 1.31 + 0.86 * progress + rng.normal(0, 0.03)
            grouped["agent%d/actor_grad_norm" % agent] = 0.4 + rng.normal(0, 0.05)
            grouped["agent%d/policy_loss" % agent] = -0.004 + rng.normal(0, 0.002)
        grouped["critic/value_loss"] = 0.5 * (1 - 0.6 * learn) + abs(rng.normal(0, 0.03))
        reward = -380.0 + 250.0 * learn + rng.normal(0, 8.0)
        push_noise = 0.3 if healthy else 2e-6
        plain = {
            "average_step_reward": reward,
            "rewards/push_reward": 14.0 * learn + 1e-5 + abs(rng.normal(0, push_noise)),
            "mapush/success_rate": float(np.clip(0.65 * learn + rng.normal(0, 0.02), 0, 1))
            if healthy
            else 0.0,
        }
        yield (i + 1) * STEP_EVERY, START_TIME + 120.0 * i, plain, grouped


def failure_pattern(points: int = 200, seed: int = 1) -> Iterator[Row]:
    return _rows(points, healthy=False, seed=seed)


def healthy_pattern(points: int = 200, seed: int = 2) -> Iterator[Row]:
    return _rows(points, healthy=True, seed=seed)


def write_row(writer, row: Row) -> None:
    """Log one row the way HARL (add_scalars per agent/critic key) and MAPush (add_scalar) do."""
    step, wall, plain, grouped = row
    for tag, value in grouped.items():
        writer.add_scalars(tag, {tag: float(value)}, step, walltime=wall)
    for tag, value in plain.items():
        writer.add_scalar(tag, float(value), step, walltime=wall)
