"""Series sinks and the one restart rule every door applies before points reach them.

A *series sink* is any object with ``update_many(steps, values, wall_times)`` and
``rewind(step)``: :class:`tblive.series.stats.MetricStats` for bounded statistics, or
:class:`SeriesPoints` when every point must be kept (tests, exports).  :class:`SeriesFeed` sits in
front of a sink and applies the restart rule, so the reader (event files) and the in-process
monitor (trainer values) feed statistics the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Protocol, Tuple

import numpy as np

__all__ = ["SeriesFeed", "SeriesPoints", "SeriesSink"]


class SeriesSink(Protocol):
    """Where a series' points go, in order."""

    def update_many(self, steps, values, wall_times=None) -> None: ...

    def rewind(self, step: int) -> None: ...


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

    def rewind(self, step: int) -> None:
        steps, values, walls = self.arrays()
        keep = steps < step
        self._steps, self._values, self._walls = [steps[keep]], [values[keep]], [walls[keep]]

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

    A point whose step is not after the series' last step (a resume from a checkpoint, or a
    duplicate) first rewinds the sink to that step, so later points replace the earlier ones.
    The reader feeds decoded batches (:meth:`add_many`; they are gathered into batches of up to
    ``BATCH`` points, since each ``update_many`` call has a fixed cost, and handed over at the
    latest by :meth:`flush`), the in-process monitor single values (:meth:`add`, for sinks that
    also have ``update(step, value, wall_time)``).
    """

    BATCH = 65536

    __slots__ = ("sink", "last_step", "rewinds", "_pending", "_pending_points")

    def __init__(self, sink: SeriesSink) -> None:
        self.sink = sink
        self.last_step: Optional[int] = None
        self.rewinds = 0
        self._pending: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_points = 0

    def add(self, step: int, value: float, wall_time: Optional[float] = None) -> None:
        if self._pending:
            self.flush()
        if self.last_step is not None and step <= self.last_step:
            self.sink.rewind(step)
            self.rewinds += 1
        self.sink.update(step, value, wall_time)  # type: ignore[attr-defined]
        self.last_step = step

    def add_many(self, steps: np.ndarray, values: np.ndarray, walls: np.ndarray) -> None:
        """Append points in order; each run of increasing steps is one batch."""
        if steps.shape[0] == 0:
            return
        cuts = (np.flatnonzero(np.diff(steps) <= 0) + 1).tolist() if steps.shape[0] > 1 else []
        bounds = [0] + cuts + [steps.shape[0]]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            first = int(steps[lo])
            if self.last_step is not None and first <= self.last_step:
                self.flush()
                self.sink.rewind(first)
                self.rewinds += 1
            self._pending.append((steps[lo:hi], values[lo:hi], walls[lo:hi]))
            self._pending_points += hi - lo
            self.last_step = int(steps[hi - 1])
            if self._pending_points >= self.BATCH:
                self.flush()

    def restart(self, step: int) -> None:
        """A ``SessionLog.START`` at ``step``: forget the points at steps >= it."""
        if self.last_step is not None and self.last_step >= step:
            self.flush()
            self.sink.rewind(step)
            self.rewinds += 1
            self.last_step = step - 1

    def flush(self) -> None:
        """Hand the gathered points to the sink."""
        if not self._pending:
            return
        pending, self._pending, self._pending_points = self._pending, [], 0
        if len(pending) == 1:
            self.sink.update_many(*pending[0])
        else:
            self.sink.update_many(*(np.concatenate(parts) for parts in zip(*pending)))
