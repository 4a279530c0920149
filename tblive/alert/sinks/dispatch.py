"""Deliver alerts to sinks off the caller's thread, with bounded retries and a clean shutdown.

Contract:

* ``AlertDispatcher(sinks)`` starts one daemon worker thread per sink, each with its own
  bounded queue, so a slow or dead Slack never delays the JSON-lines log or the caller
  (watchdog's thread, the trainer's loop).
* :meth:`AlertDispatcher.submit` is non-blocking and thread-safe; it never raises. When a
  sink's queue is full the alert is dropped for that sink (logged, counted).
* Each alert is tried up to ``max_attempts`` times per sink, waiting ``backoff * 2**k``
  seconds (capped by ``max_backoff``) between attempts. Exceptions from sinks never escape:
  each failed attempt is logged as a warning (sink name + error text; sinks are responsible
  for keeping secrets out of their error messages) and counted.
* :meth:`AlertDispatcher.close` stops accepting alerts, lets the workers drain what is queued
  until ``timeout`` seconds have passed (retries are cut short at that deadline; what is still
  queued then is dropped and counted), joins the threads, and calls each sink's ``close()``.
  It returns True when everything was delivered or given up in time and every thread ended;
  a worker stuck in a sink call past the deadline is reported and left (it is a daemon
  thread, so it does not keep the process alive).
* Counters: ``counters[sink_name]`` is a :class:`SinkCounters` (delivered, failures = failed
  attempts, given_up = alerts abandoned after the last attempt, dropped); the totals are
  ``delivered``, ``failures``, ``given_up``, ``dropped``.

It is also a context manager (``with AlertDispatcher(...) as d:`` closes on exit).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from tblive.alert.tracker import Alert

logger = logging.getLogger(__name__)

_STOP = object()


@dataclass
class SinkCounters:
    """Per-sink delivery statistics (read them after ``close()`` for exact values)."""

    delivered: int = 0
    failures: int = 0
    given_up: int = 0
    dropped: int = 0


class _SinkWorker:
    """One sink, its queue and its thread."""

    def __init__(self, owner: AlertDispatcher, sink: Any, name: str, queue_size: int) -> None:
        self.owner = owner
        self.sink = sink
        self.name = name
        self.counters = SinkCounters()
        self._drop_lock = threading.Lock()  # ``dropped`` is counted from several threads
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=self._run, name="tblive-sink-%s" % name, daemon=True)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            if self.owner._past_deadline():
                self.count_dropped()
                continue
            self._deliver(item)

    def count_dropped(self) -> None:
        with self._drop_lock:
            self.counters.dropped += 1

    def _deliver(self, alert: Alert) -> None:
        owner = self.owner
        for attempt in range(1, owner.max_attempts + 1):
            try:
                self.sink.send(alert)
            except Exception as exc:  # a sink must never take the worker down
                self.counters.failures += 1
                retry = attempt < owner.max_attempts and not owner._past_deadline()
                logger.warning(
                    "alert sink '%s' failed (attempt %d/%d) for run '%s' %s: %s; %s",
                    self.name,
                    attempt,
                    owner.max_attempts,
                    alert.run,
                    alert.kind,
                    _one_line(exc),
                    "will retry" if retry else "giving up on this alert",
                )
                if not retry:
                    self.counters.given_up += 1
                    return
                owner._pause(min(owner.backoff * (2 ** (attempt - 1)), owner.max_backoff))
                if owner._past_deadline():
                    self.counters.given_up += 1
                    logger.warning(
                        "alert sink '%s': shutdown deadline reached; giving up on the alert "
                        "for run '%s'",
                        self.name,
                        alert.run,
                    )
                    return
            else:
                self.counters.delivered += 1
                return


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return "%s: %s" % (type(exc).__name__, text[:500]) if text else type(exc).__name__


def _unique_names(sinks: Sequence[Any]) -> List[str]:
    names: List[str] = []
    for index, sink in enumerate(sinks):
        base = str(getattr(sink, "name", "") or type(sink).__name__ or "sink%d" % index)
        name, suffix = base, 2
        while name in names:
            name = "%s-%d" % (base, suffix)
            suffix += 1
        names.append(name)
    return names


class AlertDispatcher:
    """Fan alerts out to sinks on worker threads; see the module docstring."""

    def __init__(
        self,
        sinks: Sequence[Any],
        max_attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        queue_size: int = 1000,
    ) -> None:
        self.max_attempts = max(int(max_attempts), 1)
        self.backoff = max(float(backoff), 0.0)
        self.max_backoff = max(float(max_backoff), 0.0)
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._deadline: Optional[float] = None
        self._workers = [
            _SinkWorker(self, sink, name, max(int(queue_size), 1))
            for sink, name in zip(sinks, _unique_names(sinks))
        ]
        for worker in self._workers:
            worker.thread.start()

    # -- public API -------------------------------------------------------------------------

    @property
    def sink_names(self) -> List[str]:
        return [worker.name for worker in self._workers]

    @property
    def counters(self) -> Dict[str, SinkCounters]:
        return {worker.name: worker.counters for worker in self._workers}

    @property
    def delivered(self) -> int:
        return sum(w.counters.delivered for w in self._workers)

    @property
    def failures(self) -> int:
        return sum(w.counters.failures for w in self._workers)

    @property
    def given_up(self) -> int:
        return sum(w.counters.given_up for w in self._workers)

    @property
    def dropped(self) -> int:
        return sum(w.counters.dropped for w in self._workers)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for every sink; returns at once and never raises."""
        try:
            with self._lock:
                if self._closed:
                    logger.debug("alert for run '%s' submitted after close; dropped", alert.run)
                    return
                for worker in self._workers:
                    try:
                        worker.queue.put_nowait(alert)
                    except queue.Full:
                        worker.count_dropped()
                        logger.warning(
                            "alert sink '%s' is %d alerts behind; dropped an alert for run '%s'",
                            worker.name,
                            worker.queue.maxsize,
                            alert.run,
                        )
        except Exception:  # never raise into the caller (watchdog thread, training loop)
            logger.exception("could not queue an alert")

    def submit_all(self, alerts: Sequence[Alert]) -> None:
        """``submit`` each alert in order."""
        for alert in alerts:
            self.submit(alert)

    def close(self, timeout: float = 5.0) -> bool:
        """Drain queued alerts for at most ``timeout`` seconds, stop the workers, close sinks.

        Idempotent. Returns True when every worker ended in time and nothing was dropped at
        shutdown.
        """
        with self._lock:
            if self._closed:
                return all(not w.thread.is_alive() for w in self._workers)
            self._closed = True
            self._deadline = time.monotonic() + max(float(timeout), 0.0)
            dropped_before = self.dropped
            for worker in self._workers:
                self._put_stop(worker)
        self._closing.set()
        clean = True
        for worker in self._workers:
            remaining = self._deadline - time.monotonic()
            worker.thread.join(max(remaining, 0.0) + 0.05)
            if worker.thread.is_alive():
                clean = False
                logger.warning(
                    "alert sink '%s' is still busy after the %.1fs shutdown deadline; "
                    "abandoning %d queued alert(s)",
                    worker.name,
                    timeout,
                    max(worker.queue.qsize() - 1, 0),  # minus the stop marker
                )
        for worker in self._workers:
            if worker.thread.is_alive():
                continue  # the sink may still be in use
            close = getattr(worker.sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    logger.warning(
                        "alert sink '%s' failed to close: %s", worker.name, _one_line(exc)
                    )
        lost = self.dropped - dropped_before
        if lost:
            clean = False
            logger.warning("dropped %d undelivered alert(s) at shutdown", lost)
        return clean

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- used by workers --------------------------------------------------------------------

    @staticmethod
    def _put_stop(worker: _SinkWorker) -> None:
        while True:
            try:
                worker.queue.put_nowait(_STOP)
                return
            except queue.Full:  # make room: the oldest queued alert is dropped
                try:
                    worker.queue.get_nowait()
                    worker.count_dropped()
                except queue.Empty:
                    pass

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, but never past the shutdown deadline."""
        end = time.monotonic() + seconds
        while True:
            limit = end if self._deadline is None else min(end, self._deadline)
            remaining = limit - time.monotonic()
            if remaining <= 0:
                return
            if not self._closing.is_set():
                self._closing.wait(remaining)  # wakes early on close() to honour the deadline
            else:
                time.sleep(remaining)
