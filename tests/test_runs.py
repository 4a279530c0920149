"""Tests of tblive.read.runs: layout of log directories, restart rules, live polling, summary.json."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_series_equal,
    event_bytes,
    f32,
    file_version_event,
    rank0,
    record_offsets,
    scalar_event,
    series_points,
    session_start_event,
    tensor_event,
    write_event_file,
)
from tensorboard.compat.proto import types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tblive.read.runs import LogDir, discover_runs, load_points, read_directory_points
from tblive.series.feed import SeriesPoints
from tblive.series.stats import MetricStats


def points_of(path: Path):
    return {run: series_points(sinks) for run, sinks in load_points(str(path)).items()}


def directory_points(path: Path):
    got, run = read_directory_points(str(path))
    return series_points(got), run


# -- restarts ------------------------------------------------------------------------------------


def test_files_of_one_directory_are_read_in_name_order(tmp_path: Path) -> None:
    # written out of order on purpose: name order decides, not creation order
    write_event_file(
        tmp_path / "events.out.tfevents.0000000002.h",
        [scalar_event("a", s, s, s) for s in range(10, 20)],
    )
    write_event_file(
        tmp_path / "events.out.tfevents.0000000001.h",
        [scalar_event("a", s, s, s) for s in range(10)],
    )
    points, run = directory_points(tmp_path)
    assert points == {"a": [(s, float(s), float(s)) for s in range(20)]}
    assert run.issues == []


def test_session_start_discards_later_steps_of_every_series(tmp_path: Path) -> None:
    first = [file_version_event()] + [
        e for s in range(10) for e in (scalar_event("a", s, 1.0, s), scalar_event("b", s, 2.0, s))
    ]
    second = [file_version_event(), session_start_event(5, 100.0)]
    second += [scalar_event("a", s, 3.0, 100.0 + s) for s in range(5, 8)]
    write_event_file(tmp_path / "events.out.tfevents.1", first)
    write_event_file(tmp_path / "events.out.tfevents.2", second)
    points, _ = directory_points(tmp_path)
    assert points["a"] == [(s, 1.0, float(s)) for s in range(5)] + [
        (s, 3.0, 100.0 + s) for s in range(5, 8)
    ]
    assert points["b"] == [(s, 2.0, float(s)) for s in range(5)]


def test_resume_from_checkpoint_rewinds_only_that_series(tmp_path: Path) -> None:
    events = [scalar_event("a", s, 1.0, s) for s in range(0, 100, 10)]
    events += [scalar_event("b", s, 2.0, s) for s in range(0, 100, 10)]
    events += [scalar_event("a", s, 5.0, 200.0 + s) for s in range(50, 130, 10)]  # resumed at 50
    write_event_file(tmp_path / "events.out.tfevents.1", events)
    points, _ = directory_points(tmp_path)
    assert points["a"] == [(s, 1.0, float(s)) for s in range(0, 50, 10)] + [
        (s, 5.0, 200.0 + s) for s in range(50, 130, 10)
    ]
    assert points["b"] == [(s, 2.0, float(s)) for s in range(0, 100, 10)]


def test_a_repeated_step_is_one_more_measurement(tmp_path: Path) -> None:
    """CleanRL's returns, rmappo's two evaluations: equal steps are kept, across files too."""
    events = [
        scalar_event("a", 1, 1.0, 1.0),
        scalar_event("a", 2, 2.0, 2.0),
        scalar_event("a", 2, 9.0, 3.0),
    ]
    write_event_file(tmp_path / "events.out.tfevents.1", events)
    write_event_file(
        tmp_path / "events.out.tfevents.2",
        [scalar_event("a", 2, 7.0, 4.0), scalar_event("a", 3, 3.0, 5.0)],
    )
    points, run = directory_points(tmp_path)
    assert points["a"] == [
        (1, 1.0, 1.0),
        (2, 2.0, 2.0),
        (2, 9.0, 3.0),
        (2, 7.0, 4.0),
        (3, 3.0, 5.0),
    ]
    assert run.restarts == {"rewinds": 0, "points_discarded": 0}


def test_a_step_below_the_last_discards_and_is_counted(tmp_path: Path) -> None:
    events = [scalar_event("a", s, 1.0, float(s)) for s in (0, 1, 2, 2, 3)]
    events += [scalar_event("a", 2, 5.0, 10.0), scalar_event("a", 4, 6.0, 11.0)]
    write_event_file(tmp_path / "events.out.tfevents.1", events)
    points, run = directory_points(tmp_path)
    assert points["a"] == [(0, 1.0, 0.0), (1, 1.0, 1.0), (2, 5.0, 10.0), (4, 6.0, 11.0)]
    assert run.restarts == {"rewinds": 1, "points_discarded": 3}


def test_restart_rules_with_statistics_sinks(tmp_path: Path) -> None:
    events = [scalar_event("a", s, float(s), 1.0) for s in range(100)]
    events += [scalar_event("a", s, -1.0, 2.0) for s in range(50, 60)]
    write_event_file(tmp_path / "run" / "events.out.tfevents.1", events)
    logdir = LogDir(str(tmp_path), lambda name: MetricStats())
    logdir.rescan()
    logdir.poll()
    (run,) = logdir.runs.values()
    stats = run.sinks["a"]
    assert stats.count == 60 and stats.last_step == 59
    assert run.feeds["a"].last_step == 59 and run.total_steps == 59


# -- live writers and cuts ------------------------------------------------------------------------


def mixed_file_bytes() -> bytes:
    events = [file_version_event()]
    for s in range(12):
        events.append(scalar_event("loss", s, 1.0 / (s + 1), 10.0 + s))
        if s % 3 == 0:
            events.append(
                tensor_event(
                    "acc", s, 10.0 + s, rank0(types_pb2.DT_FLOAT, float_val=[s / 12]), s == 0
                )
            )
    events.append(session_start_event(8, 30.0))
    events += [scalar_event("loss", s, 2.0, 31.0 + s) for s in range(8, 11)]
    events.append(scalar_event("loss", 10, 3.0, 50.0))  # a repeated step: kept as well
    return event_bytes(events)


def test_run_cut_at_every_byte_offset_equals_one_full_read(memory_tmp_path: Path) -> None:
    tmp_path = memory_tmp_path
    data = mixed_file_bytes()
    full_dir = tmp_path / "full"
    full_dir.mkdir()
    (full_dir / "events.out.tfevents.1").write_bytes(data)
    expected, _ = directory_points(full_dir)
    assert expected["loss"][-1] == (10, 3.0, 50.0) and len(expected["acc"]) == 3
    path = tmp_path / "cut" / "events.out.tfevents.1"
    path.parent.mkdir()
    boundaries = {offset for offset, _ in record_offsets(data)}
    for cut in range(len(data) + 1):
        path.write_bytes(data[:cut])
        got, run = read_directory_points(str(path.parent))
        first_points = run.points
        with open(path, "ab") as handle:
            handle.write(data[cut:])
        run.poll()
        assert_series_equal(series_points(run.sinks), expected, cut)
        assert run.issues == [], cut
        if cut in boundaries:
            assert first_points <= run.points


def test_live_tensorboardx_writer_while_polling(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path), max_queue=7, flush_secs=3600)
    expected = {"a": [], "b/c": []}
    done = threading.Event()

    def train() -> None:
        for step in range(3000):
            for tag in expected:
                value = np.sin(step + len(tag))
                writer.add_scalar(tag, value, step, walltime=1e9 + step)
                expected[tag].append((step, f32(value), 1e9 + step))
            if step % 37 == 0:
                writer.flush()
        writer.close()
        done.set()

    logdir = LogDir(str(tmp_path), lambda name: SeriesPoints())
    thread = threading.Thread(target=train)
    thread.start()
    polls = 0
    while not done.is_set():
        logdir.rescan()
        logdir.poll()
        polls += 1
    thread.join()
    logdir.rescan()
    logdir.poll()
    (run,) = logdir.runs.values()
    assert polls > 1
    assert_series_equal(series_points(run.sinks), expected)
    assert run.issues == [] and run.points == 6000


# -- odd files ------------------------------------------------------------------------------------


def test_odd_files_load_without_error(tmp_path: Path, caplog) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "events.out.tfevents.1.h").write_bytes(b"")
    write_event_file(tmp_path / "header_only" / "events.out.tfevents.1.h", [file_version_event()])
    # CatBoost: no file_version record, no timestamp in the name
    write_event_file(
        tmp_path / "catboost" / "events.out.tfevents",
        [scalar_event("Logloss", s, 0.5, 1.0) for s in range(3)],
    )
    keras = tmp_path / "keras_profile"
    write_event_file(
        keras / "events.out.tfevents.1.h.1.v2",
        [file_version_event(), scalar_event("x", 0, 1.0, 1.0)],
    )
    write_event_file(keras / "events.out.tfevents.2.h.profile-empty", [file_version_event()])
    data = bytearray(event_bytes([scalar_event("y", s, float(s), 1.0) for s in range(5)]))
    data[record_offsets(bytes(data))[3][0] + 2] ^= 0xFF  # a bad length header
    (tmp_path / "bad_header").mkdir()
    (tmp_path / "bad_header" / "events.out.tfevents.1").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        points = points_of(tmp_path)
    assert points["catboost"] == {"Logloss": [(s, 0.5, 1.0) for s in range(3)]}
    assert points["keras_profile"] == {"x": [(0, 1.0, 1.0)]}
    assert points["bad_header"] == {"y": [(s, float(s), 1.0) for s in range(3)]}
    assert points["empty"] == {} and points["header_only"] == {}
    assert "bad_header" in caplog.text and "Traceback" not in caplog.text


# -- layout ---------------------------------------------------------------------------------------


def test_tensorboardx_nested_add_scalars_harl_style(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    logs = tmp_path / "run1" / "logs"
    writer = SummaryWriter(str(logs), flush_secs=3600)
    for step in range(0, 500, 100):
        writer.add_scalars(
            "agent0/dist_entropy", {"agent0/dist_entropy": step / 10}, step, walltime=1.0 + step
        )
        writer.add_scalars(
            "train_episode_rewards", {"aver_rewards": -step, "max": step}, step, walltime=2.0 + step
        )
        writer.add_scalar("plain", 1.5, step, walltime=3.0 + step)
    writer.close()
    points = points_of(tmp_path)
    assert list(points) == ["run1/logs"]
    assert points["run1/logs"] == {
        "agent0/dist_entropy": [(s, f32(s / 10), 1.0 + s) for s in range(0, 500, 100)],
        "train_episode_rewards/aver_rewards": [(s, float(-s), 2.0 + s) for s in range(0, 500, 100)],
        "train_episode_rewards/max": [(s, float(s), 2.0 + s) for s in range(0, 500, 100)],
        "plain": [(s, 1.5, 3.0 + s) for s in range(0, 500, 100)],
    }


def test_torch_add_scalars_folders(tmp_path: Path) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # type: ignore[import-not-found]
    except ImportError:
        SummaryWriter = None
    run = tmp_path / "exp"
    if SummaryWriter is not None:  # pragma: no cover - torch is optional
        writer = SummaryWriter(str(run))
        for step in range(3):
            writer.add_scalars(
                "Loss/all", {"train": step, "val": -step}, step, walltime=10.0 + step
            )
        writer.close()
    else:  # the same layout torch writes: <run>/<main_tag with / as _>_<key>/, tag main_tag
        for key, sign in (("train", 1), ("val", -1)):
            writer = EventFileWriter(str(run / ("Loss_all_" + key)))
            for step in range(3):
                writer.add_event(scalar_event("Loss/all", step, sign * step, 10.0 + step))
            writer.close()
        EventFileWriter(str(run)).close()
    points = points_of(tmp_path)
    assert points == {
        "exp": {
            "Loss/all/train": [(s, float(s), 10.0 + s) for s in range(3)],
            "Loss/all/val": [(s, float(-s), 10.0 + s) for s in range(3)],
        }
    }


def test_sibling_seeds_are_runs_and_keras_splits_are_one_run(tmp_path: Path) -> None:
    for seed in (1, 2, 3):
        write_event_file(
            tmp_path / "ppo" / ("CartPole_%d" % seed) / "events.out.tfevents.1",
            [scalar_event("r", 0, float(seed), 1.0)],
        )
    for split, value in (("train", 1.0), ("validation", 2.0)):
        write_event_file(
            tmp_path / "keras" / split / "events.out.tfevents.1.v2",
            [scalar_event("epoch_loss", 0, value, 1.0)],
        )
    points = points_of(tmp_path)
    assert points == {
        "keras": {"train/epoch_loss": [(0, 1.0, 1.0)], "validation/epoch_loss": [(0, 2.0, 1.0)]},
        "ppo/CartPole_1": {"r": [(0, 1.0, 1.0)]},
        "ppo/CartPole_2": {"r": [(0, 2.0, 1.0)]},
        "ppo/CartPole_3": {"r": [(0, 3.0, 1.0)]},
    }
    assert [layout.name for layout in discover_runs(str(tmp_path / "keras"))] == ["keras"]


def test_summary_json_with_foreign_paths_merges_without_duplicates(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    logs = tmp_path / "run7" / "logs"
    writer = SummaryWriter(str(logs), flush_secs=3600)
    for step in range(0, 400, 100):
        writer.add_scalars(
            "agent0/value_loss", {"agent0/value_loss": step * 0.5}, step, walltime=1.0 + step
        )
        writer.add_scalars("rewards", {"aver": float(step)}, step, walltime=2.0 + step)
    writer.export_scalars_to_json(str(logs / "summary.json"))
    writer.close()
    content = json.loads((logs / "summary.json").read_text())
    foreign = {}
    for key, rows in content.items():
        key = key.replace(str(tmp_path), "/home/someone/onpolicy/results")
        foreign[key] = rows
    # the last point never reached the event files (the writer was not closed)
    key = next(k for k in foreign if k.endswith("rewards/aver"))
    foreign[key].append([999.0, 400, 123.0])
    key = next(k for k in foreign if k.endswith("agent0/value_loss/agent0/value_loss"))
    foreign[key].append([998.0, 400, 7.0])
    assert all(k.startswith("/home/someone/") for k in foreign)
    (logs / "summary.json").write_text(json.dumps(foreign))
    logdir = LogDir(str(tmp_path), lambda name: SeriesPoints())
    logdir.rescan()
    logdir.poll()
    logdir.poll()  # a second poll must not merge again
    (run,) = logdir.runs.values()
    assert series_points(run.sinks) == {
        "agent0/value_loss": [(s, s * 0.5, 1.0 + s) for s in range(0, 400, 100)]
        + [(400, 7.0, 998.0)],
        "rewards/aver": [(s, float(s), 2.0 + s) for s in range(0, 400, 100)]
        + [(400, 123.0, 999.0)],
    }
    assert run.summary_points == 2


def test_new_nested_folder_appears_mid_run(tmp_path: Path) -> None:
    root = tmp_path / "run"
    write_event_file(
        root / "events.out.tfevents.1", [file_version_event(), scalar_event("a", 0, 1.0, 1.0)]
    )
    logdir = LogDir(str(tmp_path), lambda name: SeriesPoints())
    logdir.rescan()
    assert logdir.poll() == 1
    write_event_file(
        root / "m" / "k" / "events.out.tfevents.2",
        [file_version_event(), scalar_event("m", 1, 2.0, 2.0)],
    )
    with open(root / "events.out.tfevents.1", "ab") as handle:
        handle.write(event_bytes([scalar_event("a", 1, 3.0, 3.0)]))
    added, gone = logdir.rescan()
    assert added == [] and gone == []
    assert logdir.poll() == 2
    (run,) = logdir.runs.values()
    assert series_points(run.sinks) == {"a": [(0, 1.0, 1.0), (1, 3.0, 3.0)], "m/k": [(1, 2.0, 2.0)]}


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"/x/y/z": [[1, 2]]}'])
def test_bad_summary_json_is_ignored(tmp_path: Path, content: str) -> None:
    write_event_file(tmp_path / "r" / "events.out.tfevents.1", [scalar_event("a", 0, 1.0, 1.0)])
    (tmp_path / "r" / "summary.json").write_text(content)
    assert points_of(tmp_path) == {"r": {"a": [(0, 1.0, 1.0)]}}


@pytest.mark.parametrize(
    "relpath, tag, expected",
    [
        ("", "loss", "loss"),
        # tensorboardX / HARL: <main_tag>/<key>
        ("agent0/dist_entropy/agent0/dist_entropy", "agent0/dist_entropy", "agent0/dist_entropy"),
        ("dist_entropy/dist_entropy", "dist_entropy", "dist_entropy"),
        (
            "train_episode_rewards/aver_rewards",
            "train_episode_rewards",
            "train_episode_rewards/aver_rewards",
        ),
        # torch: <main_tag with / as _>_<key>, the key itself may hold a /
        ("loss_train", "loss", "loss/train"),
        ("agent0_ratio_agent0/ratio", "agent0/ratio", "agent0/ratio"),
        ("losses_value_critic", "losses/value", "losses/value/critic"),
        # any other nested writer: prefixed with its path
        ("eval", "reward", "eval/reward"),
    ],
)
def test_series_names_of_nested_writers(relpath: str, tag: str, expected: str) -> None:
    from tblive.read.runs import series_name

    assert series_name(relpath, tag) == expected
