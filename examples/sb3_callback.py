"""Stable-Baselines3 PPO on CartPole with the tblive callback (a few seconds on CPU).

    pip install stable-baselines3   # brings torch and gymnasium
    python examples/sb3_callback.py [--timesteps 4096]

``SB3Callback`` forwards every numeric value SB3's logger records (the tags its TensorBoard
output would write: ``rollout/ep_rew_mean``, ``train/entropy_loss``...) to a Monitor, and
returns False from ``_on_step`` -- SB3 stops training -- once ``monitor.should_stop`` is True.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=4096)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from stable_baselines3 import PPO

        from tblive.doors.integrations import SB3Callback
    except ImportError as error:
        sys.exit("this example needs stable-baselines3 (pip install stable-baselines3): %s" % error)

    logdir = tempfile.mkdtemp(prefix="sb3_")
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=256, batch_size=64, n_epochs=4,
                tensorboard_log=logdir, seed=0, device="cpu")  # fmt: skip
    callback = SB3Callback(run_name="ppo_cartpole", interval=1.0, stop_on="critical",
                           report_path=logdir + "/tblive_report.json")  # fmt: skip
    model.learn(args.timesteps, callback=callback)
    monitor = callback.monitor
    print("steps trained: %d, stopped by tblive: %s" % (model.num_timesteps, monitor.should_stop))
    print("final: %s" % (monitor.verdict.summary if monitor.verdict else "no verdict"))
    for finding in monitor.findings:
        print("  [%s] %s" % (finding.status.name, finding.message.splitlines()[0][:110]))
    print("series seen: %s" % ", ".join(sorted(monitor.stats())))


if __name__ == "__main__":
    main()
