"""Slack sink through slack-sdk: an incoming webhook, or a bot token plus a channel.

Contract:

* ``SlackSink(webhook_url=...)`` posts with ``slack_sdk.webhook.WebhookClient``;
  ``SlackSink(token=..., channel=...)`` posts with ``slack_sdk.WebClient.chat_postMessage``.
  ``base_url`` points the bot-token client at another API root (tests, Slack-compatible
  servers); it must end with ``/api/``-like root (``http://127.0.0.1:8080/api/``).
  The environment (``SLACK_WEBHOOK_URL``, ``SLACK_BOT_TOKEN``, ``SLACK_API_BASE_URL``) is read by
  :meth:`tblive.alert.engine.SinkSettings.from_environment`, not here.
* Messages are Block Kit (:func:`build_blocks`: header with status emoji and title, fields
  run/status/host/step, one bullet per finding, the key metric's sparkline) and always carry
  the plain ``text`` fallback (:func:`fallback_text`).
* Transport retries are slack-sdk's retry handlers, bounded and configurable: connection
  errors, HTTP 500/503 (``ServerErrorRetryHandler``, when the installed slack-sdk has it)
  and HTTP 429 honouring ``Retry-After`` (``RateLimitErrorRetryHandler``, which slack-sdk
  leaves off by default). After them, a non-OK answer raises :class:`SlackDeliveryError`
  so the dispatcher retries/counts it.
* Secrets never reach logs: slack-sdk logs through a logger with a :class:`RedactingFilter`
  that knows the URL and token, and every error raised from :meth:`SlackSink.send` is a
  :class:`SlackDeliveryError` whose message is redacted (the original exception is not
  chained). ``repr(sink)`` shows no secret.
* slack_sdk is imported only when a sink is built.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from tblive.alert.sinks import RedactingFilter, redact, secret_variants
from tblive.alert.tracker import Alert

logger = logging.getLogger(__name__)

#: slack-sdk logs through this logger; its filter redacts every configured secret. Its level
#: is WARNING unless configured otherwise (slack-sdk dumps whole request bodies at DEBUG);
#: lower it to see requests and retries -- secrets stay redacted.
SDK_LOGGER_NAME = "tblive.alert.sinks.slack.sdk"
_SDK_FILTER = RedactingFilter()
_sdk_logger = logging.getLogger(SDK_LOGGER_NAME)
_sdk_logger.addFilter(_SDK_FILTER)
if _sdk_logger.level == logging.NOTSET:
    _sdk_logger.setLevel(logging.WARNING)

_HEADER_LIMIT = 150
_SECTION_LIMIT = 3000
_TEXT_LIMIT = 3900


class SlackDeliveryError(RuntimeError):
    """Slack did not accept the message (message already redacted)."""


def _escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def fallback_text(alert: Alert) -> str:
    """The plain ``text`` of the message (notifications, clients without Block Kit)."""
    return _clip("%s %s" % (alert.emoji, alert.text), _TEXT_LIMIT)


def build_blocks(alert: Alert, max_findings: int = 10) -> List[Dict[str, Any]]:
    """Block Kit blocks for ``alert``: header, fields, findings, sparkline context."""
    blocks: List[Dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip("%s %s" % (alert.emoji, alert.title), _HEADER_LIMIT),
                "emoji": True,
            },
        }
    ]
    fields = [
        {"type": "mrkdwn", "text": "*Run*\n%s" % _escape(alert.run)},
        {"type": "mrkdwn", "text": "*Status*\n%s %s" % (alert.emoji, alert.status.name)},
        {"type": "mrkdwn", "text": "*Check*\n%s" % _escape(alert.check)},
    ]
    if alert.host:
        fields.append({"type": "mrkdwn", "text": "*Host*\n%s" % _escape(alert.host)})
    if alert.step is not None:
        fields.append({"type": "mrkdwn", "text": f"*Step*\n{alert.step:,}"})
    blocks.append({"type": "section", "fields": fields})

    lines = []
    if alert.message:
        lines.append(_escape(alert.message))
    shown = alert.findings[: max(max_findings, 0)]
    for finding in shown:
        lines.append("\u2022 *%s* %s" % (finding.status.name, _escape(finding.message)))
    if len(alert.findings) > len(shown):
        lines.append("\u2026 and %d more" % (len(alert.findings) - len(shown)))
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), _SECTION_LIMIT)},
            }
        )
    if alert.sparkline_values:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(_escape(alert.metric_line), 2000)}],
            }
        )
    return blocks


def _retry_handlers(
    connection_retries: int, server_error_retries: int, rate_limit_retries: int, interval: float
) -> List[Any]:
    """slack-sdk retry handlers with bounded counts and a fixed interval."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
    )
    from slack_sdk.http_retry.builtin_interval_calculators import (
        FixedValueRetryIntervalCalculator,
    )

    calculator = FixedValueRetryIntervalCalculator(interval)
    handlers: List[Any] = []
    if connection_retries > 0:
        handlers.append(
            ConnectionErrorRetryHandler(
                max_retry_count=connection_retries, interval_calculator=calculator
            )
        )
    if server_error_retries > 0:
        try:
            from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
        except ImportError:  # older slack-sdk: the dispatcher's own retries still apply
            logger.debug("slack-sdk has no ServerErrorRetryHandler; relying on dispatcher retries")
        else:
            handlers.append(
                ServerErrorRetryHandler(
                    max_retry_count=server_error_retries, interval_calculator=calculator
                )
            )
    if rate_limit_retries > 0:
        handlers.append(
            RateLimitErrorRetryHandler(
                max_retry_count=rate_limit_retries, interval_calculator=calculator
            )
        )
    return handlers


class SlackSink:
    """Posts alerts to Slack; see the module docstring.

    Exactly one of ``webhook_url`` or ``token`` (with ``channel``) must be given, else
    ValueError. ``timeout`` is per HTTP request; ``*_retries`` bound slack-sdk's retries
    (``retry_interval`` seconds apart; a 429 waits for its ``Retry-After``).
    """

    def __init__(
        self,
        webhook_url: Optional[str] = None,
        token: Optional[str] = None,
        channel: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = 10.0,
        connection_retries: int = 2,
        server_error_retries: int = 2,
        rate_limit_retries: int = 2,
        retry_interval: float = 1.0,
        max_findings: int = 10,
        name: str = "slack",
    ) -> None:
        if bool(webhook_url) == bool(token):
            raise ValueError(
                "Slack: give either a webhook URL (--slack-webhook / SLACK_WEBHOOK_URL) "
                "or a bot token (SLACK_BOT_TOKEN) with --slack-channel, not both or neither"
            )
        if token and not channel:
            raise ValueError("Slack: a bot token (SLACK_BOT_TOKEN) needs --slack-channel")
        self.name = name
        self.channel = channel
        self.max_findings = max_findings
        self.mode = "webhook" if webhook_url else "bot"
        self._secrets = secret_variants(webhook_url or "") + ([token] if token else [])
        _SDK_FILTER.add(self._secrets)
        handlers = _retry_handlers(
            connection_retries, server_error_retries, rate_limit_retries, retry_interval
        )
        if webhook_url:
            from slack_sdk.webhook import WebhookClient

            self._client: Any = WebhookClient(
                webhook_url, timeout=timeout, logger=_sdk_logger, retry_handlers=handlers
            )
        else:
            from slack_sdk import WebClient

            kwargs: Dict[str, Any] = {}
            if base_url:
                kwargs["base_url"] = base_url
            self._client = WebClient(
                token=token, timeout=timeout, logger=_sdk_logger, retry_handlers=handlers, **kwargs
            )

    def __repr__(self) -> str:
        return "SlackSink(mode=%r, channel=%r)" % (self.mode, self.channel)

    def send(self, alert: Alert) -> None:
        text = fallback_text(alert)
        blocks = build_blocks(alert, self.max_findings)
        try:
            if self.mode == "webhook":
                response = self._client.send(text=text, blocks=blocks)
                if response.status_code != 200:
                    raise SlackDeliveryError(
                        "Slack webhook answered HTTP %d: %s"
                        % (response.status_code, _clip(str(response.body), 200))
                    )
            else:
                self._client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
        except SlackDeliveryError as exc:
            raise SlackDeliveryError(redact(str(exc), self._secrets)) from None
        except Exception as exc:  # slack-sdk and urllib errors: re-raise without secrets
            raise SlackDeliveryError(
                redact(
                    "Slack %s delivery failed: %s: %s" % (self.mode, type(exc).__name__, exc),
                    self._secrets,
                )
            ) from None
