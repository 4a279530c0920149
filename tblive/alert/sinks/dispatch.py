"""Deliver alerts to sinks off the caller's thread, through a durable outbox, one retry layer.

Contract:

* ``AlertDispatcher(sinks, outbox=...)`` starts one daemon worker thread per sink.  Each
  alert becomes one :class:`~tblive.alert.state.OutboxItem` per sink that wants it (a sink's
  optional ``wants(alert)``); durable sinks' items are saved in the state file by the
  outbox's ``on_change`` callback.  A slow or dead Slack never delays the events log or the
  caller (the daemon's loop, the trainer).
* :meth:`AlertDispatcher.submit` is non-blocking and thread-safe; it never raises.
* A worker takes its sink's most urgent item (CRITICAL first, then in order) and sends it:

  - success: removed from the outbox, counted ``delivered``;
  - an error with a true ``permanent`` attribute (bad token, unknown channel, HTTP 4xx other
    than 429, a command that exited non-zero): not retried; logged once per item with run,
    checks and reason; counted ``failed``;
  - any other error: the item stays first in line and is retried after a backoff
    (``backoff * 2**k`` capped by ``max_backoff``; a rate limit's ``retry_after`` if given).
    The first failure of an outage is logged once (WARNING); later ones at DEBUG; the first
    success after it logs a summary (how long, how many attempts failed, what is pending);
  - an item older than ``max_age`` seconds is given up: a WARNING names its run and checks;
    counted ``dropped``.  Overflow of a sink's outbox (its ``limit``) drops the oldest item of
    the lowest priority, counted ``dropped``.

  This is the only retry layer: sinks do not retry (Slack's client has no retry handlers).
* :meth:`AlertDispatcher.close` stops accepting alerts and lets the workers deliver until
  ``timeout`` seconds have passed; what is still pending then stays in the outbox (saved in
  the state file for the next start).  It logs one summary line (delivered / failed /
  pending / dropped), calls each sink's ``close()`` and returns True when nothing is pending,
  nothing was dropped, and every worker ended.
* Counters: ``counters[sink_name]`` is a :class:`SinkCounters`; the totals are properties.
* ``clock`` (seconds since the epoch, for item ages) and ``monotonic`` may be injected (tests).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from tblive.alert.message import Alert
from tblive.alert.state import DEFAULT_OUTBOX_LIMIT, Outbox, OutboxItem

logger = logging.getLogger(__name__)

#: default maximum age of an undelivered alert (seconds)
DEFAULT_MAX_AGE = 24 * 3600.0


@dataclass
class SinkCounters:
    """Per-sink delivery statistics (read them after ``close()`` for exact values)."""

    delivered: int = 0
    failures: int = 0  # failed attempts (transient and permanent)
    failed: int = 0  # items given up after a permanent error
    dropped: int = 0  # items given up for age or overflow

    @property
    def given_up(self) -> int:
        return self.failed + self.dropped


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return "%s: %s" % (type(exc).__name__, text[:500]) if text else type(exc).__name__


def _describe(alert: Alert) -> str:
    if alert.run:
        return "run '%s' (%s)" % (alert.run, alert.check or alert.kind)
    return "%s alert" % alert.kind


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


class _SinkWorker:
    """One sink and its thread."""

    def __init__(self, owner: AlertDispatcher, sink: Any, name: str) -> None:
        self.owner = owner
        self.sink = sink
        self.name = name
        self.durable = bool(getattr(sink, "durable", True))
        self.counters = SinkCounters()
        self.down_since: Optional[float] = None  # monotonic time of the outage's first failure
        self.down_failures = 0
        self.consecutive = 0
        self.next_try = 0.0  # monotonic
        self.busy = False
        self.thread = threading.Thread(target=self._run, name="tblive-sink-%s" % name, daemon=True)

    def wants(self, alert: Alert) -> bool:
        wants = getattr(self.sink, "wants", None)
        if not callable(wants):
            return True
        try:
            return bool(wants(alert))
        except Exception:
            return True

    def _run(self) -> None:
        owner = self.owner
        outbox = owner.outbox
        while True:
            with outbox.cond:
                while True:
                    if owner._past_deadline():
                        return
                    item = outbox.next_for(self.name)
                    if item is None and owner._closing.is_set():
                        return
                    wait = self.next_try - owner.monotonic()
                    if item is not None and wait <= 0:
                        break
                    if owner._deadline is not None:
                        remaining = owner._deadline - owner.monotonic()
                        wait = remaining if wait <= 0 else min(wait, remaining)
                    outbox.cond.wait(wait if wait > 0 else 0.5)
            self._handle(item)

    def _handle(self, item: OutboxItem) -> None:
        owner = self.owner
        alert = item.alert
        age = owner.clock() - item.created
        if age > owner.max_age:
            if owner.outbox.remove(item):
                self.counters.dropped += 1
                logger.warning(
                    "alert sink '%s': giving up the alert for %s after %.1f h undelivered "
                    "(maximum age %.1f h): %s",
                    self.name,
                    _describe(alert),
                    age / 3600.0,
                    owner.max_age / 3600.0,
                    alert.title,
                )
            return
        self.busy = True
        try:
            self.sink.send(alert)
        except Exception as exc:  # a sink must never take the worker down
            self._failed(item, exc)
        else:
            self._delivered(item)
        finally:
            self.busy = False

    def _delivered(self, item: OutboxItem) -> None:
        owner = self.owner
        if owner.outbox.remove(item):
            self.counters.delivered += 1
        self.consecutive = 0
        self.next_try = 0.0
        if self.down_since is not None:
            logger.warning(
                "alert sink '%s' is delivering again after %.0f s (%d failed attempt(s)); "
                "%d alert(s) still pending",
                self.name,
                max(owner.monotonic() - self.down_since, 0.0),
                self.down_failures,
                owner.outbox.pending(self.name),
            )
            self.down_since = None
            self.down_failures = 0

    def _failed(self, item: OutboxItem, exc: BaseException) -> None:
        owner = self.owner
        self.counters.failures += 1
        if getattr(exc, "permanent", False):
            if owner.outbox.remove(item):
                self.counters.failed += 1
            logger.error(
                "alert sink '%s' cannot deliver the alert for %s: %s (not retried)",
                self.name,
                _describe(item.alert),
                _one_line(exc),
            )
            return
        item.attempts += 1
        owner.outbox.touch(item)
        self.consecutive += 1
        delay = min(owner.backoff * (2 ** min(self.consecutive - 1, 30)), owner.max_backoff)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > 0:
            delay = min(float(retry_after), max(owner.max_backoff, owner.backoff))
        self.next_try = owner.monotonic() + delay
        self.down_failures += 1
        if self.down_since is None:
            self.down_since = owner.monotonic()
            logger.warning(
                "alert sink '%s' is failing: %s; alerts are kept and retried (with backoff, "
                "up to %.0f h) until it answers",
                self.name,
                _one_line(exc),
                owner.max_age / 3600.0,
            )
        else:
            logger.debug(
                "alert sink '%s' still failing (attempt %d for %s): %s",
                self.name,
                item.attempts,
                _describe(item.alert),
                _one_line(exc),
            )


class AlertDispatcher:
    """Fan alerts out to sinks on worker threads through an outbox; see the module docstring."""

    def __init__(
        self,
        sinks: Sequence[Any],
        outbox: Optional[Outbox] = None,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_age: float = DEFAULT_MAX_AGE,
        queue_size: int = DEFAULT_OUTBOX_LIMIT,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> None:
        self.outbox = outbox if outbox is not None else Outbox(queue_size)
        self.backoff = max(float(backoff), 0.0)
        self.max_backoff = max(float(max_backoff), 0.0)
        self.max_age = float(max_age)
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._deadline: Optional[float] = None
        self._workers = [
            _SinkWorker(self, sink, name) for sink, name in zip(sinks, _unique_names(sinks))
        ]
        self._started = False
        if start:
            self.start()

    def start(self) -> None:
        """Start the worker threads (once); pending outbox items are delivered first."""
        with self._lock:
            if self._started:
                return
            self._started = True
        for worker in self._workers:
            worker.thread.start()

    # -- public API -------------------------------------------------------------------------

    @property
    def sink_names(self) -> List[str]:
        return [worker.name for worker in self._workers]

    @property
    def sinks(self) -> Dict[str, Any]:
        """Sink name -> sink object, in the order given."""
        return {worker.name: worker.sink for worker in self._workers}

    @property
    def durable_sinks(self) -> List[str]:
        return [worker.name for worker in self._workers if worker.durable]

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
    def failed(self) -> int:
        return sum(w.counters.failed for w in self._workers)

    @property
    def given_up(self) -> int:
        return sum(w.counters.given_up for w in self._workers)

    @property
    def dropped(self) -> int:
        return sum(w.counters.dropped for w in self._workers)

    @property
    def pending(self) -> int:
        return self.outbox.pending()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for every sink that wants it; returns at once and never raises."""
        try:
            with self._lock:
                if self._closed:
                    logger.warning(
                        "alert for %s submitted after shutdown; not sent", _describe(alert)
                    )
                    return
            targets = [(w.name, w.durable) for w in self._workers if w.wants(alert)]
            if not targets:
                return
            dropped = self.outbox.put(alert, targets, self.clock())
            for item in dropped:
                for worker in self._workers:
                    if worker.name == item.sink:
                        worker.counters.dropped += 1
                logger.warning(
                    "alert sink '%s' has %d alerts waiting; dropped the oldest less urgent one "
                    "(%s)",
                    item.sink,
                    self.outbox.limit,
                    _describe(item.alert),
                )
        except Exception:  # never raise into the caller (watchdog thread, training loop)
            logger.exception("could not queue an alert")

    def submit_all(self, alerts: Sequence[Alert]) -> None:
        """``submit`` each alert in order."""
        for alert in alerts:
            self.submit(alert)

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending (True) or ``timeout`` seconds passed (False)."""
        end = time.monotonic() + max(timeout, 0.0)
        while time.monotonic() < end:
            if self.outbox.pending() == 0 and not any(w.busy for w in self._workers):
                return True
            time.sleep(0.01)
        return self.outbox.pending() == 0

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver for at most ``timeout`` seconds, stop the workers, close sinks; see module.

        Idempotent.  True when nothing is pending or was dropped and every worker ended.
        """
        with self._lock:
            if self._closed:
                return all(not w.thread.is_alive() for w in self._workers)
            self._closed = True
            self._deadline = self.monotonic() + max(float(timeout), 0.0)
        self._closing.set()
        self.outbox.wake()
        clean = True
        for worker in self._workers:
            if not worker.thread.is_alive():
                continue
            remaining = self._deadline - self.monotonic()
            worker.thread.join(max(remaining, 0.0) + 0.1)
            if worker.thread.is_alive():
                clean = False
                logger.warning(
                    "alert sink '%s' is still busy after the %.1f s shutdown deadline",
                    worker.name,
                    timeout,
                )
        for worker in self._workers:
            close = getattr(worker.sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    logger.warning(
                        "alert sink '%s' failed to close: %s", worker.name, _one_line(exc)
                    )
        pending = self.outbox.pending()
        summary = self.summary(durable_only=True)
        level = logging.INFO if not (pending or self.dropped or self.failed) else logging.WARNING
        if not any(summary.values()):
            level = logging.DEBUG  # nothing was ever sent (e.g. --test-alert)
        logger.log(
            level,
            "alerts at shutdown: %d delivered, %d failed, %d pending%s, %d dropped",
            summary["delivered"],
            summary["failed"],
            summary["pending"],
            " (kept in the state file for the next start)" if summary["pending"] else "",
            summary["dropped"],
        )
        return clean and pending == 0 and self.dropped == 0

    def summary(self, durable_only: bool = False) -> Dict[str, int]:
        """``delivered``, ``failed``, ``pending``, ``dropped`` over all sinks (or only those
        that keep undelivered alerts: the log sink's lines are not counted then)."""
        workers = [w for w in self._workers if w.durable or not durable_only]
        return {
            "delivered": sum(w.counters.delivered for w in workers),
            "failed": sum(w.counters.failed for w in workers),
            "pending": sum(self.outbox.pending(w.name) for w in workers),
            "dropped": sum(w.counters.dropped for w in workers),
        }

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self.monotonic() >= self._deadline
