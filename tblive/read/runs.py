"""A log directory -> runs -> named series, with TensorBoard's restart rules.

Layout rules (what a *run* is, which series a tag belongs to) are in :mod:`tblive.read.layout`.
Reading rules:

* ``summary.json`` in a run directory (tensorboardX ``export_scalars_to_json``, which HARL writes at
  the end of training) maps writer paths *on the machine that trained* to
  ``[[wall_time, step, value], ...]`` (read in bounded memory by
  :mod:`tblive.read.summary_json`).  Keys are matched to this run by their trailing path
  components; points after the series' last step are appended, and when the file holds more
  points up to that step than the series kept (the event files missed some in the middle) the
  series is rebuilt from the file's points from its first step on.  Nothing is counted twice.
* A directory that cannot be listed is a fatal read issue of the run it belongs to (or, outside
  every run, a run of its own with no data), never silently absent.

Series rules, per run (TensorBoard's restart semantics, made per tag):

* Event files of one directory are read in name order, each from its saved offset.
* A ``SessionLog.START`` discards that directory's points at steps >= its step.
* A point whose step is strictly below its series' last step (a resume from a checkpoint) first
  discards the series' points at steps >= that step; a point at the same step as the last one is
  one more measurement and is kept.  :class:`SeriesFeed` applies this rule and counts what
  restarts discarded (``Run.restarts``).

Points go to *series sinks*: any object with ``update_many(steps, values, wall_times)`` and
``rewind(step)`` (``tblive.series.stats.MetricStats`` for bounded statistics, :class:`SeriesPoints` when
every point must be kept), through a :class:`SeriesFeed` that applies the restart rule.  This module knows nothing of statistics, rules or alerts.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from tblive.read.events import EventDecoder, ScalarBatch
from tblive.read.layout import (  # noqa: F401  (re-exported: the layout rules' old home)
    EVENT_FILE_MARKER,
    GENERIC_RUN_DIRS,
    SPLIT_NAMES,
    SUMMARY_JSON,
    RunLayout,
    SourceLayout,
    Unlisted,
    _is_within,
    _name_from_relpath,
    _run_name,
    discover_runs,
    is_event_file,
    run_name,
    series_name,
)
from tblive.read.records import DEFAULT_MAX_RECORD_SIZE, ReadIssue, RecordFile, error_text
from tblive.read.summary_json import DEFAULT_MAX_SUMMARY_BYTES, read_summary_json
from tblive.series.feed import SeriesFeed, SeriesPoints, SeriesSink

logger = logging.getLogger(__name__)

# -- reading -----------------------------------------------------------------------------------


@dataclass
class _Source:
    layout: SourceLayout
    decoder: EventDecoder
    files: Dict[str, RecordFile] = field(default_factory=dict)
    names: Dict[str, str] = field(default_factory=dict)  # tag -> series name

    def name_of(self, tag: str) -> str:
        name = self.names.get(tag)
        if name is None:
            name = self.names[tag] = series_name(self.layout.relpath, tag, self.layout.prefix)
        return name


SinkFactory = Callable[[str], SeriesSink]


class Run:
    """One training run: its sources, read incrementally into per-series sinks.

    ``poll()`` reads whatever was appended since the last call (new files included) and returns
    the number of new points.  It never raises for bad bytes; problems are in ``issues``.
    Thread-safety: one thread at a time.
    """

    def __init__(
        self,
        layout: RunLayout,
        sink_factory: SinkFactory,
        verify_payload: bool = False,
        read_summary_json: bool = True,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_summary_bytes: int = DEFAULT_MAX_SUMMARY_BYTES,
    ) -> None:
        self.layout = layout
        self._read_summary_json = read_summary_json
        self.name = layout.name
        self.path = layout.root
        self._sink_factory = sink_factory
        self._verify_payload = verify_payload
        self._max_record_size = max_record_size
        self._max_summary_bytes = max_summary_bytes
        self.feeds: Dict[str, SeriesFeed] = {}
        self.points = 0
        self.summary_points = 0
        self._sources: Dict[str, _Source] = {}
        self._summary_state: Optional[Tuple[float, int, int]] = None
        self._summary_issues: List[ReadIssue] = []
        self._unlisted: Dict[str, ReadIssue] = {}  # directory -> why it could not be listed
        self._failures: List[ReadIssue] = []  # files whose reading failed unexpectedly
        for source in layout.sources:
            self._add_source(source)

    # -- structure ----------------------------------------------------------------------

    def _add_source(self, layout: SourceLayout) -> _Source:
        source = self._sources.get(layout.path)
        if source is None:
            source = _Source(layout, EventDecoder(layout.path))
            self._sources[layout.path] = source
        return source

    def update_layout(self, layout: RunLayout) -> None:
        """Adopt a re-discovered layout (new nested ``add_scalars`` folders appear mid-run)."""
        self.layout = layout
        for source in layout.sources:
            self._add_source(source)

    @property
    def files(self) -> List[RecordFile]:
        return [f for source in self._sources.values() for f in source.files.values()]

    @property
    def issues(self) -> List[ReadIssue]:
        """Everything wrong with this run's files, directories and summary.json, as it is now."""
        found: List[ReadIssue] = list(self._unlisted.values())
        for source in self._sources.values():
            for record_file in source.files.values():
                found.extend(record_file.issues)
            found.extend(source.decoder.issues)
        found.extend(self._failures)
        found.extend(self._summary_issues)
        return found

    @property
    def complete(self) -> bool:
        """False when a file, a directory or the rest of a file could not be read."""
        return not any(issue.fatal for issue in self.issues)

    @property
    def restarts(self) -> Dict[str, int]:
        """How often restarts rewound a series, and how many points they discarded."""
        return {
            "rewinds": sum(feed.rewinds for feed in self.feeds.values()),
            "points_discarded": sum(
                int(getattr(feed, "discarded", 0)) for feed in self.feeds.values()
            ),
        }

    def set_unlisted(self, directories: Dict[str, str]) -> None:
        """The directories of this run that cannot be listed now (directory -> reason)."""
        for directory in list(self._unlisted):
            if directory not in directories:
                del self._unlisted[directory]
        for directory, reason in directories.items():
            old = self._unlisted.get(directory)
            if old is None or reason not in old.message:
                issue = ReadIssue(
                    directory,
                    0,
                    "cannot list the directory (%s); its event files are not read" % reason,
                    True,
                )
                logger.warning("%s", issue)
                self._unlisted[directory] = issue

    @property
    def skipped(self) -> Counter:
        total: Counter = Counter()
        for source in self._sources.values():
            total.update(source.decoder.skipped)
        return total

    @property
    def sinks(self) -> Dict[str, SeriesSink]:
        """Series name -> its sink (statistics, or every point), in the order first seen."""
        return {name: feed.sink for name, feed in self.feeds.items()}

    @property
    def total_steps(self) -> int:
        steps = [feed.last_step for feed in self.feeds.values() if feed.last_step is not None]
        return max(steps, default=0)

    def _scan_files(self, source: _Source) -> List[RecordFile]:
        directory = source.layout.path
        try:
            names = sorted(n for n in os.listdir(directory) if is_event_file(n))
        except FileNotFoundError:
            names = []
        except OSError as error:
            names = []
            unlisted = {d: i.message for d, i in self._unlisted.items()}
            unlisted[directory] = error_text(error)
            self.set_unlisted(unlisted)
        else:
            if directory in self._unlisted:
                del self._unlisted[directory]
        for name in names:
            path = os.path.join(directory, name)
            # anything but a directory: RecordFile reports FIFOs, sockets and devices itself
            if path not in source.files and not os.path.isdir(path):
                source.files[path] = RecordFile(
                    path,
                    verify_payload=self._verify_payload,
                    max_record_size=self._max_record_size,
                )
        return [source.files[path] for path in sorted(source.files)]

    # -- reading ------------------------------------------------------------------------

    def poll(self) -> int:
        """Read everything new; returns the number of points added."""
        before = self.points
        for source in list(self._sources.values()):
            for record_file in self._scan_files(source):
                self._read_file(source, record_file)
        if self._read_summary_json:
            self._merge_summary_json()
        if self.points != before:
            for feed in self.feeds.values():
                feed.flush()
        return self.points - before

    def _read_file(self, source: _Source, record_file: RecordFile) -> None:
        """Read one file's new records; an unforeseen failure costs this file, nothing else."""
        try:
            for block in record_file.read_blocks():
                self._apply(source, source.decoder.decode(block))
        except Exception as error:  # MemoryError included: never lose the other files and runs
            issue = ReadIssue(
                record_file.path,
                record_file.offset,
                "reading failed (%s: %s); the rest of the file is skipped"
                % (type(error).__name__, error),
                True,
            )
            logger.warning("%s", issue)
            self._failures.append(issue)
            record_file.ended = True

    def _feed(self, name: str) -> SeriesFeed:
        feed = self.feeds.get(name)
        if feed is None:
            feed = self.feeds[name] = SeriesFeed(self._sink_factory(name))
        return feed

    def _apply(self, source: _Source, batch: ScalarBatch) -> None:
        """Feed a decoded batch to the sinks, applying the restart rules."""
        if not len(batch) and not batch.restarts:
            return
        boundaries = [index for index, _ in batch.restarts] + [len(batch)]
        start = 0
        for number, end in enumerate(boundaries):
            if end > start:
                self._apply_segment(source, batch, start, end)
            if number < len(batch.restarts):
                self._restart(source, batch.restarts[number][1])
            start = max(start, end)

    def _restart(self, source: _Source, step: int) -> None:
        for name in set(source.names.values()):
            self._feed(name).restart(step)

    def _apply_segment(self, source: _Source, batch: ScalarBatch, start: int, end: int) -> None:
        tag_ids = batch.tag_ids[start:end]
        if len(batch.tags) == 1:
            groups = [(0, np.arange(start, end))]
        else:
            order = np.argsort(tag_ids, kind="stable")
            sorted_ids = tag_ids[order]
            cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
            groups = [
                (int(sorted_ids[chunk[0]]), order[chunk] + start)
                for chunk in np.split(np.arange(order.shape[0]), cuts)
                if chunk.shape[0]
            ]
        for tag_id, index in groups:
            name = source.name_of(batch.tags[tag_id])
            self._append(name, batch.steps[index], batch.values[index], batch.wall_times[index])

    def _append(self, name: str, steps: np.ndarray, values: np.ndarray, walls: np.ndarray) -> None:
        self._feed(name).add_many(steps, values, walls)
        self.points += steps.shape[0]

    # -- summary.json -------------------------------------------------------------------

    def _merge_summary_json(self) -> None:
        if self.path in self._unlisted:
            return  # already reported: the directory itself cannot be listed
        path = os.path.join(self.path, SUMMARY_JSON)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return
        except OSError as error:
            info = None
            state: Optional[Tuple[float, int, int]] = (0.0, -1, error.errno or 0)
        else:
            state = (info.st_mtime, info.st_size, info.st_ino)
        if state == self._summary_state:
            return
        self._summary_state = state
        self._summary_issues = []
        for key, table in read_summary_json(path, self._summary_issues, self._max_summary_bytes):
            name = self._summary_series(key)
            if name is None:
                self._summary_issues.append(
                    ReadIssue(
                        path, 0, "key %r does not belong to run %s; ignored" % (key, self.name)
                    )
                )
                continue
            if table.shape[0]:
                self._merge_summary_rows(name, table)
        for issue in self._summary_issues:
            logger.warning("%s", issue)

    def _merge_summary_rows(self, name: str, table: np.ndarray) -> None:
        """Add what the event files lack: points after the last step, or missing middle points."""
        table = table[np.argsort(table[:, 1], kind="stable")]
        steps = table[:, 1].astype(np.int64)
        feed = self._feed(name)
        feed.flush()
        last = feed.last_step
        if last is not None:
            upto = int(np.searchsorted(steps, last, side="right"))
            kept = _sink_count(feed.sink)
            if kept is not None and upto > kept:
                # the event files missed points before their last step: the file's are the series
                first = int(steps[0])
                feed.sink.rewind(first)  # not a restart: not counted as one
                last_kept = getattr(feed.sink, "last_step", None)
                feed.last_step = None if last_kept is None else int(last_kept)
                start = 0
            else:
                start = upto
        else:
            start = 0
        if start < steps.shape[0]:
            before = self.points
            self._append(name, steps[start:], table[start:, 2], table[start:, 0])
            self.summary_points += self.points - before

    def _summary_series(self, key: str) -> Optional[str]:
        """Map a summary.json key (a path on the training machine, or a plain tag) to a series."""
        normalized = key.replace("\\", "/")
        looks_like_path = normalized.startswith("/") or (
            len(normalized) > 2 and normalized[1] == ":"
        )
        if not looks_like_path:
            return normalized
        parts = [p for p in normalized.split("/") if p]
        best: Optional[Tuple[int, _Source]] = None
        for source in self._sources.values():
            rel = source.layout.relpath
            if not rel:
                continue
            rel_parts = rel.split("/")
            if parts[-len(rel_parts) :] == rel_parts and (best is None or len(rel_parts) > best[0]):
                best = (len(rel_parts), source)
        if best is not None:
            source = best[1]
            if source.names:
                return next(iter(set(source.names.values())))
            return _name_from_relpath(source.layout.relpath, source.layout.prefix)
        root_name = os.path.basename(self.path)
        if root_name in parts:
            index = len(parts) - 1 - parts[::-1].index(root_name)
            rel = "/".join(parts[index + 1 :])
            if rel:
                return _name_from_relpath(rel, "")
        return None


def _sink_count(sink: SeriesSink) -> Optional[int]:
    """How many points a sink holds (statistics' ``count``, or ``len``); None if it cannot say."""
    count = getattr(sink, "count", None)
    if isinstance(count, (int, np.integer)):
        return int(count)
    try:
        return len(sink)  # type: ignore[arg-type]
    except TypeError:
        return None


# -- a whole log directory ---------------------------------------------------------------------


class LogDir:
    """All runs under a directory, re-discovered on ``rescan()`` (new runs, new nested folders)."""

    def __init__(
        self,
        path: str,
        sink_factory: SinkFactory,
        verify_payload: bool = False,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_summary_bytes: int = DEFAULT_MAX_SUMMARY_BYTES,
        read_summary_json: bool = True,
    ) -> None:
        self.path = path
        self._sink_factory = sink_factory
        self._verify_payload = verify_payload
        self._max_record_size = max_record_size
        self._max_summary_bytes = max_summary_bytes
        self._read_summary_json = read_summary_json
        self.runs: Dict[str, Run] = {}

    def _new_run(self, layout: RunLayout) -> Run:
        return Run(
            layout,
            self._sink_factory,
            self._verify_payload,
            read_summary_json=self._read_summary_json,
            max_record_size=self._max_record_size,
            max_summary_bytes=self._max_summary_bytes,
        )

    def rescan(self) -> Tuple[List[Run], List[str]]:
        """Discover runs; returns (new runs, names of runs that are gone).

        A run is gone when its directory vanished, or when it became part of another run (a
        ``train/`` folder that was a run of its own until its ``validation/`` sibling appeared).
        A run merely missing from one listing (a network file system hiccup) is kept.
        """
        unlisted: Unlisted = []
        layouts = discover_runs(self.path, unlisted) if os.path.isdir(self.path) else []
        layouts = self._with_unlisted(layouts, unlisted)
        seen: Set[str] = set()
        added = []
        for layout in layouts:
            seen.add(layout.name)
            run = self.runs.get(layout.name)
            if run is None:
                run = self.runs[layout.name] = self._new_run(layout)
                added.append(run)
            else:
                run.update_layout(layout)
        for run in self.runs.values():
            run.set_unlisted(
                {d: why for d, why in unlisted if _is_within(d, run.path) and d != run.path}
                if run.layout.sources
                else {d: why for d, why in unlisted if d == run.path}
            )
        absorbed = {source.path for layout in layouts for source in layout.sources}
        gone = [
            name
            for name, run in self.runs.items()
            if name not in seen and (run.path in absorbed or not os.path.isdir(run.path))
        ]
        for name in gone:
            del self.runs[name]
        return added, gone

    def _with_unlisted(self, layouts: List[RunLayout], unlisted: Unlisted) -> List[RunLayout]:
        """Add a data-less run for each unlisted directory that lies inside no run."""
        extra = []
        root = os.path.normpath(self.path)
        for directory, _ in unlisted:
            if any(_is_within(directory, layout.root) for layout in layouts):
                continue
            if any(_is_within(directory, layout.root) for layout in extra):
                continue
            extra.append(RunLayout(_run_name(directory, root), directory, ()))
        return sorted(layouts + extra, key=lambda layout: layout.name)

    def poll(self) -> int:
        return sum(run.poll() for run in self.runs.values())


def load_points(
    path: str, verify_payload: bool = False, read_summary_json: bool = True
) -> Dict[str, Dict[str, SeriesPoints]]:
    """Every point of every run under ``path``: ``{run: {series: SeriesPoints}}`` (tests, export)."""
    logdir = LogDir(
        path, lambda name: SeriesPoints(), verify_payload, read_summary_json=read_summary_json
    )
    logdir.rescan()
    logdir.poll()
    return {name: dict(run.sinks) for name, run in logdir.runs.items()}  # type: ignore[misc]


def read_directory_points(
    directory: str, verify_payload: bool = False
) -> Tuple[Dict[str, SeriesPoints], Run]:
    """Every point of the event files directly in ``directory`` (one TensorBoard run, no merging)."""
    layout = RunLayout(os.path.basename(directory), directory, (SourceLayout(directory, "", ""),))
    run = Run(layout, lambda name: SeriesPoints(), verify_payload, read_summary_json=False)
    run.poll()
    return dict(run.sinks), run  # type: ignore[return-value]
