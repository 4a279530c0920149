"""A minimal HARL/MAPush-style runner with tblive attached: the two lines a user adds are marked.

It logs exactly like HARL + MAPush: one ``tensorboardX.SummaryWriter`` held as
``runner.writter`` (sic) and shared with the logger; HARL's per-agent and critic train infos go
through ``add_scalars(k, {k: v})`` (``agentN/<key>``, ``critic/<key>``), MAPush's episode figures
through ``add_scalar`` (``average_step_reward``, ``rewards/<component>``,
``mapush/success_rate``).  Values arrive as numpy scalars and, when torch is installed, as 0-d
tensors, as in the real trainer.

By default it replays the original failure (entropy 1.31 -> 2.17, success 0, push reward ~1e-5,
flat reward); the monitor turns CRITICAL and the runner checkpoints and stops itself.
``--healthy`` trains a run that learns.  Runs in a few seconds on CPU:

    python examples/harl_mapush_runner.py [--logdir DIR] [--slack-webhook URL] [--healthy]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from typing import Any, Dict

import numpy as np
from tensorboardX import SummaryWriter

import tblive


def as_tensor(value: float) -> Any:
    """A 0-d torch tensor when torch is installed (HARL's losses are tensors), else numpy."""
    try:
        import torch
    except ImportError:
        return np.float32(value)
    return torch.tensor(value)


class Logger:
    """HARL's logger: shares the runner's writer and logs train infos with add_scalars."""

    def __init__(self, writter: SummaryWriter, num_agents: int) -> None:
        self.writter = writter
        self.num_agents = num_agents

    def log_train(self, actor_infos: list, critic_info: Dict[str, Any], step: int) -> None:
        for agent_id in range(self.num_agents):
            for k, v in actor_infos[agent_id].items():
                agent_k = "agent%i/" % agent_id + k
                self.writter.add_scalars(agent_k, {agent_k: v}, step)
        for k, v in critic_info.items():
            critic_k = "critic/" + k
            self.writter.add_scalars(critic_k, {critic_k: v}, step)


class Runner:
    """A stand-in for HARL's OnPolicyBaseRunner driving a MAPush-like environment."""

    def __init__(self, log_dir: str, episodes: int, healthy: bool, slack_webhook: str) -> None:
        self.log_dir = log_dir
        self.episodes = episodes
        self.healthy = healthy
        self.num_agents = 2
        self.writter = SummaryWriter(self.log_dir)
        self.logger = Logger(self.writter, self.num_agents)
        # --- tblive: line 1 of 2 -------------------------------------------------------------
        self.monitor = tblive.attach(
            self.writter, stop_on="critical", slack_webhook=slack_webhook or None, interval=0.2
        )
        self.rng = np.random.default_rng(1)

    def train_infos(self, progress: float) -> tuple:
        entropy = 1.31 * (1 - 0.5 * progress) if self.healthy else 1.31 + 0.86 * progress
        actor = [
            {
                "dist_entropy": as_tensor(entropy + self.rng.normal(0, 0.02)),
                "policy_loss": as_tensor(self.rng.normal(-0.01, 0.01)),
                "actor_grad_norm": np.float32(0.5 + self.rng.normal(0, 0.05)),
                "ratio": np.float32(1.0 + self.rng.normal(0, 0.01)),
            }
            for _ in range(self.num_agents)
        ]
        critic = {
            "value_loss": as_tensor(0.1 + self.rng.normal(0, 0.01)),
            "critic_grad_norm": np.float32(1.0 + self.rng.normal(0, 0.1)),
        }
        return actor, critic

    def log_episode(self, progress: float, step: int) -> None:
        """MAPush's own logging: plain add_scalar calls."""
        learned = progress if self.healthy else 0.0
        push = 0.5 * learned if self.healthy else 1e-5 * (1 + self.rng.normal(0, 0.1))
        self.writter.add_scalar(
            "average_step_reward", -0.5 + learned + self.rng.normal(0, 0.01), step
        )
        self.writter.add_scalar("rewards/push_reward", np.float64(push), step)
        self.writter.add_scalar("rewards/distance_reward", -0.3 + self.rng.normal(0, 0.01), step)
        self.writter.add_scalar("mapush/success_rate", np.float32(0.8 * learned), step)

    def save(self, step: int) -> None:
        path = os.path.join(self.log_dir, "checkpoint_%d.txt" % step)
        with open(path, "w") as handle:
            handle.write("model weights would be here\n")
        print("checkpoint saved: %s" % path)

    def run(self) -> None:
        step = 0
        for episode in range(self.episodes):
            step = (episode + 1) * 50_000
            progress = episode / max(self.episodes - 1, 1)
            actor, critic = self.train_infos(progress)
            self.logger.log_train(actor, critic, step)
            self.log_episode(progress, step)
            time.sleep(0.01)  # the environment rollouts
            if self.monitor.should_stop:  # optional: act on the verdict
                print("tblive says %s at step %d; stopping." % (self.monitor.status.name, step))
                for finding in self.monitor.problems:
                    print("  [%s] %s" % (finding.status.name, finding.message.splitlines()[0]))
                self.save(step)
                break
        self.close()

    def close(self) -> None:
        # --- tblive: line 2 of 2 -------------------------------------------------------------
        report = self.monitor.close()
        self.writter.export_scalars_to_json(os.path.join(self.log_dir, "summary.json"))
        self.writter.close()
        print("final verdict: %s" % report.get("summary"))
        print("report: %s" % os.path.join(self.log_dir, "tblive_report.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--healthy", action="store_true", help="a run that learns")
    parser.add_argument("--slack-webhook", default="", help="also alert this Slack webhook")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logdir = args.logdir or os.path.join(tempfile.mkdtemp(prefix="mapush_"), "logs")
    Runner(logdir, args.episodes, args.healthy, args.slack_webhook).run()


if __name__ == "__main__":
    main()
