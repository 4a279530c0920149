"""Slack sink through slack-sdk: an incoming webhook, or a bot token plus a channel.

Contract:

* ``SlackSink(webhook_url=...)`` posts with ``slack_sdk.webhook.WebhookClient``;
  ``SlackSink(token=..., channel=...)`` posts with ``slack_sdk.WebClient.chat_postMessage``.
  ``base_url`` points the bot-token client at another API root (tests, Slack-compatible
  servers); it must end with ``/api/``-like root (``http://127.0.0.1:8080/api/``).
  The environment (``SLACK_WEBHOOK_URL``, ``SLACK_BOT_TOKEN``, ``SLACK_API_BASE_URL``) is read by
  :meth:`tblive.alert.settings.AlertSettings.from_env`, not here.
* Messages are Block Kit (:func:`build_blocks`: header with status emoji and title, fields
  run/status/host/step, one bullet per changed check (digest), run (start-up digest) or
  finding, the key metric's sparkline) and always carry
  the plain ``text`` fallback (:func:`fallback_text`).
* One attempt per ``send``: slack-sdk's own retry handlers are switched off (the dispatcher
  is the one retry layer, and slack-sdk's rate-limit sleep would overrun the shutdown
  deadline).  A failure raises :class:`SlackDeliveryError`: ``permanent`` for answers retrying
  cannot fix (``invalid_auth``, ``channel_not_found``, ``not_in_channel``, HTTP 4xx other than
  429, ...), with ``retry_after`` from a 429's ``Retry-After`` header; connection errors,
  timeouts and 5xx are transient.
* With a bot token, an alert carrying a ``picture`` (PNG bytes, attached by the engine for
  CRITICAL problems) gets it uploaded into the message's thread with ``files_upload_v2``; a
  failed upload is logged and does not fail the alert (the message is already there).
  Webhooks cannot upload files: they keep the text sparkline.
* Secrets never reach logs: slack-sdk logs through a logger with a :class:`RedactingFilter`
  that knows the URL and token, and every error raised from :meth:`SlackSink.send` is a
  :class:`SlackDeliveryError` whose message is redacted (the original exception is not
  chained). ``repr(sink)`` shows no secret.
* slack_sdk is imported only when a sink is built.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from tblive.alert.sinks import DeliveryError, RedactingFilter, redact, secret_variants
from tblive.alert.tracker import REMINDER, STARTUP, Alert

logger = logging.getLogger(__name__)

#: slack-sdk logs through this logger; its filter redacts every configured secret. Its level
#: is CRITICAL unless configured otherwise: slack-sdk logs an ERROR per failed request and
#: dumps whole request bodies at DEBUG, while the dispatcher already says "Slack is failing"
#: once per outage. Lower it to see requests -- secrets stay redacted.
SDK_LOGGER_NAME = "tblive.alert.sinks.slack.sdk"
_SDK_FILTER = RedactingFilter()
_sdk_logger = logging.getLogger(SDK_LOGGER_NAME)
_sdk_logger.addFilter(_SDK_FILTER)
if _sdk_logger.level == logging.NOTSET:
    _sdk_logger.setLevel(logging.CRITICAL)

_HEADER_LIMIT = 150
_SECTION_LIMIT = 3000
_TEXT_LIMIT = 3900


class SlackDeliveryError(DeliveryError):
    """Slack did not accept the message (message already redacted); see ``permanent``."""

    def __init__(
        self, message: str, permanent: bool = False, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(message, retry_after)
        self.permanent = permanent


#: Web API errors worth retrying; every other ``ok: false`` answer is permanent
_TRANSIENT_API_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)


def _retry_after(headers: Any) -> Optional[float]:
    try:
        for key, value in dict(headers or {}).items():
            if str(key).lower() == "retry-after":
                text = value[0] if isinstance(value, (list, tuple)) else value
                return max(float(text), 0.0)
    except (TypeError, ValueError):
        return None
    return None


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
    fields = []
    if alert.run:
        fields.append({"type": "mrkdwn", "text": "*Run*\n%s" % _escape(alert.run)})
    fields.append({"type": "mrkdwn", "text": "*Status*\n%s %s" % (alert.emoji, alert.status.name)})
    if alert.check:
        fields.append({"type": "mrkdwn", "text": "*Check*\n%s" % _escape(alert.check)})
    if alert.host:
        fields.append({"type": "mrkdwn", "text": "*Host*\n%s" % _escape(alert.host)})
    if alert.step is not None:
        fields.append({"type": "mrkdwn", "text": f"*Step*\n{alert.step:,}"})
    blocks.append({"type": "section", "fields": fields})

    lines = []
    if alert.message and alert.kind != STARTUP:
        lines.append(_escape(alert.message))
    digest = alert.kind == STARTUP or len(alert.changes) > 1 or alert.kind == REMINDER
    # a digest: one line per changed check (or per run); else one per finding
    items = alert.lines if digest else alert.findings
    limit = max(max_findings, 0) if not digest else max(max_findings, 30)
    for item in items[:limit]:
        if isinstance(item, str):  # "- [CRITICAL] Entropy: OK -> CRITICAL: ..."
            status, _, rest = item[3:].partition("] ")
            lines.append("\u2022 *%s* %s" % (status, _escape(rest)))
        else:
            lines.append("\u2022 *%s* %s" % (item.status.name, _escape(item.message)))
    if len(items) > limit:
        lines.append("\u2026 and %d more" % (len(items) - limit))
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


class SlackSink:
    """Posts alerts to Slack; see the module docstring.

    Exactly one of ``webhook_url`` or ``token`` (with ``channel``) must be given, else
    ValueError. ``timeout`` is per HTTP request.
    """

    def __init__(
        self,
        webhook_url: Optional[str] = None,
        token: Optional[str] = None,
        channel: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = 10.0,
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
        #: the engine attaches a PNG to CRITICAL alerts only for sinks that can post it
        self.wants_picture = self.mode == "bot"
        self.pictures_posted = 0
        self._secrets = secret_variants(webhook_url or "") + secret_variants(token or "")
        _SDK_FILTER.add(self._secrets)
        if webhook_url:
            from slack_sdk.webhook import WebhookClient

            self._client: Any = WebhookClient(
                webhook_url, timeout=timeout, logger=_sdk_logger, retry_handlers=[]
            )
        else:
            from slack_sdk import WebClient

            kwargs: Dict[str, Any] = {}
            if base_url:
                kwargs["base_url"] = base_url
            self._client = WebClient(
                token=token,
                timeout=timeout,
                logger=_sdk_logger,
                retry_handlers=[],
                **kwargs,
            )

    def __repr__(self) -> str:
        return "SlackSink(mode=%r, channel=%r)" % (self.mode, self.channel)

    def send(self, alert: Alert) -> None:
        text = fallback_text(alert)
        blocks = build_blocks(alert, self.max_findings)
        if self.mode == "webhook":
            self._send_webhook(text, blocks)
            return
        response = self._call(
            lambda: self._client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
        )
        picture = getattr(alert, "picture", None)
        if picture:
            self._upload(alert, picture, response)

    def _send_webhook(self, text: str, blocks: List[Dict[str, Any]]) -> None:
        response = self._call(lambda: self._client.send(text=text, blocks=blocks))
        status = int(response.status_code)
        if status == 200:
            return
        body = _clip(" ".join(str(response.body).split()), 200)
        if status == 429:
            raise SlackDeliveryError(
                self._clean("Slack webhook is rate limited (HTTP 429): %s" % body),
                retry_after=_retry_after(getattr(response, "headers", None)),
            )
        raise SlackDeliveryError(
            self._clean("Slack webhook answered HTTP %d: %s" % (status, body)),
            permanent=400 <= status < 500,
        )

    def _call(self, request: Any) -> Any:
        """Run one slack-sdk request; every failure becomes a redacted SlackDeliveryError."""
        try:
            return request()
        except Exception as exc:  # slack-sdk and urllib errors: re-raise without secrets
            raise self._classify(exc) from None

    def _classify(self, exc: BaseException) -> SlackDeliveryError:
        response = getattr(exc, "response", None)
        if response is not None and hasattr(response, "status_code"):  # SlackApiError
            status = int(getattr(response, "status_code", 0) or 0)
            data = getattr(response, "data", None)
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            what = error or "HTTP %d" % status
            if status == 429 or error in ("ratelimited", "rate_limited"):
                return SlackDeliveryError(
                    self._clean("Slack API is rate limited (%s)" % what),
                    retry_after=_retry_after(getattr(response, "headers", None)),
                )
            transient = status >= 500 or error in _TRANSIENT_API_ERRORS
            permanent = not transient
            hint = ""
            if error == "invalid_auth" or error == "not_authed" or error == "token_revoked":
                hint = ": the bot token (SLACK_BOT_TOKEN) is not valid"
            elif error == "channel_not_found":
                hint = ": no such channel %s (or the bot cannot see it)" % self.channel
            elif error == "not_in_channel":
                hint = ": invite the bot to %s (/invite @yourbot)" % self.channel
            return SlackDeliveryError(
                self._clean("Slack API refused the message: %s%s" % (what, hint)),
                permanent=permanent,
            )
        return SlackDeliveryError(
            self._clean("Slack %s delivery failed: %s: %s" % (self.mode, type(exc).__name__, exc))
        )

    def _upload(self, alert: Alert, picture: bytes, response: Any) -> None:
        """Upload ``picture`` into the thread of the posted message; never raises."""
        try:
            data = getattr(response, "data", None) or {}
            channel = data.get("channel") or self.channel
            thread = data.get("ts")
            self._client.files_upload_v2(
                channel=channel,
                thread_ts=thread,
                content=picture,
                filename="tblive-%s.png" % "".join(c if c.isalnum() else "_" for c in alert.run),
                title=_clip(alert.title, 200),
            )
            self.pictures_posted += 1
        except Exception as exc:
            logger.warning(
                "Slack: the alert for run '%s' was posted, but its picture could not be "
                "uploaded: %s",
                alert.run,
                self._clean(" ".join(("%s: %s" % (type(exc).__name__, exc)).split())[:300]),
            )

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)
