"""The reader on real third-party event files (/work/shared/realworld), checked against TensorBoard.

For every directory that holds event files, the (tag, step, value, wall_time) points tblive reads
must equal what tensorboard's ``EventAccumulator`` reports as scalars plus scalars-plugin rank-0
tensors (size_guidance 0 = keep all), after applying tblive's one documented, deliberate
difference: per tag, a step that is not after the previous one discards the points at steps >= it
(so duplicates and resumes keep the last value).  ``EventAccumulator`` keeps duplicates and purges
only on out-of-order steps in files without ``file_version``.

The directories where that difference changes the result are listed in ``REWOUND_DIRECTORIES``;
the test checks that list is exactly right, so a change in either reader shows up here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from conftest import REALWORLD

from tblive.read.runs import is_event_file, load_points, read_directory_points

Point = Tuple[int, float, float]

#: Directories (relative to the real-world root) where EventAccumulator keeps points that the
#: per-tag rewind rule replaces: duplicates from restarts writing into one folder, re-evaluations
#: of the same step, resumed runs, and rsl_rl's wall-seconds-as-step ``Train/*/time`` tags.
REWOUND_DIRECTORIES = {
    "lightning_naf_dqn/lightning_logs/version_0",
    "rmappo_smac_3s5z_vs_3s6z_plateau/run5/logs/eval_win_rate/eval_win_rate",
    "rmappo_smac_3s5z_vs_3s6z_plateau/run5/logs/eval_average_episode_rewards/eval_average_episode_rewards",
    "rsl_rl_legged_gym_biped/htdw_4438_standard/Feb11_10-00-28_",
    "sb3_ppo_carla_restarts_same_dir/real_carla_training",
    "tf2_objdet_tensor_scalars_images/my_ssd_mobnet/eval",
    "torch_fashion_mnist_prcurves_restarts/fashion_mnist_experiment_1",
}


def event_directories() -> List[str]:
    if not REALWORLD.is_dir():
        return []
    found = []
    for directory, subdirs, files in os.walk(REALWORLD):
        subdirs.sort()
        if any(is_event_file(name) for name in files):
            found.append(Path(directory).relative_to(REALWORLD).as_posix())
    return sorted(found)


def cases() -> List[str]:
    if not REALWORLD.is_dir():
        return []
    return sorted(p.name for p in REALWORLD.iterdir() if p.is_dir())


DIRECTORIES = event_directories()
CASES = cases()


def tensorboard_points(directory: Path) -> Dict[str, List[Point]]:
    """What EventAccumulator reports: scalars, plus rank-0 tensors of the scalars plugin."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    guidance = {
        "scalars": 0,
        "tensors": 0,
        "histograms": 1,
        "images": 1,
        "audio": 1,
        "compressedHistograms": 1,
    }
    accumulator = EventAccumulator(str(directory), size_guidance=guidance)
    accumulator.Reload()
    points: Dict[str, List[Point]] = {}
    for tag in accumulator.Tags()["scalars"]:
        points.setdefault(tag, []).extend(
            (e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)
        )
    for tag in accumulator.Tags()["tensors"]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        for event in accumulator.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size == 1:
                points.setdefault(tag, []).append(
                    (event.step, float(array.reshape(-1)[0]), event.wall_time)
                )
    return points


def rewound(points: List[Point]) -> List[Point]:
    """tblive's rule applied to a series: a step not after the last discards steps >= it."""
    kept: List[Point] = []
    for point in points:
        while kept and kept[-1][0] >= point[0]:
            kept.pop()
        kept.append(point)
    return kept


def as_comparable(points: Dict[str, List[Point]]):
    return {
        tag: [(int(s), repr(float(v)), float(w)) for s, v, w in series]
        for tag, series in points.items()
    }


@pytest.mark.parametrize(
    "relative", DIRECTORIES or [pytest.param("", marks=pytest.mark.skip("no real-world files"))]
)
def test_directory_matches_event_accumulator(realworld: Path, relative: str) -> None:
    directory = realworld / relative
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    expected_raw = tensorboard_points(directory)
    expected = {tag: rewound(series) for tag, series in expected_raw.items()}
    sinks, run = read_directory_points(str(directory))
    got = {}
    for tag, sink in sinks.items():
        steps, values, walls = sink.arrays()
        got[tag] = list(zip(steps.tolist(), values.tolist(), walls.tolist()))
    assert as_comparable(got) == as_comparable(expected)
    assert run.issues == []
    difference_matters = any(len(expected[t]) != len(expected_raw[t]) for t in expected_raw)
    assert difference_matters == (relative in REWOUND_DIRECTORIES), (
        "the rewind rule %s this directory's points"
        % ("changes" if difference_matters else "does not change")
    )


def test_rewound_directories_exist(realworld: Path) -> None:
    for relative in REWOUND_DIRECTORIES:
        assert (realworld / relative).is_dir(), relative


@pytest.mark.parametrize(
    "case", CASES or [pytest.param("", marks=pytest.mark.skip("no real-world files"))]
)
def test_every_case_loads_without_error(realworld: Path, case: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tblive"):
        runs = load_points(str(realworld / case))
    assert runs, case
    total = 0
    for series in runs.values():
        for sink in series.values():
            steps, values, walls = sink.arrays()
            assert steps.shape == values.shape == walls.shape
            total += steps.shape[0]
    assert total > 0
    assert not [r for r in caplog.records if r.name.startswith("tblive")], caplog.text


def test_mapush_nested_layout_is_one_run_of_plain_tags(realworld: Path) -> None:
    """OpenRL's add_scalars(k, {k: v}) writes logs/<k>/<k>/: one run, one series named k per tag."""
    runs = load_points(str(realworld / "mapush_openrl_mappo_cuboid"))
    assert list(runs) == ["logs"]
    series = runs["logs"]
    folders = sorted(
        p.name for p in (realworld / "mapush_openrl_mappo_cuboid" / "logs").iterdir() if p.is_dir()
    )
    assert sorted(series) == folders and len(folders) == 14
    for name, sink in series.items():
        steps, _, _ = sink.arrays()
        assert steps.shape[0] == 199, name  # MANIFEST: 199 points, the last one never flushed
        assert np.all(np.diff(steps) > 0) and steps[0] == 100_000, name
