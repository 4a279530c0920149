"""What the trainer left next to its logs: the planned run length, and whether the run still writes.

Pure reading of small files; nothing here raises for bad input, prints, or looks at statistics.

Planned length (:func:`planned_length`)
---------------------------------------
Trainers save their configuration next to the event files.  We look, in this order, in the run
directory, its subdirectories named in :data:`CONFIG_SUBDIRS` (rsl_rl/Isaac Lab ``params/``,
wandb ``files/``, Hydra ``.hydra/``) and its parent (HARL and MAPush save ``config.json`` beside the ``logs`` folder; rl-zoo puts
``config.yml`` beside SB3's ``PPO_1``), for the files and keys of :data:`PLANNED_KEYS`:

* HARL / MAPush / on-policy MAPPO / light_mappo: ``num_env_steps`` (``config.json``, saved args
  as JSON/YAML/``args.txt``, a wandb ``config.yaml`` with ``value:`` nesting);
* rl-zoo: ``n_timesteps`` (``config.yml``, ``args.yml`` when positive); SB3 / CleanRL scripts:
  ``total_timesteps``; Sample Factory ``cfg.json``: ``train_for_env_steps`` (its 1e10 default
  means "no limit" and is ignored);
* rsl_rl / legged_gym / Isaac Lab: ``max_iterations`` (``params/agent.yaml``, ``config.*``): the
  x-axis of rsl_rl is the iteration, so the planned length is the iteration count;
* Unity ML-Agents ``configuration.yaml``: ``max_steps`` (the largest over behaviours).

The first file that yields a positive number wins; :attr:`Provenance.source` says which file
and key.  :func:`reconcile` then checks the number against the steps actually logged: a plan
shorter than what the logs already reach is not this x-axis (an rsl_rl config read on an
env-step axis is multiplied by ``num_steps_per_env`` when that fits) or a resumed run, and is
dropped with a reason.  Files over :data:`MAX_FILE_BYTES` are not read; a file that cannot be
parsed gives a note naming it, never an exception.

Run state (:func:`run_state`)
-----------------------------
A run is **finished** when ``summary.json`` sits in its directory (tensorboardX's export,
written by HARL and on-policy MAPPO at the end of training), or when none of its event files has
changed for ``max(FINISHED_AFTER_SECONDS, FINISHED_AFTER_GAPS x its typical gap between
points)`` -- 30 minutes for a run that logs every minute or more often; the same numbers as
the daemon's "presumed finished" (3 x a stall threshold of max(600 s, 10 gaps)) -- capped at
2 hours.  The typical gap is estimated from the file names' creation times and the files' ages
(:func:`typical_gap`); an estimate over 20 minutes per point is not believed (old runs copied
without their file times).  Otherwise it is **live**.  The reason says which; ``assume`` forces
either.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tblive.read.records import file_kind

__all__ = [
    "FINISHED_AFTER_GAPS",
    "FINISHED_AFTER_SECONDS",
    "CONFIG_SUBDIRS",
    "MAX_FILE_BYTES",
    "PLANNED_KEYS",
    "Provenance",
    "StateGuess",
    "duration_text",
    "finished_threshold",
    "typical_gap",
    "planned_length",
    "reconcile",
    "run_state",
]

#: configuration files larger than this are not read (configs are a few KB)
MAX_FILE_BYTES = 1 << 20
#: subdirectories of a run directory looked into for configs (rsl_rl / Isaac Lab ``params``,
#: wandb ``files``, Hydra ``.hydra``); a run's own ``add_scalars`` folders are never listed
CONFIG_SUBDIRS = ("params", "config", "configs", "files", ".hydra")
#: a run none of whose event files changed for this long is finished (seconds) ...
FINISHED_AFTER_SECONDS = 1800.0
#: ... or for this many typical gaps between its points, when that is longer ...
FINISHED_AFTER_GAPS = 30.0
#: ... but never longer than this (files copied without their times make the gap estimate
#: meaningless: this bounds how long such a run is taken for live)
FINISHED_AFTER_MAX_SECONDS = 2 * 3600.0
#: a gap estimate longer than this is not believed (files written long ago and copied today)
MAX_GAP_SECONDS = 1200.0
#: the logs may overshoot the plan by this share (the last rollout, rounding) and still match it
OVERSHOOT = 0.05
#: Sample Factory's default ``train_for_env_steps`` (1e10) means "until stopped"
NO_LIMIT = 1e10

# The state names of :mod:`tblive.judge.context` (kept as plain strings: read/ imports nothing
# from judge/).
LIVE = "live"
FINISHED = "finished"
UNKNOWN = "unknown"

_JSON_ARGS = ("num_env_steps", "n_timesteps", "total_timesteps", "train_for_env_steps")
_YAML_ARGS = ("num_env_steps", "n_timesteps", "total_timesteps")
#: file name -> keys giving the planned length, in priority order
PLANNED_KEYS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("config.json", _JSON_ARGS + ("max_iterations",)),
    ("cfg.json", ("train_for_env_steps",)),
    ("config.yml", _YAML_ARGS + ("max_iterations",)),
    ("config.yaml", _YAML_ARGS + ("max_iterations",)),
    ("agent.yaml", ("max_iterations",)),
    ("args.json", _JSON_ARGS),
    ("args.yml", _YAML_ARGS),
    ("args.yaml", _YAML_ARGS),
    ("args.txt", _YAML_ARGS),
    ("configuration.yaml", ("max_steps",)),
)
#: keys that say how many logged steps one unit of the planned key is (rsl_rl on an env-step axis)
_MULTIPLIERS = {"max_iterations": ("num_steps_per_env",)}


@dataclass(frozen=True)
class Provenance:
    """The planned length of a run and where it came from.

    ``planned_steps`` is None when unknown; ``source`` names the file and key (``"num_env_steps
    in ../config.json"``) or the override; ``notes`` are one-line reasons for files that were
    found but not usable.  ``multiplier`` (rsl_rl ``num_steps_per_env``) is kept for
    :func:`reconcile`.
    """

    planned_steps: Optional[int] = None
    source: str = ""
    notes: Tuple[str, ...] = ()
    key: str = ""
    multiplier: Optional[int] = None

    @property
    def known(self) -> bool:
        return self.planned_steps is not None and self.planned_steps > 0

    def to_dict(self) -> Dict[str, Any]:
        return {"planned_steps": self.planned_steps, "planned_source": self.source}


@dataclass(frozen=True)
class StateGuess:
    """Whether a run is still being written: ``state`` (``live`` / ``finished`` / ``unknown``),
    ``reason`` one sentence, ``quiet_seconds`` since its newest event file changed (if known)."""

    state: str
    reason: str
    quiet_seconds: Optional[float] = None


# -- small-file parsing ------------------------------------------------------------------------


def _number(text: Any) -> Optional[float]:
    """A positive finite number from a config value (``1e8``, ``"100_000"``, ``100000.0``)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    elif isinstance(text, str):
        cleaned = text.strip().strip("'\"").replace("_", "")
        try:
            value = float(cleaned)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value


def _json_values(content: Any, keys: Iterable[str]) -> Dict[str, float]:
    """First positive value of each key anywhere in a JSON document (depth-first, bounded)."""
    wanted = set(keys)
    found: Dict[str, float] = {}
    stack: List[Tuple[Any, int]] = [(content, 0)]
    visited = 0
    while stack and visited < 100000:
        node, depth = stack.pop()
        visited += 1
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if key in wanted and key not in found:
                    number = _number(value)
                    if number is None and isinstance(value, dict):  # wandb: {"value": N}
                        number = _number(value.get("value"))
                    if number is not None:
                        found[key] = number
                if depth < 12 and isinstance(value, (dict, list)):
                    children.append((value, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(node, list) and depth < 12:
            stack.extend((item, depth + 1) for item in reversed(node))
    return found


_YAML_KEY = re.compile(r"^(\s*)(?:-\s+)*([A-Za-z_][\w.\-]*)\s*[:=]\s*(.*)$")
_YAML_PAIR_KEY = re.compile(r"^\s*(?:-\s+)+([A-Za-z_][\w.\-]*)\s*$")  # rl-zoo "- - n_timesteps"
_YAML_ITEM = re.compile(r"^\s*-\s+(.*)$")
_YAML_VALUE = re.compile(r"^\s*value\s*:\s*(.*)$")


def _strip_comment(value: str) -> str:
    return value.split(" #", 1)[0].strip()


def _yaml_values(text: str, keys: Iterable[str]) -> Dict[str, float]:
    """Values of ``keys`` in the YAML shapes trainers write, without a YAML library.

    ``key: 1e8`` (any nesting; the largest value wins when a key repeats, as in ML-Agents'
    per-behaviour ``max_steps``), wandb's ``key:`` + ``value: N`` on a following line, rl-zoo's
    pair lists ``- - n_timesteps`` + ``- 100000.0``, and ``key=value`` (argparse dumps).
    """
    wanted = set(keys)
    found: Dict[str, float] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        key, raw = None, None
        match = _YAML_KEY.match(line)
        if match and match.group(2) in wanted:
            key, raw = match.group(2), _strip_comment(match.group(3))
            if not raw:  # wandb: the number is on a "value:" line below
                for following in lines[index + 1 : index + 4]:
                    value_match = _YAML_VALUE.match(following)
                    if value_match:
                        raw = _strip_comment(value_match.group(1))
                        break
        else:
            pair = _YAML_PAIR_KEY.match(line)
            if pair and pair.group(1) in wanted and index + 1 < len(lines):
                item = _YAML_ITEM.match(lines[index + 1])
                if item:
                    key, raw = pair.group(1), _strip_comment(item.group(1))
        if key is None:
            continue
        number = _number(raw)
        if number is not None:
            found[key] = max(found.get(key, 0.0), number)
    for key in wanted - set(found):  # argparse Namespace(...) dumps on one line
        match = re.search(r"\b%s\s*=\s*([-+0-9.eE_]+)" % re.escape(key), text)
        if match:
            number = _number(match.group(1))
            if number is not None:
                found[key] = number
    return found


def _read_small(path: str) -> Tuple[Optional[str], Optional[str]]:
    """(text, None) or (None, why not); never raises."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            # A FIFO named config.json would block open() forever.
            return None, "%s: %s, not a regular file; not read" % (path, file_kind(info.st_mode))
        size = info.st_size
        if size > MAX_FILE_BYTES:
            return None, "%s: %d bytes, over the %d-byte limit for a config; not read" % (
                path,
                size,
                MAX_FILE_BYTES,
            )
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        return data.decode("utf-8", errors="replace"), None
    except OSError as error:
        return None, "%s: cannot read (%s)" % (path, error.strerror or error)


def _values_in(path: str, keys: Sequence[str]) -> Tuple[Dict[str, float], Optional[str]]:
    text, problem = _read_small(path)
    if text is None:
        return {}, problem
    if path.endswith(".json"):
        try:
            content = json.loads(text)
        except ValueError as error:
            return {}, "%s: not valid JSON (%s); ignored" % (path, error)
        return _json_values(content, keys), None
    return _yaml_values(text, keys), None


# -- planned length ----------------------------------------------------------------------------


def _candidate_dirs(run_dir: str) -> List[Tuple[str, str]]:
    """(directory, how to name it relative to the run) in search order."""
    run_dir = os.path.normpath(os.path.abspath(run_dir))
    found = [(run_dir, "")]
    found.extend((os.path.join(run_dir, name), name + "/") for name in CONFIG_SUBDIRS)
    parent = os.path.dirname(run_dir)
    if parent and parent != run_dir:
        found.append((parent, "../"))
    return found


def planned_length(run_dir: str) -> Provenance:
    """The planned length saved next to the run in ``run_dir`` (see the module docstring)."""
    notes: List[str] = []
    for directory, label in _candidate_dirs(run_dir):
        try:
            names = set(os.listdir(directory))
        except OSError:
            continue
        for file_name, keys in PLANNED_KEYS:
            if file_name not in names:
                continue
            path = os.path.join(directory, file_name)
            multipliers = tuple(m for key in keys for m in _MULTIPLIERS.get(key, ()))
            values, problem = _values_in(path, tuple(keys) + multipliers)
            if problem:
                notes.append(problem)
                continue
            for key in keys:
                value = values.get(key)
                if value is None:
                    continue
                if key == "train_for_env_steps" and value >= NO_LIMIT:
                    notes.append("%s: %s = %g means no limit; ignored" % (path, key, value))
                    continue
                if key == "n_timesteps" and file_name.startswith("args") and value <= 1:
                    continue
                multiplier = None
                for name in _MULTIPLIERS.get(key, ()):
                    if values.get(name):
                        multiplier = int(values[name])
                return Provenance(
                    planned_steps=int(round(value)),
                    source="%s in %s%s" % (key, label, file_name),
                    notes=tuple(notes),
                    key=key,
                    multiplier=multiplier,
                )
    return Provenance(notes=tuple(notes))


def reconcile(provenance: Provenance, last_step: Optional[int]) -> Provenance:
    """Check a planned length against the steps the logs reach; drop it with a reason if wrong.

    A plan the logs already overshoot by more than :data:`OVERSHOOT` is not this run's x-axis:
    with a known per-iteration multiplier (rsl_rl ``num_steps_per_env``) that fits, the plan is
    scaled; otherwise the planned length is unknown and the note says why (a resumed run, or a
    config counting something else).
    """
    if not provenance.known or not last_step or last_step <= 0:
        return provenance
    planned = int(provenance.planned_steps or 0)
    if last_step <= planned * (1.0 + OVERSHOOT):
        return provenance
    if provenance.multiplier and last_step <= planned * provenance.multiplier * (1.0 + OVERSHOOT):
        return Provenance(
            planned_steps=planned * provenance.multiplier,
            source="%s x %d steps per iteration" % (provenance.source, provenance.multiplier),
            notes=provenance.notes,
            key=provenance.key,
        )
    note = (
        "%s says %d, but the logs already reach step %d: a resumed run or another x-axis; "
        "planned length not used" % (provenance.source, planned, last_step)
    )
    return Provenance(notes=provenance.notes + (note,))


# -- run state ---------------------------------------------------------------------------------


def finished_threshold(typical_gap: Optional[float] = None) -> float:
    """Seconds without a change after which a run counts as finished."""
    gap = typical_gap if typical_gap is not None and math.isfinite(typical_gap) else 0.0
    longer = min(FINISHED_AFTER_GAPS * max(gap, 0.0), FINISHED_AFTER_MAX_SECONDS)
    return max(FINISHED_AFTER_SECONDS, longer)


_CREATED = re.compile(r"tfevents\.(\d{9,11})(?:\.|$)")


def typical_gap(event_files: Sequence[str], points: int) -> Optional[float]:
    """Seconds between a run's points, estimated without reading them: from the oldest event
    file's creation time (in its name, as every TensorBoard writer puts it there) to the newest
    file's modification time, over ``points`` (the densest series' count).  None when unknown
    or implausible (over :data:`MAX_GAP_SECONDS`: old files copied recently)."""
    created = []
    for path in event_files:
        match = _CREATED.search(os.path.basename(path))
        if match:
            created.append(float(match.group(1)))
    newest = _newest_mtime(event_files)
    if not created or newest is None or points < 2:
        return None
    gap = (newest - min(created)) / (points - 1)
    return gap if 0 < gap <= MAX_GAP_SECONDS else None


def duration_text(seconds: float) -> str:
    """``95 -> "95 s"``, ``1800 -> "30 min"``, ``7560 -> "2.1 h"``, ``200000 -> "2.3 days"``."""
    if seconds < 120:
        return "%.0f s" % seconds
    if seconds < 7200:
        return "%.0f min" % (seconds / 60.0)
    if seconds < 172800:
        return "%.1f h" % (seconds / 3600.0)
    return "%.1f days" % (seconds / 86400.0)


def _newest_mtime(paths: Iterable[str]) -> Optional[float]:
    newest = None
    for path in paths:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return newest


def run_state(
    run_dir: str,
    event_files: Sequence[str],
    now: Optional[float] = None,
    typical_gap: Optional[float] = None,
    assume: str = "auto",
) -> StateGuess:
    """Is the run in ``run_dir`` (with these event files) still being written?

    ``assume`` is ``"auto"`` (decide from the files), ``"finished"`` or ``"live"`` (forced,
    e.g. ``tblive report --assume``).  ``now`` defaults to the current time; ``typical_gap`` is
    the run's usual time between points in seconds, when known.  Never raises.
    """
    if assume in (FINISHED, LIVE):
        return StateGuess(assume, "forced by --assume %s" % assume)
    now = time.time() if now is None else now
    summary = os.path.join(run_dir, "summary.json")
    if os.path.isfile(summary):
        return StateGuess(
            FINISHED,
            "summary.json is there: tensorboardX writes it at the end of training",
            None,
        )
    newest = _newest_mtime(event_files)
    if newest is None:
        return StateGuess(UNKNOWN, "no event file could be examined")
    quiet = max(now - newest, 0.0)
    threshold = finished_threshold(typical_gap)
    if quiet >= threshold:
        return StateGuess(
            FINISHED,
            "no event file changed for %s; finished after %s without a change"
            % (duration_text(quiet), duration_text(threshold)),
            quiet,
        )
    return StateGuess(
        LIVE,
        "an event file changed %s ago; finished only after %s without a change"
        % (duration_text(quiet), duration_text(threshold)),
        quiet,
    )
