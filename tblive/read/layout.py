"""Where the runs of a log directory are, and which series name each tag gets.

Pure functions of directory listings; nothing here reads an event file.  :mod:`tblive.read.runs`
re-exports every name, so ``from tblive.read.runs import discover_runs`` keeps working.

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
* A directory that cannot be listed is reported to the caller (``unlisted``), never silently
  absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from tblive.read.records import error_text

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


Unlisted = List[Tuple[str, str]]  # (directory, why it could not be listed)


def _event_dirs(logdir: str, unlisted: Optional[Unlisted] = None) -> List[str]:
    """Directories under ``logdir`` (itself included) that directly hold event files.

    Directories that cannot be listed are appended to ``unlisted`` with the reason.
    """
    found = []

    def failed(error: OSError) -> None:
        if isinstance(error, (FileNotFoundError, NotADirectoryError)):
            return  # removed while the tree was walked: nothing was there to lose
        if unlisted is not None and error.filename:
            unlisted.append((os.path.normpath(str(error.filename)), error_text(error)))

    for directory, subdirs, files in os.walk(logdir, onerror=failed):
        subdirs.sort()
        if any(is_event_file(name) for name in files):
            found.append(directory)
    return found


def discover_runs(logdir: str, unlisted: Optional[Unlisted] = None) -> List[RunLayout]:
    """The runs under ``logdir`` (see the module docstring for the rules), sorted by name.

    Directories that could not be listed are appended to ``unlisted`` (directory, reason).
    """
    logdir = os.path.normpath(logdir)
    event_dirs = _event_dirs(logdir, unlisted)
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


#: writer folder names too generic to name a run on their own (``seed-1/logs`` keeps its seed)
GENERIC_RUN_DIRS = frozenset(
    {"logs", "log", "tb", "tb_logs", "tensorboard", "runs", "events", "summaries"}
)


def run_name(path: str, logdir: Optional[str] = None) -> str:
    """The one run-naming rule (the reader's and the monitor's).

    The run's path relative to ``logdir`` (its folder name when it is ``logdir`` itself, or
    without ``logdir``); a name that is one generic folder (:data:`GENERIC_RUN_DIRS`: ``logs``,
    ``tb``, ``runs``, ...) gets its parent folder in front, so ``seed-1/logs`` is named
    ``seed-1/logs`` whether the report points at the sweep, at ``seed-1`` or at ``logs``.
    """
    path = os.path.normpath(os.path.abspath(path))
    rel = _relpath(path, os.path.abspath(logdir)) if logdir else ""
    name = rel or os.path.basename(path)
    if "/" not in name and name.lower() in GENERIC_RUN_DIRS:
        parent = os.path.basename(os.path.dirname(path))
        if parent:
            name = "%s/%s" % (parent, name)
    return name or path


def _run_name(root: str, logdir: str) -> str:
    return run_name(root, logdir)


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


def _name_from_relpath(relpath: str, prefix: str) -> str:
    """Series name of an ``add_scalars`` folder whose event files we have not seen."""
    parts = relpath.split("/")
    half = len(parts) // 2
    if len(parts) % 2 == 0 and parts[:half] == parts[half:]:
        return prefix + "/".join(parts[:half])
    if len(parts) == 1:
        return prefix + parts[0]
    return series_name(relpath, "/".join(parts[:-1]), prefix)
