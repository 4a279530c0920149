"""A real tensorboardX writer in HARL's layout, for the daemon tests.

HARL/MAPush log like this (``SummaryWriter(logdir)``; one ``add_scalars`` writer per agent tag,
which tensorboardX puts in nested folders ``<run>/agentN/dist_entropy/agentN/dist_entropy``)::

    writer.add_scalars("agent0/dist_entropy", {"agent0/dist_entropy": v}, step)
    writer.add_scalar("mapush/success_rate", 0.0, step)
    writer.add_scalar("rewards/push_reward", 1e-5 + noise, step)
    writer.add_scalar("average_step_reward", flat + noise, step)

The *failure pattern* is the original MAPush failure: entropy 1.31 -> 2.17, success 0
throughout, push reward ~1e-5, flat noisy step reward.  It shows all three failure signs, so
it becomes CRITICAL (Entropy, Success Rate) once past the default grace (25 points), well
before its 60th point.  The *recovery* continues it with
entropy falling back, success and rewards rising.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

FAILURE_POINTS = 60
RECOVERY_POINTS = 60


class HarlWriter:
    """tensorboardX ``SummaryWriter`` writing the HARL tags; ``point`` writes one step."""

    def __init__(self, logdir: str, agents: int = 2, seed: int = 0, flush_secs: int = 1) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir, flush_secs=flush_secs)
        self.agents = agents
        self.rng = np.random.default_rng(seed)
        self.step = 0

    def point(
        self,
        entropy: float,
        success: float,
        push: float,
        average: float,
        flush: bool = True,
        agents: Optional[int] = None,
    ) -> None:
        self.step += 1000
        for agent in range(self.agents if agents is None else agents):
            tag = "agent%d/dist_entropy" % agent
            self.writer.add_scalars(
                tag, {tag: entropy + float(self.rng.normal(0, 0.01))}, self.step
            )
        self.writer.add_scalar("mapush/success_rate", success, self.step)
        self.writer.add_scalar(
            "rewards/push_reward", push + float(self.rng.normal(0, 1e-7)), self.step
        )
        self.writer.add_scalar(
            "average_step_reward", average + float(self.rng.normal(0, 0.001)), self.step
        )
        if flush:
            self.writer.flush()

    def failure(self, index: int, total: int = FAILURE_POINTS) -> None:
        """Point ``index`` of the failure pattern."""
        entropy = 1.31 + (2.17 - 1.31) * index / max(total - 1, 1)
        self.point(entropy, 0.0, 1e-5, 0.01)

    def recovery(self, index: int, total: int = RECOVERY_POINTS) -> None:
        """Point ``index`` of the recovery that follows the failure."""
        share = (index + 1) / total
        self.point(
            2.17 - (2.17 - 1.0) * share, 0.9 * share, 1e-5 + 0.05 * share, 0.01 + 0.5 * share
        )

    def write_failure(self, points: int = FAILURE_POINTS, pause: float = 0.02) -> None:
        for index in range(points):
            self.failure(index, max(points, FAILURE_POINTS))
            time.sleep(pause)

    def write_recovery(self, points: int = RECOVERY_POINTS, pause: float = 0.02) -> None:
        for index in range(points):
            self.recovery(index, points)
            time.sleep(pause)

    def close(self) -> None:
        self.writer.close()
