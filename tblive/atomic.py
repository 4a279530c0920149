"""Writing a file so that readers see the old content or the new, never half of it.

Used by every door that leaves a report on disk (the daemon's final report, the monitor's report
at close, the CLI's ``--json``); standard library only, so any layer may import it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import IO, Callable, Optional

__all__ = ["write_atomically", "write_atomically_with"]


def write_atomically(path: str, text: str, mode: Optional[int] = None) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, then
    ``os.replace``; the temporary file is removed if anything fails.  Creates the directory.
    The file gets ``mode`` when given, else the mode of the file it replaces, else what
    ``open()`` would give under the current umask (a report in a shared lab directory stays
    readable for colleagues).  A target that exists but is not a regular file (``/dev/null``,
    ``/dev/stdout``) is written in place, never replaced.  Raises OSError (the caller decides
    how loud to be).
    """
    write_atomically_with(path, lambda stream: stream.write(text), mode)


def write_atomically_with(
    path: str, write: Callable[[IO[str]], object], mode: Optional[int] = None
) -> None:
    """Like :func:`write_atomically`, but ``write(stream)`` writes the content (a big JSON
    document can be streamed with ``json.dump`` instead of built as one string first)."""
    try:
        existing: Optional[os.stat_result] = os.stat(path)
    except OSError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(path, "w", encoding="utf-8") as stream:
            write(stream)
        return
    if mode is None:
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            write(stream)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` is process-wide and racy):
    Linux reports it in ``/proc/self/status``; elsewhere the common 022 is assumed."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
