"""Where alerts go: console/log, JSON-lines file, Slack, a shell command.

Contract of a sink (:class:`Sink`): a ``name`` (used in logs and counters) and
``send(alert)`` which delivers one :class:`~tblive.alert.tracker.Alert` or raises. Sinks never
retry on their own beyond what their transport does (Slack's HTTP retry handlers); the
:class:`~tblive.alert.sinks.dispatch.AlertDispatcher` runs each sink on its own worker thread,
retries failed sends a bounded number of times, logs and counts failures, and never lets
an exception escape. A sink may have ``close()``; the dispatcher calls it on shutdown.

Secrets (Slack webhook URL, bot token) must never reach a log line or an exception message
that may be logged: use :func:`redact` / :class:`RedactingFilter`.

Importing this package is cheap: the concrete sinks live in submodules and are imported
lazily through attribute access (``tblive.alert.sinks.SlackSink``); slack_sdk itself is only
imported when a :class:`~tblive.alert.sinks.slack.SlackSink` is built.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Iterable, List

if TYPE_CHECKING:  # pragma: no cover
    from tblive.alert.tracker import Alert

try:  # Python 3.8 has typing.Protocol
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol, runtime_checkable  # type: ignore[assignment]

REDACTED = "<redacted>"


@runtime_checkable
class Sink(Protocol):
    """Something that delivers alerts; ``send`` may raise, the dispatcher catches."""

    name: str

    def send(self, alert: Alert) -> None: ...  # pragma: no cover


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret (and its path part, for URLs) replaced."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def secret_variants(secret: str) -> List[str]:
    """The secret plus the pieces of it that tend to show up in logs on their own.

    For a URL (webhook) that is the path after the host (``/services/T/B/XYZ``), which
    urllib and http.client may print without scheme and host.
    """
    if not secret:
        return []
    variants = [secret]
    if "://" in secret:
        after_scheme = secret.split("://", 1)[1]
        if "/" in after_scheme:
            path = "/" + after_scheme.split("/", 1)[1]
            if len(path) > 1:
                variants.append(path)
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


__all__ = ["REDACTED", "RedactingFilter", "Sink", "redact", "secret_variants", *_LAZY]
