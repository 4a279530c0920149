"""What ``tblive watch`` is asked to do: :class:`WatchOptions`, checked before anything starts.

Contract:

* :class:`WatchOptions` holds what ``tblive watch`` parses (LOGDIR, ``--config``, intervals,
  ``--poll``, alert settings, ``--final-report``, ``--prometheus`` ...) plus a few knobs for
  tests and embedding (``stop_event``, ``shutdown_timeout``, ``rescan_interval``,
  ``min_judge_gap``, ``finish_settle``, ``host``).  The semantics of each are the daemon's
  (:mod:`tblive.doors.watch`).
* Where alerts go is one :class:`~tblive.alert.settings.AlertSettings` (``alerts``); the
  shorthand keywords ``slack_webhook``, ``slack_token``, ``slack_channel``, ``slack_base_url``,
  ``on_critical`` and ``events_log`` are folded into it at construction, not stored twice.
* :meth:`WatchOptions.validate` raises ValueError with one line naming the bad option (LOGDIR
  is a file, a non-positive ``--interval`` / ``--poll`` / ``--stall-after``); it reads nothing
  but LOGDIR's type.  Alert settings are validated by the daemon, which may be given its own
  sinks instead.
"""

from __future__ import annotations

import os
import threading
from dataclasses import InitVar, dataclass, field
from typing import Optional

from tblive.alert.settings import AlertSettings
from tblive.judge.config import Config

__all__ = ["WatchOptions"]


@dataclass
class WatchOptions:
    """Everything ``tblive watch`` needs; see :mod:`tblive.doors.watch` for the semantics."""

    logdir: str
    config: Optional[Config] = None
    config_path: Optional[str] = None  # the --config file, re-read on SIGHUP
    expected_steps: Optional[int] = None  # --expected-steps (re-applied after a reload)
    interval: float = 60.0
    poll_interval: Optional[float] = None  # None: native observer (inotify); seconds: polling
    alerts: AlertSettings = field(default_factory=AlertSettings)  # sinks, state file, delivery
    final_report: Optional[str] = None
    cooldown: float = 3600.0
    stall_after: Optional[float] = None
    verify_payload: bool = False
    exit_when_finished: bool = False
    prometheus: Optional[str] = None  # HOST:PORT to serve /metrics on
    # -- not on the command line: embedding, tests, benchmarks --
    stop_event: Optional[threading.Event] = None  # set it to stop (checked at least every 1 s)
    shutdown_timeout: float = 10.0  # bounded wait for pending alerts at shutdown
    rescan_interval: Optional[float] = None  # backstop rescan; default clamp(interval/2, 1, 30)
    min_judge_gap: float = 0.25  # judge a growing run at most this often
    finish_settle: float = 2.0  # quiet time after a close / summary.json before "finished"
    host: Optional[str] = None  # host name shown in alerts (default: this machine's)
    # -- shorthands folded into ``alerts`` (embedding, tests); not stored twice --
    slack_webhook: InitVar[Optional[str]] = None
    slack_token: InitVar[Optional[str]] = None
    slack_channel: InitVar[Optional[str]] = None
    slack_base_url: InitVar[Optional[str]] = None
    on_critical: InitVar[Optional[str]] = None
    events_log: InitVar[Optional[str]] = None

    def __post_init__(self, *shorthands: Optional[str]) -> None:
        names = ("slack_webhook", "slack_token", "slack_channel", "slack_base_url")
        names += ("on_critical", "events_log")
        for name, value in zip(names, shorthands):
            if value is not None:
                setattr(self.alerts, name, value)

    def sink_settings(self) -> AlertSettings:
        return self.alerts

    def validate(self) -> None:
        """Raise ValueError (one line) for options the daemon cannot run with."""
        if os.path.exists(self.logdir) and not os.path.isdir(self.logdir):
            raise ValueError("%s: not a directory" % self.logdir)
        if self.interval <= 0:
            raise ValueError("--interval must be positive (got %g)" % self.interval)
        if self.poll_interval is not None and self.poll_interval <= 0:
            raise ValueError("--poll must be positive (got %g)" % self.poll_interval)
        if self.stall_after is not None and self.stall_after <= 0:
            raise ValueError("--stall-after must be positive (got %g)" % self.stall_after)

    def rescan_every(self) -> float:
        """Seconds between backstop rescans: ``rescan_interval``, else clamp(interval/2, 1, 30)."""
        if self.rescan_interval is not None:
            return float(self.rescan_interval)
        return min(max(self.interval / 2.0, 1.0), 30.0)
