"""Write the example logs shipped in ``examples/logs/`` with a real writer (tensorboardX).

Two MAPush/HARL-style runs, in HARL's layout (``add_scalars`` nested folders for per-agent and
critic metrics, ``add_scalar`` for MAPush's own tags), 200 points each like a 100M-step run
logged every 500k steps:

* ``mapush_failed``: the failure pattern our users met: entropy rising 1.31 -> 2.17, success
  stuck at 0, the push reward dead at ~1e-5, the step reward flat.
* ``mapush_healthy``: a run that is clearly learning: success rises from 0 to ~0.65, the
  reward and the push reward rise, the value loss halves and the entropy falls from 1.31 to
  ~0.86 as the policy becomes confident.

Run ``python examples/make_example_logs.py [OUTDIR]``; it is deterministic (fixed seed and wall
times), so re-running it rewrites the same values.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

POINTS = 200
STEP_EVERY = 500_000
AGENTS = 2
START_TIME = 1_760_000_000.0


def write_run(path: str, healthy: bool, seed: int) -> None:
    from tensorboardX import SummaryWriter

    rng = np.random.default_rng(seed)
    shutil.rmtree(path, ignore_errors=True)
    writer = SummaryWriter(path, flush_secs=3600)
    for i in range(POINTS):
        step = (i + 1) * STEP_EVERY
        wall = START_TIME + 120.0 * i
        progress = i / (POINTS - 1)
        learn = 1.0 / (1.0 + np.exp(-10 * (progress - 0.35))) if healthy else 0.0
        for agent in range(AGENTS):
            name = "agent%d" % agent
            scalars = {
                # failed: drifts towards randomness; healthy: falls as the policy grows confident
                "dist_entropy": (1.31 - 0.45 * learn if healthy else 1.31 + 0.86 * progress)
                + rng.normal(0, 0.03),
                "actor_grad_norm": 0.4 + rng.normal(0, 0.05),
                "policy_loss": -0.004 + rng.normal(0, 0.002),
                "ratio": 1.0 + rng.normal(0, 0.003),
            }
            for key, value in scalars.items():
                tag = "%s/%s" % (name, key)
                writer.add_scalars(tag, {tag: float(value)}, step, walltime=wall)
        critic = {
            "value_loss": 0.5 * (1.0 - 0.6 * learn) + abs(rng.normal(0, 0.03)),
            "critic_grad_norm": 1.2 + rng.normal(0, 0.1),
        }
        for key, value in critic.items():
            tag = "critic/%s" % key
            writer.add_scalars(tag, {tag: float(value)}, step, walltime=wall)
        reward = -380.0 + 250.0 * learn + rng.normal(0, 8.0)
        writer.add_scalar("average_step_reward", reward, step, walltime=wall)
        writer.add_scalars(
            "train_episode_rewards", {"aver_rewards": reward * 10.0}, step, walltime=wall
        )
        push = 14.0 * learn + 1e-5 + abs(rng.normal(0, 2e-6 if not healthy else 0.3))
        writer.add_scalar("rewards/push_reward", push, step, walltime=wall)
        writer.add_scalar(
            "rewards/distance_to_target_reward",
            -146 + 25 * learn + rng.normal(0, 2.0),
            step,
            walltime=wall,
        )
        success = float(np.clip(0.65 * learn + rng.normal(0, 0.02), 0, 1)) if healthy else 0.0
        writer.add_scalar("mapush/success_rate", success, step, walltime=wall)
    writer.close()
    # tensorboardX names files after the clock and the host: give them fixed names instead, so
    # rewriting the examples does not rename every file
    for folder, _, names in os.walk(path):
        for name in names:
            if "tfevents" in name:
                fixed = "events.out.tfevents.%d.example" % START_TIME
                os.replace(os.path.join(folder, name), os.path.join(folder, fixed))


def main(argv: list) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    out = argv[1] if len(argv) > 1 else os.path.join(here, "logs")
    write_run(os.path.join(out, "mapush_failed", "logs"), healthy=False, seed=1)
    write_run(os.path.join(out, "mapush_healthy", "logs"), healthy=True, seed=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
