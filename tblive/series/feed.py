"""Series sinks and the one restart rule every door applies before points reach them.

A *series sink* is any object with ``update_many(steps, values, wall_times)`` and
``rewind(step) -> points discarded``: :class:`tblive.series.stats.MetricStats` for bounded
statistics, or :class:`SeriesPoints` when every point must be kept (tests, exports).
:class:`SeriesFeed` sits in front of a sink and applies the restart rule, so the reader (event
files) and the in-process monitor (trainer values) feed statistics the same way.

The rule (TensorBoard's before file versions): a series rewinds only on a restart -- a
``SessionLog.START`` or a step strictly below the series' last step -- and then forgets its
points at steps >= that step.  A point at the same step as the last one is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Protocol, Tuple

import numpy as np

__all__ = ["SeriesFeed", "SeriesPoints", "SeriesSink"]


class SeriesSink(Protocol):
    """Where a series' points go, in order."""

    def update_many(self, steps, values, wall_times=None) -> None: ...

    def rewind(self, step: int) -> int:
        """Forget the points at steps >= ``step``; return how many points were discarded."""
        ...


@dataclass
class SeriesPoints:
    """Every point of one series, with the same rewind rule as the statistics."""

    _steps: List[np.ndarray] = field(default_factory=list)
    _values: List[np.ndarray] = field(default_factory=list)
    _walls: List[np.ndarray] = field(default_factory=list)

    def update_many(self, steps, values, wall_times=None) -> None:
        steps = np.asarray(steps, dtype=np.int64)
        self._steps.append(steps)
        self._values.append(np.asarray(values, dtype=np.float64))
        walls = np.full(steps.shape[0], np.nan) if wall_times is None else wall_times
        self._walls.append(np.asarray(walls, dtype=np.float64))

    def update(self, step: int, value: float, wall_time: Optional[float] = None) -> None:
        """Append one point (the in-process monitor's path)."""
        wall = np.nan if wall_time is None else wall_time
        self.update_many(np.array([step]), np.array([value]), np.array([wall]))

    def rewind(self, step: int) -> int:
        steps, values, walls = self.arrays()
        keep = steps < step
        self._steps, self._values, self._walls = [steps[keep]], [values[keep]], [walls[keep]]
        return int(steps.shape[0] - np.count_nonzero(keep))

    @property
    def last_step(self) -> Optional[int]:
        """Step of the last point kept (None when empty)."""
        for chunk in reversed(self._steps):
            if chunk.shape[0]:
                return int(chunk[-1])
        return None

    def arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, wall_times) of every point kept, in order."""
        if not self._steps:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        if len(self._steps) > 1:
            self._steps = [np.concatenate(self._steps)]
            self._values = [np.concatenate(self._values)]
            self._walls = [np.concatenate(self._walls)]
        return self._steps[0], self._values[0], self._walls[0]

    def __len__(self) -> int:
        return sum(chunk.shape[0] for chunk in self._steps)


class SeriesFeed:
    """Feeds one series' sink in write order with the restart rule every door shares.

    A series rewinds only on a restart: a ``SessionLog.START`` (:meth:`restart`) or a point
    whose step is strictly below the series' last step (a resume from a checkpoint).  The
    sink then forgets its points at steps >= that step.  A point at the same step as the
    last one is one more measurement (CleanRL's episodic returns, repeated evaluations) and
    is kept.  ``rewinds`` counts the rewinds that discarded points, ``discarded`` the points
    they discarded (as the sinks report them).

    The reader feeds decoded batches (:meth:`add_many`; they are gathered into batches of up to
    ``BATCH`` points, since each ``update_many`` call has a fixed cost, and handed over at the
    latest by :meth:`flush`), the in-process monitor single values (:meth:`add`, for sinks that
    also have ``update(step, value, wall_time)``).
    """

    BATCH = 65536

    __slots__ = ("sink", "last_step", "rewinds", "discarded", "_pending", "_pending_points")

    def __init__(self, sink: SeriesSink) -> None:
        self.sink = sink
        self.last_step: Optional[int] = None
        self.rewinds = 0
        self.discarded = 0
        self._pending: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_points = 0

    def _rewind(self, step: int) -> None:
        self.flush()
        gone = self.sink.rewind(step)
        if gone is None or gone > 0:  # a sink that does not count is taken at its word
            self.rewinds += 1
            self.discarded += int(gone or 0)
        last = getattr(self.sink, "last_step", step - 1)
        self.last_step = None if last is None else int(last)

    def add(self, step: int, value: float, wall_time: Optional[float] = None) -> None:
        """Append one point (after any rewind its step calls for)."""
        if self._pending:
            self.flush()
        if self.last_step is not None and step < self.last_step:
            self._rewind(step)
        self.sink.update(step, value, wall_time)  # type: ignore[attr-defined]
        self.last_step = step

    def add_many(self, steps: np.ndarray, values: np.ndarray, walls: np.ndarray) -> None:
        """Append points in order; each run of non-decreasing steps is one batch."""
        if steps.shape[0] == 0:
            return
        cuts = (np.flatnonzero(np.diff(steps) < 0) + 1).tolist() if steps.shape[0] > 1 else []
        bounds = [0] + cuts + [steps.shape[0]]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            first = int(steps[lo])
            if self.last_step is not None and first < self.last_step:
                self._rewind(first)
            self._pending.append((steps[lo:hi], values[lo:hi], walls[lo:hi]))
            self._pending_points += hi - lo
            self.last_step = int(steps[hi - 1])
            if self._pending_points >= self.BATCH:
                self.flush()

    def restart(self, step: int) -> None:
        """A ``SessionLog.START`` at ``step``: forget the points at steps >= it."""
        if self.last_step is not None and self.last_step >= step:
            self._rewind(step)

    def flush(self) -> None:
        """Hand the gathered points to the sink."""
        if not self._pending:
            return
        pending, self._pending, self._pending_points = self._pending, [], 0
        if len(pending) == 1:
            self.sink.update_many(*pending[0])
        else:
            self.sink.update_many(*(np.concatenate(parts) for parts in zip(*pending)))
