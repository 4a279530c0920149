"""The one run object every door shares: :class:`RunRecord`.

A run is what the report, the daemon and the in-process monitor each judge: a name, a path,
its series (tag -> :class:`~tblive.series.stats.MetricStats`), what the trainer saved about it
(the planned length, :class:`~tblive.read.provenance.Provenance`), its state (live / finished
and why), what reading it skipped or could not read, and its last verdict and roles.

* Read from files, a record wraps the reader's :class:`tblive.read.runs.Run` (``reader``), whose
  sinks *are* its series, issues and skipped counts; fed in-process (the monitor), it owns a
  plain ``series`` dict and has no files.
* :meth:`RunRecord.infer` reads the small files next to the logs (planned length, state);
  :meth:`RunRecord.judge` evaluates the series with the :class:`~tblive.judge.context.RunContext`
  built from them and the sibling runs handed in, and keeps the verdict.
* :func:`find_siblings` groups records into seeds of one configuration (see its docstring).
* :func:`new_stats` makes the statistics every door keeps per series.

Dependency direction: this module sits above read/, series/ and judge/ and below alert/,
render/ and doors/; it imports none of the latter.
"""

from __future__ import annotations

import os
import re
from collections import Counter, abc
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence

from tblive.judge.context import FINISHED, LIVE, UNKNOWN, RunContext
from tblive.judge.findings import Verdict
from tblive.judge.verdict import evaluate_with_roles
from tblive.read.provenance import Provenance, planned_length, reconcile, run_state
from tblive.read.provenance import typical_gap as estimate_gap
from tblive.series.stats import MetricStats

if TYPE_CHECKING:  # pragma: no cover
    from tblive.judge.config import Config
    from tblive.judge.roles import Roles
    from tblive.read.runs import Run

__all__ = ["ASSUME_CHOICES", "RunRecord", "find_siblings", "new_stats"]

#: ``tblive report --assume``: decide the state from the files, or force it
ASSUME_CHOICES = ("auto", FINISHED, LIVE)
#: source named when the planned length was given explicitly
EXPECTED_STEPS_SOURCE = "--expected-steps / grace.expected_steps"


def new_stats(name: str = "") -> MetricStats:
    """The statistics every door keeps per series (one place to tune their size)."""
    return MetricStats()


class _SinksView(abc.Mapping):  # type: ignore[type-arg]
    """The reader's series as a read-only mapping, without copying (sweeps hand every run's
    series to each of its siblings)."""

    __slots__ = ("_feeds",)

    def __init__(self, reader: Run) -> None:
        self._feeds = reader.feeds

    def __getitem__(self, tag: str) -> MetricStats:
        return self._feeds[tag].sink  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


class RunRecord:
    """One run as every door sees it (see the module docstring).

    ``stats`` (= ``series``) and ``run`` (= the record itself) keep the shape the renderers
    read: ``result.run.path``, ``result.run.skipped``, ``result.stats``.
    """

    def __init__(
        self,
        name: str,
        path: str = "",
        series: Optional[Dict[str, MetricStats]] = None,
        reader: Optional[Run] = None,
        provenance: Optional[Provenance] = None,
        state: str = UNKNOWN,
        state_reason: str = "",
    ) -> None:
        self.name = name
        self.path = path
        self.reader = reader
        self._series: Dict[str, MetricStats] = series if series is not None else {}
        self.provenance = provenance or Provenance()
        self.state = state
        self.state_reason = state_reason
        self.verdict: Optional[Verdict] = None
        self.roles: Optional[Roles] = None
        #: names of the sibling runs the last judgement compared this run with
        self.siblings: List[str] = []

    @classmethod
    def from_reader(cls, reader: Run) -> RunRecord:
        """The record of a run read from files (series, issues and skips come from ``reader``)."""
        return cls(reader.name, reader.path, reader=reader)

    # -- what was read ------------------------------------------------------------------

    @property
    def series(self) -> Mapping[str, MetricStats]:
        """Tag -> statistics (a live view of the reader's sinks, or the series fed in-process)."""
        if self.reader is not None:
            return _SinksView(self.reader)
        return self._series

    @property
    def stats(self) -> Mapping[str, MetricStats]:
        return self.series

    @property
    def run(self) -> RunRecord:
        return self

    @property
    def issues(self) -> List[Any]:
        return list(self.reader.issues) if self.reader is not None else []

    @property
    def skipped(self) -> Counter:
        return self.reader.skipped if self.reader is not None else Counter()

    @property
    def files(self) -> List[Any]:
        return list(self.reader.files) if self.reader is not None else []

    @property
    def restarts(self) -> Dict[str, int]:
        """``{"rewinds": n, "points_discarded": m}``: what restarts cost the series (reader)."""
        found = getattr(self.reader, "restarts", None) if self.reader is not None else None
        return dict(found) if found else {"rewinds": 0, "points_discarded": 0}

    @property
    def total_steps(self) -> int:
        steps = [s.last_step for s in self.series.values() if s.last_step is not None]
        return int(max(steps, default=0))

    @property
    def planned_steps(self) -> Optional[int]:
        return self.provenance.planned_steps

    @property
    def planned_source(self) -> str:
        return self.provenance.source

    def typical_gap(self) -> Optional[float]:
        """Seconds between points of the run's densest series, estimated from its event files'
        names and ages (:func:`tblive.read.provenance.typical_gap`); None if unknown."""
        points = max((stats.count for stats in self.series.values()), default=0)
        return estimate_gap([f.path for f in self.files], points)

    # -- what the trainer left next to the logs -----------------------------------------

    def set_planned(
        self, expected_steps: Optional[int], source: str = EXPECTED_STEPS_SOURCE
    ) -> None:
        """Use an explicit planned length (it overrides whatever the files say)."""
        if expected_steps and expected_steps > 0:
            self.provenance = Provenance(int(expected_steps), source)

    def infer_planned(self, expected_steps: Optional[int] = None) -> RunRecord:
        """The planned length: ``expected_steps`` (> 0) if given, else from the files next to
        the logs, checked against the steps read so far.  Never raises; returns the record."""
        if expected_steps and expected_steps > 0:
            self.set_planned(expected_steps)
        elif self.path:
            self.provenance = reconcile(planned_length(self.path), self.total_steps or None)
        return self

    def infer(
        self,
        expected_steps: Optional[int] = None,
        assume: str = "auto",
        now: Optional[float] = None,
    ) -> RunRecord:
        """Fill the planned length and the state from the files next to the logs.

        ``expected_steps`` (> 0) overrides the planned length found in files; ``assume`` is
        ``"auto"``, ``"finished"`` or ``"live"``.  Never raises; returns the record.
        """
        self.infer_planned(expected_steps)
        if self.path:
            files = [f.path for f in self.files]
            guess = run_state(self.path, files, now, self.typical_gap(), assume)
            self.state, self.state_reason = guess.state, guess.reason
        elif assume in (FINISHED, LIVE):
            self.state, self.state_reason = assume, "forced by --assume %s" % assume
        return self

    # -- judging ------------------------------------------------------------------------

    def context(self, siblings: Optional[Mapping[str, RunRecord]] = None) -> RunContext:
        """What the rules know of this run beyond its series (``siblings``: its sibling seeds,
        whose names are kept in :attr:`siblings` for the report)."""
        self.siblings = sorted(siblings or {})
        return RunContext(
            planned_steps=self.provenance.planned_steps,
            planned_source=self.provenance.source,
            state=self.state,
            state_reason=self.state_reason,
            siblings={name: record.series for name, record in (siblings or {}).items()},
        )

    def judge(
        self, config: Optional[Config] = None, siblings: Optional[Mapping[str, RunRecord]] = None
    ) -> Verdict:
        """Evaluate the series now; the verdict and roles are kept on the record."""
        verdict, roles = evaluate_with_roles(self.name, self.series, config, self.context(siblings))
        self.verdict, self.roles = verdict, roles
        return verdict

    def to_dict(self) -> Dict[str, Any]:
        """The run-level facts of the JSON report (planned length, state, siblings)."""
        return {
            "planned_steps": self.provenance.planned_steps,
            "planned_source": self.provenance.source or None,
            "planned_notes": list(self.provenance.notes),
            "state": self.state,
            "state_reason": self.state_reason,
            "siblings": list(self.siblings),
        }

    def __repr__(self) -> str:
        return "RunRecord(%r, series=%d, state=%s)" % (self.name, len(self.series), self.state)


# -- sibling seeds -----------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


def _parts(path: str, root: str) -> List[str]:
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:  # another drive (Windows)
        return []
    if rel in (".", "") or rel.startswith(".."):
        return []
    return rel.replace(os.sep, "/").split("/")


def find_siblings(records: Sequence[RunRecord], root: str) -> Dict[str, Dict[str, RunRecord]]:
    """Run name -> its siblings (name -> record): other seeds of the same configuration.

    Two runs under ``root`` are seeds of one configuration when (1) their paths relative to
    ``root`` have the same number of parts and differ in exactly one part, (2) in that part
    they differ only in numbers (``seed-1``/``seed-2``, ``run93``/``run107``,
    ``CartPole-v1_1``/``CartPole-v1_2``, a timestamp), and (3) they log the same set of
    series.  Runs whose folders differ in a word (``cuboid``/``cylinder``) or in two parts are
    not siblings.  A hyper-parameter folder that differs only in its number (``lr0.1`` vs
    ``lr0.2``, same seed folder below) cannot be told from a seed folder and is grouped; the
    peer check only ever warns.  Runs with no series have no siblings.
    """
    keyed: Dict[tuple, List[int]] = {}
    parts = [_parts(record.path, root) for record in records]
    tag_sets = [frozenset(record.series) for record in records]
    for index, mine in enumerate(parts):
        if not mine or not tag_sets[index]:
            continue
        for position, part in enumerate(mine):
            masked = list(mine)
            masked[position] = "\0" + _DIGITS.sub("#", part)
            keyed.setdefault((len(mine), position, tuple(masked), tag_sets[index]), []).append(
                index
            )
    result: Dict[str, Dict[str, RunRecord]] = {record.name: {} for record in records}
    for members in keyed.values():
        if len(members) < 2:
            continue
        for index in members:
            for other in members:
                if other != index and records[other].name != records[index].name:
                    result[records[index].name][records[other].name] = records[other]
    return result
