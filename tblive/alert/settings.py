"""Where alerts go and how they are delivered: the one settings type of every door.

Contract:

* :class:`AlertSettings` is the single description of the alert sinks and of delivery, shared
  by ``tblive watch`` (the CLI builds it from flags + environment), the daemon and the
  in-process :class:`~tblive.doors.monitor.Monitor`.  Secrets (webhook URL, bot token) never
  appear in its ``repr``.
* :meth:`AlertSettings.from_env` completes explicit values from the environment
  (``SLACK_WEBHOOK_URL``, ``SLACK_BOT_TOKEN``, ``SLACK_API_BASE_URL``): the one place the
  environment is read for alert settings.
* :meth:`AlertSettings.validate` checks everything that can be checked before the first alert
  and raises :class:`SettingsError` (a ValueError) with one line naming the setting and what is
  wrong: a malformed webhook URL or base URL, a bot token without a channel (or a channel
  without a token), an events log or state file path that is a directory or not writable,
  an empty ``--on-critical`` command, non-positive timeouts.  Nothing is created by it.
  :func:`check_output_file` is the same check for other files (``--final-report``).
* :meth:`AlertSettings.channels` describes the active channels for the start-up log line,
  without secrets (``["log", "slack webhook hooks.slack.com", "events log alerts.jsonl"]``).
* :func:`build_sinks` turns settings into sink objects (console first).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional
from urllib.parse import urlsplit

from tblive.errors import TbliveError

#: default maximum age of an undelivered alert in the outbox (seconds): one day
DEFAULT_MAX_AGE = 24 * 3600.0
#: default timeout of the ``--on-critical`` command (seconds)
DEFAULT_COMMAND_TIMEOUT = 60.0


class SettingsError(TbliveError, ValueError):
    """A setting that cannot work; the message is one line, naming the setting."""


@dataclass
class AlertSettings:
    """Alert sinks and delivery knobs; every field optional (the log sink is always there).

    ``state_file``: where alert state and the outbox persist ("" or None: the default path for
    the daemon, memory only for the monitor; see :mod:`tblive.alert.state`).
    ``max_age``: seconds an undelivered alert is retried before it is given up.
    ``command_timeout``: seconds the ``on_critical`` command may run.
    ``command_secrets``: pass the full environment (including ``SLACK_*`` and other
    secret-looking variables) to the command (``--on-critical-env-secrets``).
    ``slack_timeout``: seconds per Slack HTTP request.
    """

    slack_webhook: Optional[str] = field(default=None, repr=False)  # secrets: never in a repr
    slack_token: Optional[str] = field(default=None, repr=False)
    slack_channel: Optional[str] = None
    slack_base_url: Optional[str] = None
    on_critical: Optional[str] = field(default=None, repr=False)  # may hold credentials
    events_log: Optional[str] = None
    state_file: Optional[str] = None
    max_age: float = DEFAULT_MAX_AGE
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    command_secrets: bool = False
    slack_timeout: float = 10.0

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **explicit: Any
    ) -> AlertSettings:
        """Explicit values (keyword arguments named like the fields; None = unset), completed
        from ``SLACK_WEBHOOK_URL``, ``SLACK_BOT_TOKEN`` and ``SLACK_API_BASE_URL``.

        The bot token is taken from the environment only when no webhook is set (a webhook
        wins; a token needs a channel, which :meth:`validate` checks).
        """
        env: Mapping[str, str] = os.environ if environ is None else environ
        values = {k: v for k, v in explicit.items() if v is not None}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError("unknown alert settings: %s" % ", ".join(sorted(unknown)))
        settings = cls(**values)
        if not settings.slack_webhook:
            settings.slack_webhook = env.get("SLACK_WEBHOOK_URL") or None
        if not settings.slack_token and not settings.slack_webhook:
            settings.slack_token = env.get("SLACK_BOT_TOKEN") or None
        if not settings.slack_base_url:
            settings.slack_base_url = env.get("SLACK_API_BASE_URL") or None
        return settings

    # Backwards-compatible name.
    from_environment = from_env

    @property
    def slack_mode(self) -> Optional[str]:
        """``"webhook"``, ``"bot"`` or None (no Slack)."""
        if self.slack_webhook:
            return "webhook"
        if self.slack_token or self.slack_channel:
            return "bot"
        return None

    def validate(self) -> AlertSettings:
        """Raise :class:`SettingsError` (one line) for a set-up that cannot work; see module."""
        if self.slack_webhook:
            _check_url(
                self.slack_webhook, "the Slack webhook URL (--slack-webhook / SLACK_WEBHOOK_URL)"
            )
        elif self.slack_channel and not self.slack_token:
            raise SettingsError(
                "--slack-channel needs a bot token in SLACK_BOT_TOKEN (or use --slack-webhook)"
            )
        elif self.slack_token and not self.slack_channel:
            raise SettingsError(
                "SLACK_BOT_TOKEN is set but no channel: add --slack-channel '#channel'"
            )
        if self.slack_token and _has_space(self.slack_token):
            raise SettingsError("SLACK_BOT_TOKEN contains whitespace: check how it was set")
        if self.slack_base_url:
            _check_url(self.slack_base_url, "the Slack API base URL (--slack-base-url)")
        if self.on_critical is not None and not self.on_critical.strip():
            raise SettingsError("--on-critical: the command is empty")
        for value, what in ((self.events_log, "--events-log"), (self.state_file, "--state-file")):
            if value:
                check_output_file(value, what)
        for value, what in (
            (self.max_age, "the outbox maximum age"),
            (self.command_timeout, "the --on-critical timeout"),
            (self.slack_timeout, "the Slack timeout"),
        ):
            if not value > 0:
                raise SettingsError("%s must be positive (got %r)" % (what, value))
        return self

    def channels(self) -> List[str]:
        """The active channels, for one start-up log line; never shows a secret."""
        active = ["log"]
        if self.slack_webhook:
            host = urlsplit(self.slack_webhook.strip()).hostname or "?"
            active.append("slack webhook (%s)" % host)
        elif self.slack_token and self.slack_channel:
            active.append("slack bot token -> %s" % self.slack_channel)
        if self.events_log:
            active.append("events log %s" % self.events_log)
        if self.on_critical:
            active.append("command on CRITICAL")
        return active


def _has_space(text: str) -> bool:
    return bool(re.search(r"\s", text))


def _check_url(url: str, what: str) -> None:
    if _has_space(url):
        raise SettingsError("%s contains whitespace (a pasted tab or newline?)" % what)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SettingsError("%s is not a URL" % what) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError("%s must start with https:// and name a host" % what)
    try:
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise SettingsError("%s has an invalid port" % what) from None


def check_output_file(path: str, what: str) -> None:
    """Raise :class:`SettingsError` unless ``path`` can be created or appended to: not a
    directory, not read-only, its (nearest existing) directory writable.  Creates nothing."""
    if os.path.isdir(path):
        raise SettingsError("%s %s is a directory, not a file" % (what, path))
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise SettingsError("%s %s is not writable" % (what, path))
        return
    directory = os.path.dirname(os.path.abspath(path))
    existing = directory
    while not os.path.exists(existing):  # created on first use: check the nearest ancestor
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise SettingsError("%s %s: %s is not a directory" % (what, path, existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError("%s %s: cannot create files in %s" % (what, path, existing))


def build_sinks(settings: AlertSettings) -> List[Any]:
    """The sinks ``settings`` asks for, console first.  Raises :class:`SettingsError` for an
    incomplete Slack set-up (validate first for the full check)."""
    from tblive.alert.sinks.console import ConsoleSink

    sinks: List[Any] = [ConsoleSink()]
    if settings.events_log:
        from tblive.alert.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(settings.events_log))
    mode = settings.slack_mode
    if mode is not None:
        from tblive.alert.sinks.slack import SlackSink

        extra: dict = {"timeout": settings.slack_timeout}
        if settings.slack_base_url:
            extra["base_url"] = settings.slack_base_url
        if mode == "webhook":
            sinks.append(SlackSink(webhook_url=settings.slack_webhook, **extra))
        elif settings.slack_token and settings.slack_channel:
            sinks.append(
                SlackSink(token=settings.slack_token, channel=settings.slack_channel, **extra)
            )
        else:
            raise SettingsError(
                "Slack needs --slack-webhook (or SLACK_WEBHOOK_URL), or SLACK_BOT_TOKEN "
                "with --slack-channel"
            )
    if settings.on_critical:
        from tblive.alert.sinks.command import CommandSink

        sinks.append(
            CommandSink(
                settings.on_critical,
                timeout=settings.command_timeout,
                pass_secrets=settings.command_secrets,
            )
        )
    return sinks
