"""The post-hoc door: read a log directory to its current end once, and judge every run.

This is the same reader -> statistics -> verdict path the daemon and the in-process monitor use;
it only drives it once instead of forever.  No printing, no exit codes (that is the CLI's job).

Each run becomes a :class:`tblive.run.RunRecord`: its planned length is read from the config the
trainer saved next to the logs (``--expected-steps`` overrides it), its state (live / finished)
is inferred from the files (``assume`` forces it), and it is judged together with its sibling
seeds (:func:`tblive.run.find_siblings`) for the peer comparison.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Union

from tblive.errors import NoEventFiles
from tblive.judge.config import Config
from tblive.read.records import DEFAULT_MAX_RECORD_SIZE
from tblive.read.runs import LogDir, Run
from tblive.run import RunRecord, find_siblings, new_stats
from tblive.series.stats import MetricStats

__all__ = ["NoEventFiles", "RunResult", "analyze", "judge", "new_stats"]

ProgressCallback = Callable[[int, int, str], None]

#: the name earlier code used for a judged run; the one run object is :class:`RunRecord`
RunResult = RunRecord


def judge(
    run: Union[Run, RunRecord],
    config: Optional[Config] = None,
    expected_steps: Optional[int] = None,
    assume: str = "auto",
) -> RunRecord:
    """The verdict on one run's statistics as they are now (no siblings), kept on its record.

    ``run`` is a reader's run (its planned length and state are inferred from its files) or a
    record already filled.  ``expected_steps`` defaults to ``config.grace.expected_steps``.
    """
    if isinstance(run, RunRecord):
        record = run
    else:
        record = RunRecord.from_reader(run).infer(_expected(config, expected_steps), assume)
    record.judge(config)
    return record


def _expected(config: Optional[Config], expected_steps: Optional[int]) -> Optional[int]:
    if expected_steps:
        return int(expected_steps)
    grace = getattr(config, "grace", None)
    value = getattr(grace, "expected_steps", 0) if grace is not None else 0
    return int(value) if value else None


def analyze(
    path: str,
    config: Optional[Config] = None,
    verify_payload: bool = False,
    progress: Optional[ProgressCallback] = None,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    assume: str = "auto",
    expected_steps: Optional[int] = None,
    now: Optional[float] = None,
) -> List[RunRecord]:
    """Read every run under ``path``, infer its planned length and state, and judge it.

    Records longer than ``max_record_size`` bytes are skipped unread (a read issue of the run).
    ``assume``: ``"auto"`` (live or finished from the files' ages), ``"finished"`` or ``"live"``.
    ``expected_steps`` (default ``config.grace.expected_steps``) overrides the planned length
    found in files.  ``now`` (seconds since the epoch) is for tests.
    Raises ``FileNotFoundError`` / ``NotADirectoryError`` when ``path`` is not a directory and
    :class:`NoEventFiles` when nothing under it is an event file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError("%s: no such directory" % path)
    if not os.path.isdir(path):
        raise NotADirectoryError("%s: not a directory" % path)
    logdir = LogDir(path, new_stats, verify_payload, max_record_size=max_record_size)
    logdir.rescan()
    if not logdir.runs:
        raise NoEventFiles("%s: no TensorBoard event files (*tfevents*) found" % path)
    planned = _expected(config, expected_steps)
    records = []
    runs = list(logdir.runs.values())
    for run in _read_runs(runs, progress):
        records.append(RunRecord.from_reader(run).infer(planned, assume, now))
    siblings = find_siblings(records, path)
    for record in records:
        record.judge(config, siblings.get(record.name))
    if progress is not None:
        progress(len(runs), len(runs), "")
    return records


#: Trees with at least this many runs are read by a pool of processes (one run a task) when
#: more than one core is available; the records are the same as reading run by run.
POOL_MIN_RUNS = 16


def _read_run(run: Run) -> Run:
    """Read one run to its end (in a pool worker), with the figures every report shows.

    Trends, head/tail and the recent window are memoised on the statistics, so computing them
    here spreads that work over the cores too; they travel back with the statistics.
    """
    run.poll()
    _memoise_figures(run)
    return run


def _memoise_figures(run: Run) -> None:
    """Compute the figures every report shows (memoised on the statistics)."""
    for sink in run.sinks.values():
        if isinstance(sink, MetricStats):
            sink.trend("all")
            sink.trend("recent")
            sink.relative_change()
            sink.recent  # noqa: B018 (memoised property)


def _read_runs(runs: List[Run], progress: Optional[ProgressCallback]) -> List[Run]:
    """Read every run to its end, in order; by a process pool for big trees."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if len(runs) >= POOL_MIN_RUNS and cores > 1:
        try:
            from concurrent.futures import ProcessPoolExecutor

            done: List[Run] = []
            with ProcessPoolExecutor(max_workers=min(cores, 8)) as pool:
                for number, run in enumerate(pool.map(_read_run, runs, chunksize=2)):
                    if progress is not None:
                        progress(number, len(runs), run.name)
                    done.append(run)
            return done
        except Exception:  # no processes here (sandbox, no /dev/shm, ...): read them here
            pass
    for number, run in enumerate(runs):
        if progress is not None:
            progress(number, len(runs), run.name)
        run.poll()
        _memoise_figures(run)
    return runs
