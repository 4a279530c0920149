"""A CleanRL-style plain training loop with a tblive Monitor (numpy + tensorboardX only).

REINFORCE with a softmax policy on a 4-armed bandit, logged the CleanRL way
(``charts/episodic_return``, ``losses/entropy``, ``losses/policy_loss`` via ``add_scalar``).
The monitor is used as a context manager around the loop; it is attached to the writer, so the
``writer.add_scalar`` lines stay as they are.  Values can also be fed without any writer with
``monitor.log(step, {...})`` (``--no-writer``).  Runs in about a second:

    python examples/cleanrl_loop.py [--broken] [--no-writer]

``--broken`` uses a learning rate with the wrong sign: return falls, entropy rises.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile

import numpy as np

from tblive import Monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--broken", action="store_true")
    parser.add_argument("--no-writer", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    run_dir = os.path.join(tempfile.mkdtemp(prefix="cleanrl_"), "bandit__reinforce__1")
    rng = np.random.default_rng(1)
    means = np.array([0.1, 0.3, 0.5, 0.9])
    logits = np.zeros(4)
    lr = -0.05 if args.broken else 0.05
    episode_return = 0.0  # an "episode" is 10 pulls
    writer = None
    if not args.no_writer:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(run_dir)

    with Monitor("bandit__reinforce__1", interval=0.25, stop_on="critical",
                 report_path=os.path.join(run_dir, "tblive_report.json")) as monitor:  # fmt: skip
        if writer is not None:
            monitor.attach(writer)
        for global_step in range(args.steps):
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            action = rng.choice(4, p=probs)
            reward = rng.normal(means[action], 0.1)
            grad = -probs
            grad[action] += 1.0
            logits += lr * reward * grad
            episode_return += reward
            entropy = float(-(probs * np.log(probs)).sum())
            policy_loss = float(-np.log(probs[action]) * reward)
            if global_step % 10 == 9:
                reward, episode_return = episode_return, 0.0
                if writer is not None:
                    writer.add_scalar("charts/episodic_return", reward, global_step)
                    writer.add_scalar("losses/entropy", entropy, global_step)
                    writer.add_scalar("losses/policy_loss", policy_loss, global_step)
                else:
                    monitor.log(
                        global_step,
                        {
                            "charts/episodic_return": reward,
                            "losses/entropy": entropy,
                            "losses/policy_loss": policy_loss,
                        },
                    )
            if monitor.should_stop:
                print(
                    "tblive: %s at step %d -- stopping early" % (monitor.status.name, global_step)
                )
                break
    if writer is not None:
        writer.close()
    print("final: %s" % monitor.verdict.summary if monitor.verdict else "no verdict")
    for finding in monitor.findings:
        print(
            "  [%s] %s: %s"
            % (finding.status.name, finding.check, finding.message.splitlines()[0][:110])
        )


if __name__ == "__main__":
    main()
