"""JSON-lines events log (``--events-log``): one JSON object per alert per line, whole lines only.

Fields: ``time, run, kind, status, previous, check, step, host, title, message, findings[...],
key_metric, values, changes[...]`` (and ``runs[...]`` for the start-up digest; see
:meth:`tblive.alert.message.Alert.to_dict`). Non-finite floats become the strings ``"nan"``,
``"inf"``, ``"-inf"`` so every line is strict JSON; numpy scalars become Python numbers
(:func:`tblive.textfmt.json_safe`).

Whole lines only: each line is written with one ``write`` on a file opened ``O_APPEND``; when
the write fails or is short (a full disk), the file is truncated back to where the line began
and the error is raised, so the dispatcher retries the alert later (it stays in the outbox).
A reader never sees half a line, and no alert is written twice. A file tblive creates gets
mode 0o600 (like the final report and the state file); an existing file keeps its mode.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Optional, Union

from tblive.alert.message import Alert
from tblive.alert.state import FILE_MODE
from tblive.textfmt import json_safe


def alert_line(alert: Alert) -> bytes:
    """The events-log line of ``alert`` (UTF-8, ending in a newline)."""
    record = json_safe(alert.to_dict(), non_finite_as_text=True)
    return (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


class JsonlSink:
    """Appends each alert as one JSON line to ``path``; thread-safe; ``close()`` the file."""

    def __init__(self, path: Union[str, Path], name: str = "jsonl") -> None:
        self.name = name
        self.path = Path(path)
        self._fd: Optional[int] = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(
                str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
            )
        return self._fd

    def send(self, alert: Alert) -> None:
        line = alert_line(alert)
        with self._lock:
            fd = self._open()
            start = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(
                        errno.ENOSPC, "short write (%d of %d bytes)" % (written, len(line))
                    )
            except OSError:
                self._truncate(fd, start)
                raise

    def _truncate(self, fd: int, size: int) -> None:
        """Take a partial line back out; if that fails, drop the descriptor (reopen later)."""
        try:
            if os.fstat(fd).st_size > size:
                os.ftruncate(fd, size)
        except OSError:
            self.close_locked()

    def close_locked(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
