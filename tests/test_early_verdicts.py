"""Judge early, on the live path: a real writer appends, the reader polls, the verdict is taken.

Every 5% of a run (every 1% for the real MAPush replays) the writer flushes, the run is polled
(the same incremental reader and statistics the daemon uses) and judged. Healthy runs must never
be CRITICAL at any prefix; the original failure pattern must be CRITICAL by 30% at the latest.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List

import pytest
from patterns import failure_pattern, healthy_pattern, write_row
from tensorboardX import SummaryWriter

from tblive.doors.posthoc import judge, new_stats
from tblive.judge.findings import Status
from tblive.read.runs import LogDir, load_points


def statuses_while_writing(logdir: Path, rows, checkpoints: int) -> List[Status]:
    """Write ``rows`` through tensorboardX; judge after each of ``checkpoints`` equal chunks."""
    rows = list(rows)
    writer = SummaryWriter(str(logdir), flush_secs=0.05)  # flush() does not drain its queue
    tree = LogDir(str(logdir), new_stats)
    statuses = []
    written = 0
    for number in range(1, checkpoints + 1):
        upto = round(len(rows) * number / checkpoints)
        for row in rows[written:upto]:
            write_row(writer, row)
        written = upto
        writer.flush()
        expected = sum(len(plain) + len(grouped) for _, _, plain, grouped in rows[:upto])
        deadline = time.monotonic() + 10.0
        while True:  # tensorboardX writes on its own thread: wait until it has
            writer.flush()  # flushes what that thread has written so far
            tree.rescan()  # HARL's nested add_scalars folders appear mid-run
            tree.poll()
            points = sum(run.points for run in tree.runs.values())
            if points >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert points == expected
        (run,) = tree.runs.values()
        statuses.append(judge(run).verdict.status)
    writer.close()
    return statuses


@pytest.mark.parametrize("points", [100, 200])
def test_failure_pattern_is_critical_by_30_percent(tmp_path: Path, points: int) -> None:
    statuses = statuses_while_writing(tmp_path / "logs", failure_pattern(points), 20)
    first_critical = statuses.index(Status.CRITICAL) if Status.CRITICAL in statuses else None
    assert first_critical is not None and first_critical + 1 <= 6, statuses  # 6 x 5% = 30%
    assert all(s == Status.CRITICAL for s in statuses[first_critical:]), statuses


@pytest.mark.parametrize("seed", [2, 3])
def test_healthy_run_with_rising_entropy_is_never_critical(tmp_path: Path, seed: int) -> None:
    statuses = statuses_while_writing(tmp_path / "logs", healthy_pattern(200, seed), 20)
    assert Status.CRITICAL not in statuses, statuses
    assert statuses[-1] == Status.WARNING  # entropy still rises: said, not fatal


@pytest.mark.parametrize("case", ["cuboid", "cylinder", "tblock"])
def test_real_mapush_replayed_live_is_never_critical(realworld: Path, tmp_path: Path, case: str):
    """The three real MAPush runs (they succeeded) re-written point by point in their layout."""
    logging.disable(logging.WARNING)
    try:
        (points,) = load_points(str(realworld / ("mapush_openrl_mappo_" + case))).values()
    finally:
        logging.disable(logging.NOTSET)
    by_step = {}
    for tag, series in points.items():
        steps, values, walls = series.arrays()
        for step, value, wall in zip(steps.tolist(), values.tolist(), walls.tolist()):
            by_step.setdefault(step, (wall, {}))[1][tag] = value
    rows = [(step, wall, {}, grouped) for step, (wall, grouped) in sorted(by_step.items())]
    statuses = statuses_while_writing(tmp_path / "logs", rows, 100)
    assert Status.CRITICAL not in statuses, statuses
