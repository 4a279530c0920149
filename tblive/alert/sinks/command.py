"""Command sink (``--on-critical``): run a shell command when a run goes bad enough.

The command runs through the shell for alerts whose status is at least ``on`` (default
CRITICAL) and whose kind is one of ``kinds`` (default: problem, worse, reminder, stalled;
never for recovered/resumed/finished). It receives the alert in environment variables:

``TBLIVE_RUN, TBLIVE_STATUS, TBLIVE_CHECK, TBLIVE_MESSAGE (alert.text), TBLIVE_STEP
("" if unknown), TBLIVE_KIND, TBLIVE_HOST``

It runs in its own process group and is killed (with its children, on POSIX) after
``timeout`` seconds. A non-zero exit or a timeout raises :class:`CommandFailed`, so the
dispatcher retries and counts it. The command line itself is never logged (it may hold
credentials).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Dict, Sequence

from tblive.alert.tracker import FINISHED, RECOVERED, RESUMED, Alert
from tblive.judge.findings import Status

DEFAULT_KINDS = ("problem", "worse", "reminder", "stalled")
_NEVER = (RECOVERED, RESUMED, FINISHED)


class CommandFailed(RuntimeError):
    """The command exited non-zero or ran past its timeout."""


class CommandSink:
    """Runs ``command`` (a shell string) for alerts at or above ``on``."""

    def __init__(
        self,
        command: str,
        on: Status = Status.CRITICAL,
        timeout: float = 60.0,
        kinds: Sequence[str] = DEFAULT_KINDS,
        name: str = "command",
    ) -> None:
        if not command.strip():
            raise ValueError("--on-critical: the command is empty")
        self.name = name
        self.command = command
        self.on = on
        self.timeout = timeout
        self.kinds = tuple(k for k in kinds if k not in _NEVER)

    def wants(self, alert: Alert) -> bool:
        """Whether this alert triggers the command."""
        return alert.kind in self.kinds and alert.status >= self.on

    def environment(self, alert: Alert) -> Dict[str, str]:
        """The process environment plus the ``TBLIVE_*`` variables for ``alert``."""
        env = dict(os.environ)
        env.update(
            {
                "TBLIVE_RUN": alert.run,
                "TBLIVE_STATUS": alert.status.name,
                "TBLIVE_CHECK": alert.check,
                "TBLIVE_MESSAGE": alert.text,
                "TBLIVE_STEP": "" if alert.step is None else str(alert.step),
                "TBLIVE_KIND": alert.kind,
                "TBLIVE_HOST": alert.host,
            }
        )
        return env

    def send(self, alert: Alert) -> None:
        if not self.wants(alert):
            return
        posix = os.name == "posix"
        process = subprocess.Popen(
            self.command,
            shell=True,
            env=self.environment(alert),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=posix,
        )
        try:
            _, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(process, posix)
            process.communicate()
            raise CommandFailed(
                "command for run '%s' timed out after %gs and was killed"
                % (alert.run, self.timeout)
            ) from None
        if process.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise CommandFailed(
                "command for run '%s' exited with code %d%s"
                % (alert.run, process.returncode, (": " + " | ".join(tail)) if tail else "")
            )


def _kill(process: subprocess.Popen, posix: bool) -> None:
    try:
        if posix and sys.platform != "win32":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
