"""Alert state that survives restarts: what was announced, and what is still to deliver.

Contract:

* :func:`default_state_path` -- where ``tblive watch LOGDIR`` keeps its state by default:
  ``$XDG_STATE_HOME/tblive/`` (fallback ``~/.local/state/tblive/``), one file per absolute
  LOGDIR (``<last part>-<12 hex digits of its SHA-1>.json``).  ``--state-file PATH``
  overrides it.
* :class:`Outbox` -- the pending deliveries, one item per (alert, sink), thread-safe.  Each
  sink takes its items most urgent first (CRITICAL before the rest), in the order they were
  queued within one priority.  A sink holds at most ``limit`` items: beyond that the oldest
  item of the lowest priority is dropped (counted, logged).  Items of durable sinks are part
  of the state file, so a restart delivers what a stop, a crash or an outage left.
* :class:`StateStore` -- one JSON file ``{"version", "logdir", "tracker", "outbox"}`` written
  atomically (:func:`tblive.atomic.write_atomically`: temporary file + rename; mode
  :data:`FILE_MODE`) whenever the tracker or the outbox
  changes; ``path=None`` (or a path that is not a regular file, e.g. ``/dev/null``) keeps
  everything in memory (the in-process monitor, whose state goes into the framework
  checkpoint instead).  :meth:`StateStore.load` never raises: a missing
  file is a clean start, a corrupt or unreadable one a clean start with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from tblive.alert.message import Alert
from tblive.atomic import write_atomically
from tblive.judge.findings import Status
from tblive.textfmt import json_safe

logger = logging.getLogger(__name__)

STATE_FILE_VERSION = 1
#: file mode of the alert history tblive keeps: the events log and the state file (they name
#: hosts, paths and runs); reports follow the umask (see :func:`tblive.atomic.write_atomically`)
FILE_MODE = 0o600
#: default per-sink outbox bound
DEFAULT_OUTBOX_LIMIT = 1000


def default_state_path(logdir: str, environ: Optional[Dict[str, str]] = None) -> str:
    """``$XDG_STATE_HOME/tblive/<name>-<hash>.json`` for the absolute ``logdir``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    absolute = os.path.abspath(logdir)
    digest = hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(absolute))
    return os.path.join(base, "tblive", "%s-%s.json" % (name or "root", digest))


def priority_of(alert: Alert) -> int:
    """0 for CRITICAL alerts, 1 for the rest (smaller goes first)."""
    return 0 if alert.status >= Status.CRITICAL else 1


@dataclass
class OutboxItem:
    """One alert waiting for one sink."""

    id: int
    sink: str
    created: float  # seconds since the epoch (survives restarts)
    priority: int
    alert: Alert
    durable: bool = True
    attempts: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "sink": self.sink,
            "created": self.created,
            "priority": self.priority,
            "attempts": self.attempts,
            "alert": json_safe(self.alert.to_dict(), non_finite_as_text=True),
        }

    @classmethod
    def from_dict(cls, record: Dict[str, Any]) -> OutboxItem:
        return cls(
            id=int(record["id"]),
            sink=str(record["sink"]),
            created=float(record["created"]),
            priority=int(record.get("priority", 1)),
            alert=Alert.from_dict(record["alert"]),
            attempts=int(record.get("attempts", 0)),
        )


class Outbox:
    """Pending deliveries per sink; thread-safe; see the module docstring.

    ``on_change(urgent)`` is called (outside the lock) after every change that affects the
    durable items: ``urgent`` for a new alert (saved at once, before it is sent), not for a
    delivery or an attempt (the :class:`StateStore` coalesces those).  Waiting workers are woken by :meth:`put` and
    :meth:`wake`.
    """

    def __init__(
        self,
        limit: int = DEFAULT_OUTBOX_LIMIT,
        on_change: Optional[Callable[[bool], None]] = None,
    ) -> None:
        self.limit = max(int(limit), 1)
        self.on_change = on_change
        self._items: Dict[str, List[OutboxItem]] = {}
        self._next_id = 1
        self.cond = threading.Condition()
        self.overflowed: Dict[str, int] = {}

    def put(self, alert: Alert, sinks: List[Tuple[str, bool]], now: float) -> List[OutboxItem]:
        """Queue ``alert`` for each ``(sink name, durable)``; returns what overflow dropped."""
        dropped: List[OutboxItem] = []
        durable_change = False
        with self.cond:
            for sink, durable in sinks:
                item = OutboxItem(self._next_id, sink, now, priority_of(alert), alert, durable)
                self._next_id += 1
                queue = self._items.setdefault(sink, [])
                queue.append(item)
                durable_change = durable_change or durable
                if len(queue) > self.limit:
                    # the oldest of the least urgent priority goes
                    victim = max(queue, key=lambda i: (i.priority, -i.id))
                    queue.remove(victim)
                    dropped.append(victim)
                    self.overflowed[sink] = self.overflowed.get(sink, 0) + 1
            self.cond.notify_all()
        if durable_change:
            self._changed(True)
        return dropped

    def next_for(self, sink: str) -> Optional[OutboxItem]:
        """The most urgent item of ``sink`` (not removed), or None."""
        with self.cond:
            queue = self._items.get(sink)
            if not queue:
                return None
            return min(queue, key=lambda i: (i.priority, i.id))

    def remove(self, item: OutboxItem) -> bool:
        """Take ``item`` out (delivered or given up); False when it was not there."""
        with self.cond:
            queue = self._items.get(item.sink, [])
            try:
                queue.remove(item)
            except ValueError:
                return False
        if item.durable:
            self._changed(False)
        return True

    def touch(self, item: OutboxItem) -> None:
        """``item.attempts`` changed (persisted with the next save)."""
        if item.durable:
            self._changed(False)

    def pending(self, sink: Optional[str] = None) -> int:
        with self.cond:
            if sink is not None:
                return len(self._items.get(sink, []))
            return sum(len(q) for q in self._items.values())

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def records(self) -> List[Dict[str, Any]]:
        """The durable items as JSON-ready records, oldest first."""
        with self.cond:
            items = [i for q in self._items.values() for i in q if i.durable]
        return [i.to_dict() for i in sorted(items, key=lambda i: i.id)]

    def load(self, records: List[Dict[str, Any]], sinks: List[str]) -> int:
        """Restore ``records`` (from :meth:`records`) for the configured ``sinks``.

        Items for a sink that is no longer configured are dropped with one log line each;
        unreadable items are skipped with a warning.  Returns how many were restored.
        """
        restored = 0
        with self.cond:
            for record in records:
                try:
                    item = OutboxItem.from_dict(record)
                except (KeyError, TypeError, ValueError) as error:
                    logger.warning("state file: skipping an unreadable pending alert (%s)", error)
                    continue
                if item.sink not in sinks:
                    logger.warning(
                        "pending alert for run '%s' (%s) was for sink '%s', which is not "
                        "configured now; dropped",
                        item.alert.run,
                        item.alert.check,
                        item.sink,
                    )
                    continue
                self._items.setdefault(item.sink, []).append(item)
                self._next_id = max(self._next_id, item.id + 1)
                restored += 1
            self.cond.notify_all()
        return restored

    def _changed(self, urgent: bool) -> None:
        callback = self.on_change
        if callback is not None:
            callback(urgent)


class StateStore:
    """The state file (or memory, with ``path=None``); see the module docstring.

    ``tracker_state`` is the last snapshot the engine gave (:meth:`set_tracker_state`); the
    outbox is read at each save.  Saving is serialised by a lock and never raises (a failure
    is logged once until a save succeeds again).  :meth:`changed` is the outbox's callback:
    a new alert is saved at once; deliveries are coalesced into at most one save per
    ``coalesce`` seconds (a ``kill -9`` right after a delivery may repeat that delivery once
    after the restart; it never loses an alert).
    """

    def __init__(self, path: Optional[str], logdir: str = "", coalesce: float = 1.0) -> None:
        if path and os.path.exists(path) and not os.path.isfile(path):
            # ``--state-file /dev/null``: keep no state (and never replace a device node)
            logger.info("alert state file %s is not a regular file: state kept in memory", path)
            path = None
        self.path = path
        self.coalesce = coalesce
        self._last_save = 0.0
        self._timer: Optional[threading.Timer] = None
        self._timer_lock = threading.Lock()
        self.logdir = os.path.abspath(logdir) if logdir else ""
        self.outbox: Optional[Outbox] = None
        self.tracker_state: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()
        self._failing = False
        self.saves = 0

    def load(self) -> Dict[str, Any]:
        """``{"tracker": ..., "outbox": [...]}`` from the file; ``{}`` for a clean start."""
        if not self.path:
            return {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            logger.info("no alert state at %s yet: starting clean", self.path)
            return {}
        except (OSError, ValueError) as error:
            logger.warning(
                "alert state file %s is unreadable (%s): starting clean (alerts already sent "
                "may be sent again)",
                self.path,
                " ".join(str(error).split())[:200],
            )
            return {}
        if not isinstance(data, dict) or data.get("version") != STATE_FILE_VERSION:
            logger.warning(
                "alert state file %s has an unknown format: starting clean (alerts already "
                "sent may be sent again)",
                self.path,
            )
            return {}
        if self.logdir and data.get("logdir") and data.get("logdir") != self.logdir:
            logger.warning(
                "alert state file %s belongs to %s, not %s: using it anyway (--state-file)",
                self.path,
                data.get("logdir"),
                self.logdir,
            )
        return {"tracker": data.get("tracker"), "outbox": data.get("outbox") or []}

    def set_tracker_state(self, state: Dict[str, Any]) -> None:
        self.tracker_state = state

    def changed(self, urgent: bool = True) -> None:
        """The outbox changed: save now (``urgent``), or within ``coalesce`` seconds."""
        if not self.path:
            return
        if urgent or time.monotonic() - self._last_save >= self.coalesce:
            self.save()
            return
        with self._timer_lock:
            if self._timer is None:
                delay = max(self.coalesce - (time.monotonic() - self._last_save), 0.01)
                self._timer = threading.Timer(delay, self._save_later)
                self._timer.daemon = True
                self._timer.start()

    def _save_later(self) -> None:
        with self._timer_lock:
            self._timer = None
        self.save()

    def flush(self) -> bool:
        """Cancel a pending coalesced save and save now (shutdown)."""
        with self._timer_lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(1.0)
        return self.save()

    def save(self) -> bool:
        """Write the state file now; True on success (always True in memory)."""
        if not self.path:
            return True
        with self._lock:
            self._last_save = time.monotonic()
            data = {
                "version": STATE_FILE_VERSION,
                "logdir": self.logdir,
                "saved": time.time(),
                "tracker": self.tracker_state or {},
                "outbox": self.outbox.records() if self.outbox is not None else [],
            }
            try:
                write_atomically(
                    self.path, json.dumps(data, ensure_ascii=False, allow_nan=False), FILE_MODE
                )
            except (OSError, ValueError) as error:
                if not self._failing:
                    logger.warning(
                        "cannot write the alert state file %s: %s (alerts are still delivered; "
                        "a restart may repeat some)",
                        self.path,
                        error,
                    )
                self._failing = True
                return False
            if self._failing:
                logger.info("alert state file %s written again", self.path)
            self._failing = False
            self.saves += 1
            return True
