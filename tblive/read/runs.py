"""A log directory -> runs -> named series, with TensorBoard's restart rules.

Layout rules (what a *run* is):

* A run is the topmost directory that holds event files (any file whose name contains
  ``tfevents``, as TensorBoard decides).  Directories below it that hold event files are not runs
  of their own: they are ``add_scalars`` writers and merge into the run.
  - tensorboardX / HARL write ``<run>/<main_tag>/<key>/events...`` carrying the tag ``main_tag``;
  - torch writes ``<run>/<main_tag with / as _>_<key>/events...``.
  Their points become the series ``main_tag`` when ``key`` repeats the tag (HARL's
  ``add_scalars(k, {k: v})``), else ``main_tag/key``.  Any other nested writer's tags are
  prefixed with its relative path (``sub/dir/tag``).
* Sibling top directories named like data splits (``train``, ``validation``, ``eval``, ``test``,
  ``learn``...; Keras, TF Object Detection, CatBoost) are one run rooted at their parent, each
  split's tags prefixed with the split name (``train/epoch_loss``, ``validation/epoch_loss``).
* Every other top directory is a run of its own: a sweep of seeds yields one run per seed.
* ``summary.json`` in a run directory (tensorboardX ``export_scalars_to_json``, which HARL writes at
  the end of training) maps writer paths *on the machine that trained* to
  ``[[wall_time, step, value], ...]``.  Keys are matched to this run by their trailing path
  components; points beyond what the event files hold are appended (nothing is counted twice).

Series rules, per run (TensorBoard's restart semantics, made per tag):

* Event files of one directory are read in name order, each from its saved offset.
* A ``SessionLog.START`` discards that directory's points at steps >= its step.
* A point whose step is not after its series' last step (a resume from a checkpoint, or a
  duplicate) first discards the series' points at steps >= that step; so a duplicate (tag, step)
  replaces the earlier value instead of counting twice.

Points go to *series sinks*: any object with ``update_many(steps, values, wall_times)`` and
``rewind(step)`` (``tblive.series.stats.MetricStats`` for bounded statistics, :class:`SeriesPoints` when
every point must be kept), through a :class:`SeriesFeed` that applies the restart rule.  This module knows nothing of statistics, rules or alerts.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from tblive.read.events import EventDecoder, ScalarBatch
from tblive.read.records import ReadIssue, RecordFile
from tblive.series.feed import SeriesFeed, SeriesPoints, SeriesSink

logger = logging.getLogger(__name__)

EVENT_FILE_MARKER = "tfevents"
SUMMARY_JSON = "summary.json"
SPLIT_NAMES = frozenset(
    {"train", "training", "validation", "val", "valid", "eval", "evaluation", "test", "learn"}
)


def is_event_file(name: str) -> bool:
    """TensorBoard's own test: the file name contains ``tfevents``."""
    return EVENT_FILE_MARKER in name


# -- layout ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceLayout:
    """One directory of event files inside a run."""

    path: str
    relpath: str  # relative to the run's (or the split's) top directory; "" for the top itself
    prefix: str  # "train/" for a split-merged run, else ""


@dataclass(frozen=True)
class RunLayout:
    name: str
    root: str
    sources: Tuple[SourceLayout, ...]


def _event_dirs(logdir: str) -> List[str]:
    """Directories under ``logdir`` (itself included) that directly hold event files."""
    found = []
    for directory, subdirs, files in os.walk(logdir, onerror=lambda error: None):
        subdirs.sort()
        if any(is_event_file(name) for name in files):
            found.append(directory)
    return found


def discover_runs(logdir: str) -> List[RunLayout]:
    """The runs under ``logdir`` (see the module docstring for the rules), sorted by name."""
    logdir = os.path.normpath(logdir)
    event_dirs = _event_dirs(logdir)
    tops: List[str] = []
    members: Dict[str, List[str]] = {}
    for directory in sorted(event_dirs):
        owner = next((top for top in tops if _is_within(directory, top)), None)
        if owner is None:
            tops.append(directory)
            members[directory] = [directory]
        else:
            members[owner].append(directory)
    by_parent: Dict[str, List[str]] = {}
    for top in tops:
        if top != logdir:
            by_parent.setdefault(os.path.dirname(top), []).append(top)
    split_groups: Dict[str, List[str]] = {}
    for parent, children in by_parent.items():
        splits = [c for c in children if os.path.basename(c).lower() in SPLIT_NAMES]
        if len(splits) >= 2:
            split_groups[parent] = splits
    grouped = {child for splits in split_groups.values() for child in splits}
    layouts = []
    for top in tops:
        if top in grouped:
            continue
        sources = tuple(SourceLayout(d, _relpath(d, top), "") for d in members[top])
        layouts.append(RunLayout(_run_name(top, logdir), top, sources))
    for parent, splits in split_groups.items():
        sources_list = []
        for split in sorted(splits):
            prefix = os.path.basename(split) + "/"
            sources_list.extend(SourceLayout(d, _relpath(d, split), prefix) for d in members[split])
        layouts.append(RunLayout(_run_name(parent, logdir), parent, tuple(sources_list)))
    return sorted(layouts, key=lambda layout: layout.name)


def _is_within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip(os.sep) + os.sep)


def _relpath(path: str, start: str) -> str:
    rel = os.path.relpath(path, start)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _run_name(root: str, logdir: str) -> str:
    rel = _relpath(root, logdir)
    return rel or os.path.basename(os.path.abspath(logdir)) or root


def series_name(relpath: str, tag: str, prefix: str = "") -> str:
    """The series a tag written in ``relpath`` (relative to its run) belongs to."""
    if not relpath:
        return prefix + tag
    key = None
    if relpath.startswith(tag + "/"):  # tensorboardX / HARL: <main_tag>/<key>
        key = relpath[len(tag) + 1 :]
    elif relpath.startswith(tag.replace("/", "_") + "_"):  # torch: <main_tag, / as _>_<key>
        key = relpath[len(tag.replace("/", "_")) + 1 :]
    if key is None:
        return prefix + relpath + "/" + tag
    if key == tag or key == tag.rsplit("/", 1)[-1]:
        return prefix + tag
    return prefix + tag + "/" + key


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
    ) -> None:
        self.layout = layout
        self._read_summary_json = read_summary_json
        self.name = layout.name
        self.path = layout.root
        self._sink_factory = sink_factory
        self._verify_payload = verify_payload
        self.feeds: Dict[str, SeriesFeed] = {}
        self.points = 0
        self.summary_points = 0
        self._sources: Dict[str, _Source] = {}
        self._summary_mtime: Optional[float] = None
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
        found: List[ReadIssue] = []
        for source in self._sources.values():
            for record_file in source.files.values():
                found.extend(record_file.issues)
            found.extend(source.decoder.issues)
        return found

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
        try:
            names = sorted(n for n in os.listdir(source.layout.path) if is_event_file(n))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(source.layout.path, name)
            if path not in source.files and os.path.isfile(path):
                source.files[path] = RecordFile(path, verify_payload=self._verify_payload)
        return [source.files[path] for path in sorted(source.files)]

    # -- reading ------------------------------------------------------------------------

    def poll(self) -> int:
        """Read everything new; returns the number of points added."""
        before = self.points
        for source in list(self._sources.values()):
            for record_file in self._scan_files(source):
                for block in record_file.read_blocks():
                    self._apply(source, source.decoder.decode(block))
        if self._read_summary_json:
            self._merge_summary_json()
        if self.points != before:
            for feed in self.feeds.values():
                feed.flush()
        return self.points - before

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
        path = os.path.join(self.path, SUMMARY_JSON)
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return
        if mtime == self._summary_mtime:
            return
        self._summary_mtime = mtime
        try:
            with open(path, encoding="utf-8") as handle:
                content = json.load(handle)
            if not isinstance(content, dict):
                raise ValueError("top level is not an object")
        except (OSError, ValueError) as error:
            logger.warning("%s: not a valid summary.json (%s); ignored", path, error)
            return
        for key, rows in content.items():
            name = self._summary_series(str(key))
            if name is None:
                logger.warning(
                    "%s: key %r does not belong to run %s; ignored", path, key, self.name
                )
                continue
            try:
                table = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
            except (TypeError, ValueError):
                logger.warning("%s: points of %r are not [wall_time, step, value] rows", path, key)
                continue
            if table.shape[0] == 0:
                continue
            table = table[np.argsort(table[:, 1], kind="stable")]
            steps = table[:, 1].astype(np.int64)
            last = self._feed(name).last_step
            keep = np.ones(steps.shape[0], bool) if last is None else steps > last
            if keep.any():
                before = self.points
                self._append(name, steps[keep], table[keep, 2], table[keep, 0])
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


def _name_from_relpath(relpath: str, prefix: str) -> str:
    """Series name of an ``add_scalars`` folder whose event files we have not seen."""
    parts = relpath.split("/")
    half = len(parts) // 2
    if len(parts) % 2 == 0 and parts[:half] == parts[half:]:
        return prefix + "/".join(parts[:half])
    if len(parts) == 1:
        return prefix + parts[0]
    return series_name(relpath, "/".join(parts[:-1]), prefix)


# -- a whole log directory ---------------------------------------------------------------------


class LogDir:
    """All runs under a directory, re-discovered on ``rescan()`` (new runs, new nested folders)."""

    def __init__(self, path: str, sink_factory: SinkFactory, verify_payload: bool = False) -> None:
        self.path = path
        self._sink_factory = sink_factory
        self._verify_payload = verify_payload
        self.runs: Dict[str, Run] = {}

    def rescan(self) -> Tuple[List[Run], List[str]]:
        """Discover runs; returns (new runs, names of runs that are gone).

        A run is gone when its directory vanished, or when it became part of another run (a
        ``train/`` folder that was a run of its own until its ``validation/`` sibling appeared).
        A run merely missing from one listing (a network file system hiccup) is kept.
        """
        layouts = discover_runs(self.path) if os.path.isdir(self.path) else []
        seen: Set[str] = set()
        added = []
        for layout in layouts:
            seen.add(layout.name)
            run = self.runs.get(layout.name)
            if run is None:
                run = self.runs[layout.name] = Run(layout, self._sink_factory, self._verify_payload)
                added.append(run)
            else:
                run.update_layout(layout)
        absorbed = {source.path for layout in layouts for source in layout.sources}
        gone = [
            name
            for name, run in self.runs.items()
            if name not in seen and (run.path in absorbed or not os.path.isdir(run.path))
        ]
        for name in gone:
            del self.runs[name]
        return added, gone

    def poll(self) -> int:
        return sum(run.poll() for run in self.runs.values())


def load_points(path: str, verify_payload: bool = False) -> Dict[str, Dict[str, SeriesPoints]]:
    """Every point of every run under ``path``: ``{run: {series: SeriesPoints}}`` (tests, export)."""
    logdir = LogDir(path, lambda name: SeriesPoints(), verify_payload)
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
