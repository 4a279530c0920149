"""JSON-lines events log (``--events-log``): one JSON object per alert per line.

Fields: ``time, run, kind, status, previous, check, step, host, title, message, findings[...],
key_metric, values`` (see :meth:`tblive.alert.tracker.Alert.to_dict`). Non-finite floats become
the strings ``"nan"``, ``"inf"``, ``"-inf"`` so every line is strict JSON; numpy scalars
become Python numbers. The file is opened in append mode on first use (parent directories
created), each line is flushed at once, so ``tail -f`` and a crash both see complete lines.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import IO, Any, Optional, Union

from tblive.alert.tracker import Alert


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as strings and unknown objects made serialisable."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return json_safe(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return json_safe(tolist())
    return str(value)


class JsonlSink:
    """Appends each alert as one JSON line to ``path``; thread-safe; ``close()`` the file."""

    def __init__(self, path: Union[str, Path], name: str = "jsonl") -> None:
        self.name = name
        self.path = Path(path)
        self._file: Optional[IO[str]] = None
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        line = json.dumps(json_safe(alert.to_dict()), ensure_ascii=False, allow_nan=False)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
