"""The exceptions tblive raises for bad input: one hierarchy, one base.

Every error a user can cause (a config file with a bad key, a directory without event files, an
unreadable or malformed log, a setting that cannot work) is a :class:`TbliveError` whose message
is one line naming the file or setting and what was wrong. Callers that only want to report such
errors catch the base; the CLI prints the message and exits with status 2. Each subclass is also
a :class:`ValueError`, so code written against the earlier ``ValueError`` subclasses still works.

Library code never raises these into a training loop: the in-process monitor logs them instead.
"""

from __future__ import annotations

__all__ = ["ConfigError", "NoEventFiles", "ReaderError", "TbliveError"]


class TbliveError(Exception):
    """Base of every error caused by bad input (one-line message naming the file or setting)."""


class ConfigError(TbliveError, ValueError):
    """A config file is unreadable or holds an unknown key or a bad value."""


class NoEventFiles(TbliveError, ValueError):
    """The directory exists but holds no TensorBoard event files."""


class ReaderError(TbliveError, ValueError):
    """A log file or its side files cannot be read or decoded (names the file and the offset)."""
