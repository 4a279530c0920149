"""Command sink (``--on-critical``): run a shell command when a run goes bad enough.

The command runs through the shell, **once per alert**, for alerts whose status is at least
``on`` (default CRITICAL) and whose kind is one of ``kinds`` (default: problem, worse,
reminder, stalled, crashed; never for recovered/resumed/finished); a start-up digest runs it once
per run in it that qualifies. It receives the alert in environment variables:

``TBLIVE_RUN, TBLIVE_STATUS, TBLIVE_CHECK, TBLIVE_MESSAGE (alert.text), TBLIVE_STEP
("" if unknown), TBLIVE_KIND, TBLIVE_HOST``

Its environment is tblive's minus secrets: ``SLACK_*`` and every variable whose name looks
like a credential (``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``WEBHOOK``, ``API_KEY``,
``APIKEY``, ``CREDENTIAL``, ``PRIVATE_KEY``, ``AUTH`` in the name) are removed unless
``pass_secrets`` (``--on-critical-env-secrets``) is set.

It runs in its own process group, is killed (with its children) after ``timeout`` seconds,
and :meth:`CommandSink.close` (shutdown) kills the groups still running. A non-zero exit or a
timeout raises :class:`CommandFailed`, a permanent error: it is logged with the exit code and
never re-run (a command such as ``scancel`` must not run twice). The command line itself is
never logged (it may hold credentials).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from typing import Dict, List, Mapping, Optional, Sequence

from tblive.alert.message import FINISHED, RECOVERED, RESUMED, STARTUP, Alert
from tblive.alert.sinks import PermanentDeliveryError
from tblive.judge.findings import Status

DEFAULT_KINDS = ("problem", "worse", "reminder", "stalled", "crashed")
_NEVER = (RECOVERED, RESUMED, FINISHED)
_SECRET_NAME = re.compile(
    r"^SLACK_|TOKEN|SECRET|PASSWORD|PASSWD|WEBHOOK|API_?KEY|CREDENTIAL|PRIVATE_KEY|AUTH",
    re.IGNORECASE,
)


def scrubbed_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``environ`` (default: this process's) without secret-looking variables (see module)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not _SECRET_NAME.search(k)}


class CommandFailed(PermanentDeliveryError):
    """The command exited non-zero or ran past its timeout (not retried)."""


class CommandSink:
    """Runs ``command`` (a shell string) for alerts at or above ``on``."""

    def __init__(
        self,
        command: str,
        on: Status = Status.CRITICAL,
        timeout: float = 60.0,
        kinds: Sequence[str] = DEFAULT_KINDS,
        name: str = "command",
        pass_secrets: bool = False,
    ) -> None:
        if not command.strip():
            raise ValueError("--on-critical: the command is empty")
        self.name = name
        self.command = command
        self.on = on
        self.timeout = timeout
        self.kinds = tuple(k for k in kinds if k not in _NEVER)
        self.pass_secrets = pass_secrets
        self.runs = 0
        self._running: Dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closed = False

    def wants(self, alert: Alert) -> bool:
        """Whether this alert triggers the command (a start-up digest: any run in it)."""
        if alert.kind == STARTUP:
            return any(self.wants(child) for child in alert.runs)
        return alert.kind in self.kinds and alert.status >= self.on

    def environment(self, alert: Alert) -> Dict[str, str]:
        """The (scrubbed) process environment plus the ``TBLIVE_*`` variables for ``alert``."""
        env = dict(os.environ) if self.pass_secrets else scrubbed_environment()
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
        if alert.kind == STARTUP:
            failures: List[str] = []
            for child in alert.runs:
                if self.wants(child):
                    try:
                        self._run(child)
                    except CommandFailed as error:
                        failures.append(str(error))
            if failures:
                raise CommandFailed("; ".join(failures))
            return
        if self.wants(alert):
            self._run(alert)

    def _run(self, alert: Alert) -> None:
        posix = os.name == "posix"
        with self._lock:
            if self._closed:
                raise CommandFailed("not run for run '%s': tblive is shutting down" % alert.run)
            process = subprocess.Popen(
                self.command,
                shell=True,
                env=self.environment(alert),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=posix,
            )
            self._running[process.pid] = process
            self.runs += 1
        try:
            try:
                _, stderr = process.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill(process, posix)
                process.communicate()
                raise CommandFailed(
                    "command for run '%s' timed out after %gs and was killed (not re-run)"
                    % (alert.run, self.timeout)
                ) from None
        finally:
            with self._lock:
                self._running.pop(process.pid, None)
        if process.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            how = (
                "was killed by signal %d" % -process.returncode
                if process.returncode < 0
                else "exited with code %d" % process.returncode
            )
            raise CommandFailed(
                "command for run '%s' %s (not re-run)%s"
                % (alert.run, how, (": " + " | ".join(tail)) if tail else "")
            )

    def close(self) -> None:
        """Kill the process groups of commands still running (shutdown)."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
        for process in running:
            _kill(process, os.name == "posix")


def _kill(process: subprocess.Popen, posix: bool) -> None:
    try:
        if posix and sys.platform != "win32":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
