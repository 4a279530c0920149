"""Planned length and run state from the files next to the logs (tblive.read.provenance).

Runs are written by real writers (tensorboardX, torch's SummaryWriter) in the layouts of the
trainers whose configs are read: HARL/MAPush (``seed-*/config.json`` beside ``logs/``), rl-zoo
(``<env>/config.yml`` beside SB3's ``PPO_1``), rsl_rl / Isaac Lab (``params/agent.yaml``),
wandb-saved args, Sample Factory, ML-Agents.  File ages are set with ``os.utime``, never slept.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Optional

import pytest
from tensorboardX import SummaryWriter

from tblive.cli import main
from tblive.doors.posthoc import analyze
from tblive.judge.config import Config
from tblive.read.provenance import (
    FINISHED_AFTER_SECONDS,
    MAX_FILE_BYTES,
    finished_threshold,
    planned_length,
    reconcile,
    run_state,
)


def write_scalars(logdir: Path, tags: Dict[str, float], points: int, every: int = 1000) -> Path:
    """``points`` steps of each tag (value + step-dependent drift) through tensorboardX."""
    writer = SummaryWriter(str(logdir))
    for index in range(1, points + 1):
        for tag, base in tags.items():
            writer.add_scalar(tag, base + 0.01 * index, index * every, walltime=1000.0 + index)
    writer.close()
    return logdir


def age_files(root: Path, seconds: float) -> None:
    """Make every file under ``root`` look last modified ``seconds`` ago."""
    then = time.time() - seconds
    for directory, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(directory, name), (then, then))


def harl_run(root: Path, num_env_steps: Optional[int] = 4_000_000, points: int = 30) -> Path:
    """HARL: results/<env>/<scenario>/<algo>/<exp>/seed-00001-<time>/{config.json, logs/}."""
    seed_dir = root / "results" / "pettingzoo_mpe" / "spread" / "happo" / "exp" / "seed-00001-t"
    logs = seed_dir / "logs"
    writer = SummaryWriter(str(logs))
    for index in range(1, points + 1):
        step = index * 40_000
        writer.add_scalars("train_episode_rewards", {"aver_rewards": -10.0 + index}, step)
        writer.add_scalar("agent0/dist_entropy", 1.5 - 0.01 * index, step)
    writer.close()
    if num_env_steps is not None:
        config = {
            "main_args": {"algo": "happo", "env": "pettingzoo_mpe", "exp_name": "exp"},
            "algo_args": {
                "seed": {"seed": 1},
                "train": {"n_rollout_threads": 20, "num_env_steps": num_env_steps},
            },
            "env_args": {"scenario": "simple_spread_v2"},
        }
        (seed_dir / "config.json").write_text(json.dumps(config, indent=4))
    return logs


# -- planned length ----------------------------------------------------------------------------


def test_harl_config_json_beside_logs(tmp_path: Path) -> None:
    logs = harl_run(tmp_path, 4_000_000)
    found = planned_length(str(logs))
    assert found.planned_steps == 4_000_000
    assert found.source == "num_env_steps in ../config.json"
    (record,) = analyze(str(tmp_path))
    assert record.name == "results/pettingzoo_mpe/spread/happo/exp/seed-00001-t/logs"
    assert (record.planned_steps, record.planned_source) == (4_000_000, found.source)
    assert record.context().planned_steps == 4_000_000


def test_rl_zoo_config_yml_beside_ppo_folder(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # rl-zoo writes through torch's SummaryWriter
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    params = tmp_path / "logs" / "ppo" / "CartPole-v1_1" / "CartPole-v1"
    writer = TorchWriter(str(params / "PPO_1"))
    for step in range(2048, 100_001, 2048):
        writer.add_scalar("rollout/ep_rew_mean", step / 1000.0, step)
    writer.close()
    # rl-zoo dumps an OrderedDict of its hyperparameters and the command-line args
    (params / "config.yml").write_text(
        "!!python/object/apply:collections.OrderedDict\n"
        "- - - batch_size\n    - 256\n"
        "  - - n_envs\n    - 8\n"
        "  - - n_timesteps\n    - 100000.0\n"
        "  - - policy\n    - MlpPolicy\n"
    )
    (params / "args.yml").write_text(
        "!!python/object/apply:collections.OrderedDict\n- - - algo\n    - ppo\n"
        "  - - n_timesteps\n    - -1\n"
    )
    (record,) = analyze(str(tmp_path / "logs"))
    assert record.planned_steps == 100_000
    assert record.planned_source == "n_timesteps in ../config.yml"


def test_rsl_rl_max_iterations_and_the_x_axis(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "rsl_rl" / "anymal" / "2024-01-01_12-00-00"
    (run / "params").mkdir(parents=True)
    (run / "params" / "agent.yaml").write_text(
        "seed: 42\nnum_steps_per_env: 24\nmax_iterations: 1500\nempirical_normalization: false\n"
        "policy:\n  class_name: ActorCritic\n  init_noise_std: 1.0\n"
    )
    write_scalars(run, {"Train/mean_reward": 1.0}, 50, every=10)  # iterations 10..500
    found = reconcile(planned_length(str(run)), 500)
    assert (found.planned_steps, found.source) == (1500, "max_iterations in params/agent.yaml")
    # the same config read on a log whose x-axis is environment steps (24 per iteration)
    scaled = reconcile(planned_length(str(run)), 20_000)
    assert scaled.planned_steps == 1500 * 24
    assert "x 24 steps per iteration" in scaled.source
    # a resumed run overshoots any reading of the plan: unknown, with the reason
    resumed = reconcile(planned_length(str(run)), 100_000)
    assert resumed.planned_steps is None
    assert "already reach step 100000" in resumed.notes[-1]


def test_saved_args_in_other_shapes(tmp_path: Path) -> None:
    wandb = tmp_path / "wandb_args"
    wandb.mkdir()
    (wandb / "config.yaml").write_text(
        "wandb_version: 1\n\nalgorithm_name:\n  desc: null\n  value: mappo\n"
        "num_env_steps:\n  desc: null\n  value: 20000000\n"
    )
    assert planned_length(str(wandb)).planned_steps == 20_000_000

    namespace = tmp_path / "namespace"
    namespace.mkdir()
    (namespace / "args.txt").write_text(
        "Namespace(algorithm_name='mappo', env_name='MPE', num_env_steps=2000000, seed=1)\n"
    )
    found = planned_length(str(namespace))
    assert (found.planned_steps, found.source) == (2_000_000, "num_env_steps in args.txt")

    mlagents = tmp_path / "mlagents"
    mlagents.mkdir()
    (mlagents / "configuration.yaml").write_text(
        "default_settings: null\nbehaviors:\n  Striker:\n    trainer_type: poca\n"
        "    max_steps: 5000000\n  Goalie:\n    trainer_type: poca\n    max_steps: 3.0e7\n"
    )
    assert planned_length(str(mlagents)).planned_steps == 30_000_000

    sample_factory = tmp_path / "sf"
    sample_factory.mkdir()
    (sample_factory / "cfg.json").write_text(json.dumps({"train_for_env_steps": 1e10}))
    unlimited = planned_length(str(sample_factory))
    assert unlimited.planned_steps is None and "means no limit" in unlimited.notes[0]
    (sample_factory / "cfg.json").write_text(json.dumps({"train_for_env_steps": 5e8}))
    assert planned_length(str(sample_factory)).planned_steps == 500_000_000


def test_bad_files_give_a_reason_never_an_exception(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"algo_args": {"train": {"num_env_steps": 1000')
    found = planned_length(str(run))
    assert found.planned_steps is None
    assert len(found.notes) == 1 and "config.json: not valid JSON" in found.notes[0]

    (run / "config.json").write_bytes(b" " * (MAX_FILE_BYTES + 1))
    found = planned_length(str(run))
    assert found.planned_steps is None and "over the" in found.notes[0]

    (run / "config.json").write_text(json.dumps({"num_env_steps": "a lot", "seed": 3}))
    assert planned_length(str(run)) == planned_length(str(run))  # deterministic
    assert planned_length(str(run)).planned_steps is None

    assert planned_length(str(tmp_path / "missing")).planned_steps is None
    assert run_state(str(tmp_path / "missing"), [str(tmp_path / "missing" / "f")]).state == (
        "unknown"
    )


@pytest.mark.timeout(20)
def test_a_fifo_named_like_a_config_is_not_opened(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(str(run / "config.json"))  # opening it for reading would block forever
    found = planned_length(str(run))
    assert found.planned_steps is None
    assert any("config.json: a FIFO, not a regular file" in note for note in found.notes)


def test_a_plan_shorter_than_the_logs_is_dropped(tmp_path: Path) -> None:
    harl_run(tmp_path, num_env_steps=100_000, points=30)  # logs reach 1.2M steps
    (record,) = analyze(str(tmp_path))
    assert record.planned_steps is None
    assert "already reach step 1200000" in record.provenance.notes[-1]


def test_expected_steps_overrides_the_files(tmp_path: Path) -> None:
    harl_run(tmp_path, 4_000_000)
    (record,) = analyze(str(tmp_path), expected_steps=9_000_000)
    assert record.planned_steps == 9_000_000
    assert "--expected-steps" in record.planned_source
    config = Config.default()
    config.grace.expected_steps = 7_000_000
    (record,) = analyze(str(tmp_path), config)
    assert record.planned_steps == 7_000_000


def test_real_runs_without_configs_have_no_planned_length(realworld: Path) -> None:
    """None of the real cases kept its config: the length stays unknown, and nothing is noted."""
    for case in ("harl_happo_monopoly_healthy", "mappo_smac_8m_healthy", "rsl_rl_legged_gym_biped"):
        for record in analyze(str(realworld / case)):
            assert record.planned_steps is None, record.name
            assert record.provenance.notes == (), record.provenance.notes
    # on-policy MAPPO exports summary.json when training ends: finished, whatever the file ages
    (record,) = analyze(str(realworld / "mappo_smac_8m_healthy"))
    assert record.state == "finished" and "summary.json" in record.state_reason


# -- state -------------------------------------------------------------------------------------


def test_old_files_are_finished_fresh_files_live(tmp_path: Path) -> None:
    logs = harl_run(tmp_path, None)
    (record,) = analyze(str(tmp_path))
    assert record.state == "live" and "changed" in record.state_reason
    age_files(tmp_path, FINISHED_AFTER_SECONDS + 60)
    (record,) = analyze(str(tmp_path))
    assert record.state == "finished"
    assert "no event file changed for 31 min" in record.state_reason
    assert record.context().finished
    # forced either way
    (record,) = analyze(str(tmp_path), assume="live")
    assert (record.state, record.state_reason) == ("live", "forced by --assume live")
    age_files(tmp_path, 0)
    (record,) = analyze(str(tmp_path), assume="finished")
    assert record.state == "finished"
    # summary.json (tensorboardX export at the end of training) means finished at once
    (logs / "summary.json").write_text("{}")
    (record,) = analyze(str(tmp_path))
    assert record.state == "finished" and "summary.json" in record.state_reason


def test_a_run_logging_rarely_gets_a_longer_threshold(tmp_path: Path) -> None:
    events = write_scalars(tmp_path / "run", {"reward": 1.0}, 5)
    (event_file,) = [p for p in events.iterdir()]
    created = float(event_file.name.split(".")[3])  # events.out.tfevents.<created>.<host>
    # a point every 2 minutes: the file was last written 4 gaps after its creation
    last_write = created + 4 * 120.0
    os.utime(event_file, (last_write, last_write))
    (record,) = analyze(str(tmp_path), now=last_write + 40 * 60)
    assert record.typical_gap() == pytest.approx(120.0)
    assert record.state == "live"  # 40 minutes of silence is 20 gaps: not yet the end
    assert "finished only after 60 min" in record.state_reason
    (record,) = analyze(str(tmp_path), now=last_write + 61 * 60)
    assert record.state == "finished"
    # without a gap the threshold is 30 minutes; with a huge one it stops at 2 hours
    assert run_state(str(events), [str(event_file)], now=last_write + 2400).state == "finished"
    assert finished_threshold(None) == FINISHED_AFTER_SECONDS
    assert finished_threshold(86400.0) == 2 * 3600.0
    # a run written two years ago and copied today: no believable gap, 30 minutes it is
    os.utime(event_file, (created + 2 * 365 * 86400.0,) * 2)
    (record,) = analyze(str(tmp_path), now=created + 2 * 365 * 86400.0 + 1900)
    assert record.typical_gap() is None and record.state == "finished"


def test_report_says_what_it_assumed(tmp_path: Path, capsys) -> None:
    harl_run(tmp_path, 4_000_000)
    age_files(tmp_path, 7200)
    json_path = tmp_path / "report.json"
    assert main(["report", str(tmp_path), "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    assert "Planned Length: 4,000,000 steps (num_env_steps in ../config.json)" in out
    assert "Judged As: finished (no event file changed for 2.0 h" in out
    report = json.loads(json_path.read_text())
    assert report["planned_steps"] == 4_000_000
    assert report["planned_source"] == "num_env_steps in ../config.json"
    assert report["state"] == "finished" and report["state_reason"].startswith("no event file")
    assert main(["report", str(tmp_path), "--assume", "live", "--json", str(json_path)]) == 0
    assert json.loads(json_path.read_text())["state"] == "live"
    assert "Judged As: live (forced by --assume live)" in capsys.readouterr().out
