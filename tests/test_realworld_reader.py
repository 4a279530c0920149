"""The reader on real third-party event files (../shared/realworld), against an oracle built on
tensorboard's own event file loader.

The oracle decodes every event file with TensorBoard (``event_file_loader``: its record reader
and CRC checks, its protobuf classes; ``LegacyEventFileLoader``, the part of ``EventFileLoader``
before the compat layer that only rewrites ``simple_value`` as a scalar tensor, which would
double the oracle's time), reads ``simple_value`` and rank-0 tensors of the ``scalars`` plugin
with tensorboard's ``make_ndarray``, and applies the restart rule written out plainly on lists,
per run and series:

* event files of a directory are read in name order;
* a ``SessionLog.START`` at step s drops the points at steps >= s of every series that
  directory wrote so far;
* a point whose step is strictly below its series' last step drops that series' points at
  steps >= its step first; a point at the same step as the last one is one more measurement and
  is kept (CleanRL returns, rmappo's two evaluations per step, Lightning's ``epoch``, rsl_rl's
  whole-second ``Train/*/time`` steps).

Only the layout (which directories form a run, which series name a nested ``add_scalars``
folder gives, which series a ``summary.json`` key belongs to) is taken from tblive; those rules
are tested in test_runs.py.  Every point of every series of every case must equal the oracle's,
value and wall time included.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
from conftest import REALWORLD

from tblive.read.runs import LogDir, RunLayout, discover_runs, series_name
from tblive.series.feed import SeriesPoints

Point = Tuple[int, float, float]  # (step, value, wall_time)
Series = Dict[str, List[Point]]


def cases() -> List[str]:
    if not REALWORLD.is_dir():
        return []
    return sorted(p.name for p in REALWORLD.iterdir() if p.is_dir())


CASES = cases()
NO_CASES = [pytest.param("", marks=pytest.mark.skip("no real-world files"))]


# -- the oracle --------------------------------------------------------------------------------


def event_files(directory: str) -> List[str]:
    from tensorboard.backend.event_processing import io_wrapper

    paths = [os.path.join(directory, name) for name in os.listdir(directory)]
    return sorted(p for p in paths if io_wrapper.IsTensorFlowEventsFile(p) and os.path.isfile(p))


def scalar_of(value) -> Optional[float]:
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(value.tensor)
    if array.size != 1 or array.dtype.kind not in "fiub":
        return None
    return float(array.reshape(-1)[0])


def add_point(series: List[Point], point: Point) -> None:
    if series and point[0] < series[-1][0]:
        while series and series[-1][0] >= point[0]:
            series.pop()
    series.append(point)


@functools.lru_cache(maxsize=None)
def oracle_case(case: str) -> Dict[str, Series]:
    """The oracle's points of every run of a case (computed once per test session)."""
    return {layout.name: oracle_run(layout) for layout in discover_runs(str(REALWORLD / case))}


def oracle_run(layout: RunLayout) -> Series:
    """Every point the restart rule keeps, per series of one run, decoded by TensorBoard."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.compat.proto import event_pb2

    result: Series = {}
    for source in layout.sources:
        plugin_of_tag: Dict[str, str] = {}
        written: List[str] = []
        for path in event_files(source.path):
            for event in LegacyEventFileLoader(path).Load():
                if (
                    event.HasField("session_log")
                    and event.session_log.status == event_pb2.SessionLog.START
                ):
                    for name in written:
                        result[name] = [p for p in result[name] if p[0] < event.step]
                    continue
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name:
                        plugin_of_tag[value.tag] = value.metadata.plugin_data.plugin_name
                    kind = value.WhichOneof("value")
                    if kind == "simple_value":
                        scalar: Optional[float] = float(value.simple_value)
                    elif kind == "tensor" and plugin_of_tag.get(value.tag) == "scalars":
                        scalar = scalar_of(value)
                    else:
                        continue
                    if scalar is None:
                        continue
                    name = series_name(source.relpath, value.tag, source.prefix)
                    if name not in result:
                        result[name] = []
                    if name not in written:
                        written.append(name)
                    add_point(result[name], (event.step, scalar, event.wall_time))
    return result


def merge_summary(kept: List[Point], rows: List[List[float]]) -> List[Point]:
    """summary.json's rule on lists: append what is after the last step; rebuild from the file
    when it holds more points up to that step than the series kept."""
    table = sorted(((int(s), float(v), float(w)) for w, s, v in rows), key=lambda p: p[0])
    if not kept:
        return table
    last = kept[-1][0]
    upto = sum(1 for p in table if p[0] <= last)
    if upto > len(kept):
        first = table[0][0]
        return [p for p in kept if p[0] < first] + table
    return kept + table[upto:]


# -- tblive ------------------------------------------------------------------------------------


def tblive_runs(case: Path, with_summary: bool):
    logdir = LogDir(str(case), lambda name: SeriesPoints(), read_summary_json=with_summary)
    logdir.rescan()
    logdir.poll()
    return logdir.runs


def points_of(run) -> Series:
    got: Series = {}
    for name, sink in run.sinks.items():
        steps, values, walls = sink.arrays()
        got[name] = list(zip(steps.tolist(), values.tolist(), walls.tolist()))
    return got


def comparable(series: Series):
    # repr: NaN equals NaN, and -0.0 differs from 0.0
    return {name: [(s, repr(v), w) for s, v, w in points] for name, points in series.items()}


@pytest.mark.parametrize("case", CASES or NO_CASES)
def test_every_point_equals_the_event_file_loader_oracle(realworld: Path, case: str) -> None:
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    runs = tblive_runs(realworld / case, with_summary=False)
    oracle = oracle_case(case)
    assert sorted(runs) == sorted(oracle) and runs, case
    for name, run in runs.items():
        expected = {k: v for k, v in oracle[name].items() if v}
        got = {k: v for k, v in points_of(run).items() if v}
        assert sorted(got) == sorted(expected), name
        for series in expected:
            assert comparable({series: got[series]}) == comparable({series: expected[series]}), (
                name,
                series,
                len(got[series]),
                len(expected[series]),
            )
        assert [i for i in run.issues if i.fatal] == [], name


@pytest.mark.parametrize(
    "case", [c for c in CASES if list((REALWORLD / c).rglob("summary.json"))] or NO_CASES
)
def test_summary_json_adds_exactly_what_the_rule_says(realworld: Path, case: str) -> None:
    without = tblive_runs(realworld / case, with_summary=False)
    with_summary = tblive_runs(realworld / case, with_summary=True)
    merged_any = False
    for name, run in with_summary.items():
        expected = points_of(without[name])
        path = Path(run.path) / "summary.json"
        if path.is_file():
            for key, rows in json.loads(path.read_text()).items():
                series = run._summary_series(key)
                assert series is not None, key
                expected[series] = merge_summary(expected.get(series, []), rows)
                merged_any = True
        assert comparable(points_of(run)) == comparable(expected), name
        assert run.issues == [], name
    assert merged_any


@pytest.mark.parametrize(
    "case, tag",
    [
        ("lightning_naf_dqn", "epoch"),
        ("rsl_rl_legged_gym_biped", "Train/mean_reward/time"),
        ("rmappo_smac_3s5z_vs_3s6z_plateau", "eval_win_rate"),
    ],
)
def test_repeated_steps_of_real_writers_are_all_kept(realworld: Path, case: str, tag: str) -> None:
    """The oracle test covers these; this one shows they really hold repeated steps."""
    runs = tblive_runs(realworld / case, with_summary=False)
    (run,) = runs.values()
    steps, _, _ = run.sinks[tag].arrays()
    (expected_run,) = oracle_case(case).values()
    expected = expected_run[tag]
    assert steps.shape[0] == len(expected)
    assert np.any(np.diff(steps) == 0), "no repeated step: the case does not test the rule"
    assert np.all(np.diff(steps) >= 0)
    assert run.restarts["points_discarded"] == 0 or tag != "epoch"


@pytest.mark.parametrize("case", CASES or NO_CASES)
def test_every_case_loads_without_error(realworld: Path, case: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tblive"):
        runs = tblive_runs(realworld / case, with_summary=True)
    assert runs, case
    total = sum(len(sink) for run in runs.values() for sink in run.sinks.values())
    assert total > 0
    assert not [r for r in caplog.records if r.name.startswith("tblive")], caplog.text


def test_mapush_nested_layout_is_one_run_of_plain_tags(realworld: Path) -> None:
    """OpenRL's add_scalars(k, {k: v}) writes logs/<k>/<k>/: one run, one series named k per tag."""
    runs = tblive_runs(realworld / "mapush_openrl_mappo_cuboid", with_summary=True)
    (run,) = runs.values()  # one run, named by the run-naming rule
    series = run.sinks
    folders = sorted(
        p.name for p in (realworld / "mapush_openrl_mappo_cuboid" / "logs").iterdir() if p.is_dir()
    )
    assert sorted(series) == folders and len(folders) == 14
    for name, sink in series.items():
        steps, _, _ = sink.arrays()
        assert steps.shape[0] == 199, name  # MANIFEST: 199 points, the last one never flushed
        assert np.all(np.diff(steps) > 0) and steps[0] == 100_000, name
