"""Console/log sink: every alert becomes one log record on the ``tblive.alert.tracker`` logger.

Never prints; where the record ends up (stderr, a file) is the logging configuration's
business. Level: ERROR for CRITICAL, WARNING for WARNING, INFO otherwise (recovered,
resumed, finished OK).
"""

from __future__ import annotations

import logging
from typing import Optional

from tblive.alert.tracker import Alert
from tblive.judge.findings import Status

_LEVELS = {Status.CRITICAL: logging.ERROR, Status.WARNING: logging.WARNING, Status.OK: logging.INFO}


class ConsoleSink:
    """Logs ``alert.text`` (multi-line plain text) at a level matching its status."""

    def __init__(self, logger: Optional[logging.Logger] = None, name: str = "console") -> None:
        self.name = name
        self.durable = False  # a log line cannot be "pending": nothing to keep in the outbox
        self.logger = logger if logger is not None else logging.getLogger("tblive.alert.tracker")

    def send(self, alert: Alert) -> None:
        self.logger.log(_LEVELS.get(alert.status, logging.INFO), "%s", alert.text)
