"""Writing a file so that readers see the old content or the new, never half of it.

Used by every door that leaves a report on disk (the daemon's final report, the monitor's report
at close, the CLI's ``--json``); standard library only, so any layer may import it.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Callable

__all__ = ["write_atomically", "write_atomically_with"]


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, then
    ``os.replace``; the temporary file is removed if anything fails.  Creates the directory.
    Raises OSError (the caller decides how loud to be).
    """
    write_atomically_with(path, lambda stream: stream.write(text))


def write_atomically_with(path: str, write: Callable[[IO[str]], object]) -> None:
    """Like :func:`write_atomically`, but ``write(stream)`` writes the content (a big JSON
    document can be streamed with ``json.dump`` instead of built as one string first)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
