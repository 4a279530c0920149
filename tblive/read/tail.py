"""File-system change notification for the live daemon: the only module that imports watchdog.

Contract:

* :class:`ChangeQueue` is a thread-safe, deduplicating queue of :class:`Change` records (a path
  and what happened to it).  Watchdog's thread only *puts* (a set insert under a lock); the
  daemon's loop *drains* everything pending in one call.  Memory is bounded by the number of
  distinct paths that changed since the last drain, never by the number of events.
* :class:`Tail` follows one directory tree with watchdog's native observer (inotify on Linux:
  an append + flush arrives as a ``modified`` event, the writer's ``close()`` as ``closed``) or,
  with ``poll_interval``, with watchdog's polling observer (``stat`` of every file each interval;
  needed on NFS/CIFS/GPFS/Lustre, where inotify never sees writes made by another host; there
  is no ``closed`` signal then).  The directory may not exist yet: :meth:`Tail.ensure_watching`
  (called by the daemon every second while it is missing) schedules the watch once it exists
  and drops it when the directory disappears.  Meanwhile the native observer also watches the
  nearest existing parent (not recursively) and reports a directory change when something on
  the way to the directory appears, so a LOGDIR created later is followed at once.  When the native observer cannot be used (inotify watch limit reached),
  the tail falls back to polling with a warning.
* Events are hints, not data: every change means "read this file from its saved offset to the
  end", which the daemon does.  Watchdog coalesces and can miss events (files created in a
  folder a moment after the folder), so the daemon also rescans the tree periodically.
* Events nobody needs are dropped in the handler: ``opened`` / ``closed_no_write`` (the daemon's
  own reads produce them, which would otherwise feed back into more reads), attribute changes
  and modifications of directories (their contents' own events carry the information).
* :meth:`Tail.stop` stops and joins the observer's threads (bounded wait); no thread is left.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

MODIFIED = "modified"
CREATED = "created"
DELETED = "deleted"
MOVED = "moved"
CLOSED = "closed"  # the writer closed the file (inotify IN_CLOSE_WRITE); never with polling
#: a write after a close within one drain (only the queue makes it): the writer reopened the file
REOPENED = "reopened"

_WANTED = frozenset({MODIFIED, CREATED, DELETED, MOVED, CLOSED})


@dataclass(frozen=True)
class Change:
    """One thing that happened to ``path`` (for a move, ``path`` is the destination)."""

    path: str
    kind: str
    is_directory: bool = False


class ChangeQueue:
    """Deduplicating hand-over from watchdog's thread to the daemon's loop.

    ``put`` never blocks on the consumer.  For one path, kinds are merged so that no
    information the daemon needs is lost: ``closed`` survives a later ``modified`` only if the
    modification came first; a write after a close replaces the ``closed`` by ``reopened``
    (the writer closed and opened the file again: some writers do that at every flush).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Dict[Tuple[str, bool], List[str]] = {}
        self._wakeup = threading.Event()

    def put(self, change: Change) -> None:
        key = (change.path, change.is_directory)
        with self._lock:
            kinds = self._pending.get(key)
            if kinds is None:
                self._pending[key] = [change.kind]
            else:
                if change.kind == MODIFIED and CLOSED in kinds:
                    kinds.remove(CLOSED)
                    if REOPENED not in kinds:
                        kinds.append(REOPENED)
                if change.kind not in kinds:
                    kinds.append(change.kind)
            self._wakeup.set()

    def wake(self) -> None:
        """Make a waiting :meth:`drain` return now (shutdown, signals)."""
        self._wakeup.set()

    def drain(self, timeout: Optional[float]) -> List[Change]:
        """Wait up to ``timeout`` seconds for changes, then return all pending ones (or [])."""
        if timeout is None or timeout > 0:
            self._wakeup.wait(timeout)
        with self._lock:
            self._wakeup.clear()
            pending, self._pending = self._pending, {}
        return [
            Change(path, kind, is_directory)
            for (path, is_directory), kinds in pending.items()
            for kind in kinds
        ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def _text(path: Any) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else str(path)


def _on_the_way(path: str, target: str) -> bool:
    """Whether ``path`` is ``target`` or one of its ancestors."""
    path = os.path.normpath(path)
    return target == path or target.startswith(path.rstrip(os.sep) + os.sep)


def _make_parent_handler(changes: ChangeQueue, target: str) -> Any:
    """Handler of the watch on an existing parent of a missing ``target``: reports (as a
    directory change) only what is on the way to ``target``."""
    from watchdog.events import FileSystemEventHandler

    class _ParentHandler(FileSystemEventHandler):  # type: ignore[misc]
        def dispatch(self, event: Any) -> None:
            if getattr(event, "event_type", "") not in (CREATED, MOVED):
                return
            path = _text(getattr(event, "dest_path", "") or event.src_path)
            if _on_the_way(path, target):
                changes.put(Change(path, CREATED, True))

    return _ParentHandler()


def _make_handler(changes: ChangeQueue) -> Any:
    from watchdog.events import FileSystemEventHandler

    class _Handler(FileSystemEventHandler):  # type: ignore[misc]
        """Runs on watchdog's thread: filter and enqueue, nothing else."""

        def dispatch(self, event: Any) -> None:
            kind = getattr(event, "event_type", "")
            if kind not in _WANTED:
                return
            is_directory = bool(getattr(event, "is_directory", False))
            if is_directory and kind in (MODIFIED, CLOSED):
                return
            if kind == MOVED:
                changes.put(Change(_text(event.src_path), DELETED, is_directory))
                path = _text(getattr(event, "dest_path", "") or event.src_path)
                changes.put(Change(path, MOVED, is_directory))
                return
            changes.put(Change(_text(event.src_path), kind, is_directory))

    return _Handler()


class Tail:
    """Follows ``path`` (recursively) and puts :class:`Change` records into ``changes``.

    ``poll_interval=None`` uses the platform's native observer; a number uses polling every
    that many seconds.
    """

    def __init__(
        self, path: str, changes: ChangeQueue, poll_interval: Optional[float] = None
    ) -> None:
        self.path = os.path.abspath(path)
        self.changes = changes
        self.poll_interval = poll_interval
        self._observer: Any = None
        self._watch: Any = None
        self._handler: Any = None
        self._parent_watch: Any = None  # (watch, directory) on a parent while path is missing
        self._lock = threading.Lock()
        self._fallback_note = ""

    @property
    def mode(self) -> str:
        """``"native"`` (inotify and friends) or ``"polling"``."""
        return "native" if self.poll_interval is None else "polling"

    @property
    def watching(self) -> bool:
        return self._watch is not None

    @property
    def closes_visible(self) -> bool:
        """Whether a writer's ``close()`` is reported (native observer on Linux only)."""
        if self.poll_interval is not None or self._observer is None:
            return False
        return type(self._observer).__name__ == "InotifyObserver"

    def _new_observer(self) -> Any:
        if self.poll_interval is None:
            from watchdog.observers import Observer

            return Observer()
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=max(float(self.poll_interval), 0.01))

    def start(self) -> None:
        """Start the observer thread and watch the directory if it already exists."""
        # watchdog's recursive inotify watch warns when a new folder's watch races with the
        # walk that adds it (HARL's nested add_scalars folders): harmless, and not ours to show
        warnings.filterwarnings(
            "ignore", message="Callback with id", category=RuntimeWarning, module="watchdog"
        )
        with self._lock:
            if self._observer is None:
                self._handler = _make_handler(self.changes)
                self._observer = self._new_observer()
                self._observer.daemon = True
                self._observer.start()
        self.ensure_watching()

    def ensure_watching(self) -> bool:
        """Schedule the watch when the directory exists, drop it when it vanished.

        Returns whether the directory is being watched now.  Never raises for file-system
        trouble (it is logged and retried on the next call).
        """
        with self._lock:
            if self._observer is None:
                return False
            exists = os.path.isdir(self.path)
            if self._watch is not None and not exists:
                logger.info("%s disappeared; waiting for it to come back", self.path)
                self._unschedule()
            if not exists:
                self._watch_parent()
                return False
            self._unwatch_parent()
            if self._watch is None:
                try:
                    self._watch = self._observer.schedule(self._handler, self.path, recursive=True)
                except OSError as error:
                    if self.poll_interval is None and error.errno in (errno.ENOSPC, errno.EMFILE):
                        self._fall_back_to_polling(error)
                    else:
                        logger.warning("cannot watch %s yet: %s", self.path, error)
                        self._watch = None
                        return False
                logger.info("following %s (%s)", self.path, self.describe())
            return self._watch is not None

    def _watch_parent(self) -> None:
        """Native observer only: watch the nearest existing parent of the missing path
        (caller holds the lock).  Best effort: a failure leaves the daemon's periodic check."""
        if self.poll_interval is not None or self._observer is None:
            return
        parent = os.path.dirname(self.path)
        while parent and not os.path.isdir(parent):
            up = os.path.dirname(parent)
            if up == parent:
                return
            parent = up
        if self._parent_watch is not None and self._parent_watch[1] == parent:
            return
        self._unwatch_parent()
        try:
            handler = _make_parent_handler(self.changes, self.path)
            watch = self._observer.schedule(handler, parent, recursive=False)
        except Exception as error:
            logger.debug("cannot watch %s for %s to appear: %s", parent, self.path, error)
            return
        self._parent_watch = (watch, parent)

    def _unwatch_parent(self) -> None:
        parent, self._parent_watch = self._parent_watch, None
        if parent is None or self._observer is None:
            return
        try:
            self._observer.unschedule(parent[0])
        except Exception as error:  # the parent is gone too: nothing to undo
            logger.debug("unschedule %s: %s", parent[1], error)

    def _fall_back_to_polling(self, error: OSError) -> None:
        """inotify watch/instance limit reached: poll instead (caller holds the lock)."""
        self.poll_interval = 5.0
        self._fallback_note = " after inotify failed: %s" % error
        logger.warning(
            "cannot use inotify on %s (%s; raise fs.inotify.max_user_watches); polling every "
            "%.0f s instead",
            self.path,
            error,
            self.poll_interval,
        )
        self._stop_observer(timeout=5.0)
        self._observer = self._new_observer()
        self._observer.daemon = True
        self._observer.start()
        self._watch = self._observer.schedule(self._handler, self.path, recursive=True)

    def describe(self) -> str:
        if self.poll_interval is None:
            name = type(self._observer).__name__ if self._observer is not None else "native"
            return "%s observer" % name.replace("Observer", "").lower()
        return "polling every %g s%s" % (self.poll_interval, self._fallback_note)

    def _unschedule(self) -> None:
        watch, self._watch = self._watch, None
        if watch is None or self._observer is None:
            return
        try:
            self._observer.unschedule(watch)
        except Exception as error:  # the watched directory is gone: nothing to undo
            logger.debug("unschedule %s: %s", self.path, error)

    def _stop_observer(self, timeout: float) -> bool:
        observer, self._observer = self._observer, None
        self._watch = None
        self._parent_watch = None
        if observer is None:
            return True
        try:
            observer.stop()
            observer.join(timeout)
        except Exception as error:
            logger.warning("stopping the file observer failed: %s", error)
        alive = observer.is_alive()
        if alive:
            logger.warning("the file observer did not stop within %.1f s", timeout)
        return not alive

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the observer's threads; True when they all ended in time."""
        with self._lock:
            return self._stop_observer(timeout)
