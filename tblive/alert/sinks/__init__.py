"""Where alerts go: console/log, JSON-lines file, Slack, a shell command.

Contract of a sink (:class:`Sink`): a ``name`` (used in logs and counters) and
``send(alert)`` which delivers one :class:`~tblive.alert.tracker.Alert` or raises. Sinks never
retry on their own (one retry layer: the dispatcher's). An exception with a true
``permanent`` attribute (:class:`PermanentDeliveryError`) is not retried; one with a
``retry_after`` (seconds) sets the next attempt's delay. Optional attributes: ``durable``
(default True: undelivered alerts are kept in the outbox of the state file; the console sets
False), ``wants(alert)`` (False: the alert is not queued for this sink), ``close()`` (called
on shutdown). The :class:`~tblive.alert.sinks.dispatch.AlertDispatcher` runs each sink on its
own worker thread, logs and counts failures, and never lets an exception escape.

Secrets (Slack webhook URL, bot token) must never reach a log line or an exception message
that may be logged: use :func:`redact` / :class:`RedactingFilter`.

Importing this package is cheap: the concrete sinks live in submodules and are imported
lazily through attribute access (``tblive.alert.sinks.SlackSink``); slack_sdk itself is only
imported when a :class:`~tblive.alert.sinks.slack.SlackSink` is built.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Iterable, List, Optional
from urllib.parse import quote

if TYPE_CHECKING:  # pragma: no cover
    from tblive.alert.tracker import Alert

try:  # Python 3.8 has typing.Protocol
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol, runtime_checkable  # type: ignore[assignment]

REDACTED = "<redacted>"


class DeliveryError(RuntimeError):
    """A sink could not deliver; ``permanent``: retrying cannot help; ``retry_after``: seconds
    to wait before the next attempt (a rate limit), or None."""

    permanent = False

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Delivery failed for a reason retries cannot fix (bad token, unknown channel, ...)."""

    permanent = True


@runtime_checkable
class Sink(Protocol):
    """Something that delivers alerts; ``send`` may raise, the dispatcher catches."""

    name: str

    def send(self, alert: Alert) -> None: ...  # pragma: no cover


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret (and the variants :func:`secret_variants` adds
    when the secrets came from it) replaced by ``<redacted>``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


#: pieces of a secret shorter than this are not redacted on their own (they would blank out
#: ordinary words); a whitespace-split secret leaves such pieces only around its whitespace
_MIN_PIECE = 6


def secret_variants(secret: str) -> List[str]:
    """The secret plus the forms of it that tend to show up in logs on their own.

    For a URL (webhook): the path after the host (``/services/T/B/XYZ``), which urllib and
    http.client may print without scheme and host. For every secret: its percent-encoded and
    ``repr``-escaped forms, the secret with its whitespace removed, and each whitespace-separated
    piece (a tab or newline pasted into a secret splits it wherever it is printed).
    """
    if not secret:
        return []
    forms = [secret]
    if "://" in secret:
        after_scheme = secret.split("://", 1)[1]
        if "/" in after_scheme:
            path = "/" + after_scheme.split("/", 1)[1]
            if len(path) > 1:
                forms.append(path)
    variants: List[str] = []
    for form in forms:
        candidates = [
            form,
            quote(form, safe="/:"),
            quote(form, safe=""),
            form.encode("unicode_escape").decode("ascii", "replace"),
            repr(form)[1:-1],
            "".join(form.split()),
        ]
        candidates.extend(piece for piece in form.split() if len(piece) >= _MIN_PIECE)
        for candidate in candidates:
            if candidate and candidate not in variants:
                variants.append(candidate)
    return variants


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites a record's message with the secrets redacted.

    Attach it to a logger handed to a third-party client (slack_sdk's ``logger=``): records
    logged directly on that logger are rendered, redacted, and passed on.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact ``secrets`` from now on."""
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw text
            message = str(record.msg)
        clean = redact(message, self._secrets)
        if clean != message or record.args:
            record.msg = clean
            record.args = ()
        if record.exc_info:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self._secrets
            )
            record.exc_info = None
        return True


_LAZY = {
    "ConsoleSink": "tblive.alert.sinks.console",
    "JsonlSink": "tblive.alert.sinks.jsonl",
    "SlackSink": "tblive.alert.sinks.slack",
    "CommandSink": "tblive.alert.sinks.command",
    "AlertDispatcher": "tblive.alert.sinks.dispatch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'tblive.alert.sinks' has no attribute %r" % name)
    return getattr(importlib.import_module(module), name)


__all__ = [
    "REDACTED",
    "DeliveryError",
    "PermanentDeliveryError",
    "RedactingFilter",
    "Sink",
    "redact",
    "secret_variants",
    *_LAZY,
]
