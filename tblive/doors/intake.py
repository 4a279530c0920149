"""The in-process hot path: a trainer's values into a lock-free queue, in microseconds.

Contract
--------
* :class:`Intake` is what the training thread calls (:class:`~tblive.doors.monitor.Monitor`
  is one): :meth:`Intake.log`, :meth:`Intake.log_scalar` and, for a wrapped ``add_scalars``
  (:mod:`tblive.doors.writers`), :meth:`Intake._log_group`.  Each converts every value to a
  Python float (:func:`to_float`), appends ``(series, step, value, wall_time)`` to a
  :class:`collections.deque` (atomic, no lock) and returns.
* It never raises: a value that cannot be converted is dropped, counted (``bad_values``) and
  logged once per series; a call that fails otherwise is counted (``hot_errors``) and logged
  once.  After :attr:`Intake.closed` turns True every call is ignored.
* ``step=None`` gets the series' own counter 0, 1, 2, ... (the event file records step 0 for
  each such point, where TensorBoard and the reader keep only the last).
* Only one thread takes points out (``queue.popleft``, the monitor thread); the queue holds at
  most ``queue_limit`` points and drops the oldest beyond that.  Nothing here knows
  statistics, verdicts or alerts.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Set, Tuple

__all__ = ["DEFAULT_QUEUE_LIMIT", "Intake", "Point", "to_float"]

logger = logging.getLogger(__name__)

#: entries the queue holds before the oldest are dropped (only if the monitor thread falls
#: hopelessly behind; about 100 bytes each)
DEFAULT_QUEUE_LIMIT = 1_000_000

_now = time.time
#: ``(series, step, value, wall_time)``
Point = Tuple[str, int, float, float]


def to_float(value: Any) -> float:
    """``value`` as a Python float: numbers, numpy scalars / 0-d arrays, 0-d torch tensors.

    Torch is not imported: an object with ``.detach`` and ``.item`` (a tensor, on any device)
    is converted with its own ``.item()`` -- for a CUDA tensor that is a device sync, the same
    the SummaryWriter already paid.  Raises TypeError/ValueError/RuntimeError for anything
    else (strings that are not numbers, tensors with several elements); callers count those.
    """
    kind = type(value)
    if kind is float:
        return value
    if kind is int or kind is bool:
        return float(value)
    if hasattr(value, "detach"):
        item = getattr(value, "item", None)
        if item is not None:
            return float(item())
    return float(value)


class Intake:
    """The hot path: values in, never an exception out; see the module docstring."""

    def __init__(self, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self._queue: Deque[Point] = deque(maxlen=max(int(queue_limit), 1000))
        self._auto_steps: Dict[str, int] = {}
        self._bad_values = 0
        self._bad_tags: Set[Any] = set()
        self._hot_errors = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once no more values are taken (the owner closed)."""
        return self._closed

    def log(self, step: Any, values: Mapping[str, Any], wall_time: Optional[float] = None) -> None:
        """Record ``{series: value}`` at ``step``; microseconds, never raises (ignored after close)."""
        if self._closed:
            return
        try:
            wall = _now() if wall_time is None else float(wall_time)
            if type(step) is not int:
                step = int(step)
            push = self._queue.append
            for tag, value in values.items():
                try:
                    push((tag, step, value if type(value) is float else to_float(value), wall))
                except Exception:
                    self._bad_value(tag, value)
        except Exception:
            self._hot_error()

    def log_scalar(
        self,
        tag: str,
        value: Any,
        step: Optional[Any] = None,
        wall_time: Optional[float] = None,
    ) -> None:
        """Record one value; ``step=None`` uses the series' own counter (0, 1, 2, ...)."""
        if self._closed:
            return
        try:
            if step is None:
                step = self._auto_steps.get(tag, -1) + 1
                self._auto_steps[tag] = step
            elif type(step) is not int:
                step = int(step)
            try:
                converted = value if type(value) is float else to_float(value)
            except Exception:
                self._bad_value(tag, value)
                return
            self._queue.append((tag, step, converted, _now() if wall_time is None else wall_time))
        except Exception:
            self._hot_error()

    def _log_group(
        self,
        series_of: Callable[[str, str], str],
        main_tag: str,
        values: Mapping[str, Any],
        step: Optional[Any],
        wall_time: Optional[float],
    ) -> None:
        """``add_scalars`` semantics: one wall time for the group; ``series_of(main_tag, key)``
        names each value's series (the attached writer's layout, :mod:`tblive.doors.writers`)."""
        if self._closed:
            return
        try:
            wall = _now() if wall_time is None else wall_time
            if step is not None and type(step) is not int:
                step = int(step)
            push = self._queue.append
            for key, value in values.items():
                name = series_of(main_tag, key)
                try:
                    converted = value if type(value) is float else to_float(value)
                except Exception:
                    self._bad_value(name, value)
                    continue
                if step is None:
                    point_step = self._auto_steps.get(name, -1) + 1
                    self._auto_steps[name] = point_step
                    push((name, point_step, converted, wall))
                else:
                    push((name, step, converted, wall))
        except Exception:
            self._hot_error()

    def _bad_value(self, tag: Any, value: Any) -> None:
        try:
            self._bad_values += 1
            if tag not in self._bad_tags:
                self._bad_tags.add(tag)
                logger.warning(
                    "tblive: %s: cannot use a value of type %s as a scalar; dropped (counted in "
                    "monitor.counters['bad_values'], logged once per series)",
                    tag,
                    type(value).__name__,
                )
        except Exception:
            pass

    def _hot_error(self) -> None:
        try:
            self._hot_errors += 1
            if self._hot_errors == 1:
                logger.exception("tblive: a log call failed; the value was dropped")
        except Exception:
            pass
