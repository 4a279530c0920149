"""tensorboardX ``summary.json`` (``export_scalars_to_json``), read in bounded memory.

The file is one JSON object mapping a writer path (or a tag) to rows ``[wall_time, step, value]``.
:func:`read_summary_json` streams it key by key: memory is the current key's rows (24 bytes a
row), never the whole parsed document (``json.load`` of a 708 MB file takes 3.5 GB).  Its
contract:

* Only a regular file no larger than ``max_bytes`` (default :data:`DEFAULT_MAX_SUMMARY_BYTES`,
  256 MiB) is opened; anything else is one read issue and nothing is read.
* Every row must be exactly three JSON numbers (``NaN``/``Infinity`` as Python's ``json`` writes
  them are accepted); the step must be a finite whole number of magnitude at most 2**53.  Rows
  with a bad step are dropped and counted in one read issue per key; a value that is not a list
  of such rows, or text that is not JSON of this shape, is a read issue and never a point.
* A malformed file keeps the keys read before the fault (each was complete and valid) and
  reports the byte offset where reading stopped.
* Never raises for bad content; yields ``(key, table)`` with ``table`` an ``(n, 3)`` float64
  array in file order.
"""

from __future__ import annotations

import json
import os
import re
import stat
from array import array
from typing import Iterator, List, Optional, Tuple

import numpy as np

from tblive.read.records import ReadIssue, error_text, file_kind, size_text

DEFAULT_MAX_SUMMARY_BYTES = 256 << 20
MAX_STEP = 2**53  # beyond this a float64 step is not an exact integer
_CHUNK = 1 << 20
_NUMBER = r"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|-?Infinity|NaN)"
_ROW = re.compile(r"\s*\[\s*%s\s*,\s*%s\s*,\s*%s\s*\]\s*([,\]])" % (_NUMBER, _NUMBER, _NUMBER))
_SPACE = re.compile(r"\s*")
_LONGEST_ROW = 1024  # a row that does not match within this many characters is malformed
_LONGEST_SKIP = 16 << 20  # a value that is not a list of rows may be this long, no longer


class _Malformed(ValueError):
    pass


class _Text:
    """A window over a text stream, refilled in chunks; ``position`` counts from its start."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.buffer = ""
        self.at = 0
        self.dropped = 0
        self.eof = False

    @property
    def position(self) -> int:
        return self.dropped + self.at

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.dropped += self.at
        self.buffer = self.buffer[self.at :] + chunk
        self.at = 0
        return True

    def peek(self) -> str:
        """The next non-space character ('' at the end), not consumed."""
        while True:
            self.at = _SPACE.match(self.buffer, self.at).end()
            if self.at < len(self.buffer) or not self.more():
                return self.buffer[self.at : self.at + 1]

    def expect(self, character: str) -> None:
        if self.peek() != character:
            raise _Malformed("expected %r" % character)
        self.at += 1

    def string(self) -> str:
        self.expect('"')
        while True:
            try:
                text, end = json.decoder.scanstring(self.buffer, self.at)  # type: ignore[attr-defined]
            except ValueError:
                if self.more():
                    continue
                raise _Malformed("unterminated key") from None
            self.at = end
            return text

    def skip_value(self) -> None:
        """Consume one JSON value of any shape (a small one: it is parsed whole)."""
        decoder = json.JSONDecoder()
        self.peek()
        while True:
            try:
                _, end = decoder.raw_decode(self.buffer, self.at)
            except ValueError:
                if len(self.buffer) - self.at < _LONGEST_SKIP and self.more():
                    continue
                raise _Malformed("not JSON") from None
            self.at = end
            return

    def rows(self) -> Optional[np.ndarray]:
        """A ``[[w, s, v], ...]`` list as an (n, 3) array; None (consumed) for a value that is
        not a list."""
        if self.peek() != "[":
            self.skip_value()
            return None
        self.at += 1
        numbers = array("d")
        if self.peek() == "]":
            self.at += 1
            return np.zeros((0, 3))
        while True:
            match = _ROW.match(self.buffer, self.at)
            if match is None:
                if len(self.buffer) - self.at < _LONGEST_ROW and self.more():
                    continue
                raise _Malformed("a value is not a list of [wall_time, step, value] rows")
            numbers.extend((float(match.group(1)), float(match.group(2)), float(match.group(3))))
            self.at = match.end()
            if match.group(4) == "]":
                return np.frombuffer(numbers, dtype=np.float64).reshape(-1, 3)


def read_summary_json(
    path: str, issues: List[ReadIssue], max_bytes: int = DEFAULT_MAX_SUMMARY_BYTES
) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(key, rows)`` of a summary.json; problems are appended to ``issues``."""
    try:
        info = os.stat(path)
    except OSError as error:
        issues.append(ReadIssue(path, 0, "cannot stat (%s); ignored" % error_text(error), True))
        return
    if not stat.S_ISREG(info.st_mode):
        issues.append(
            ReadIssue(path, 0, "%s, not a regular file; ignored" % file_kind(info.st_mode))
        )
        return
    if info.st_size > max_bytes:
        issues.append(
            ReadIssue(
                path,
                0,
                "%d bytes, larger than the limit of %s for summary.json; ignored"
                % (info.st_size, size_text(max_bytes)),
                True,
            )
        )
        return
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as error:
        issues.append(ReadIssue(path, 0, "cannot open (%s); ignored" % error_text(error), True))
        return
    with handle:
        text = _Text(handle)
        try:
            text.expect("{")
            if text.peek() == "}":
                return
            while True:
                key = text.string()
                text.expect(":")
                at = text.position
                table = text.rows()
                if table is None:
                    issues.append(
                        ReadIssue(
                            path,
                            at,
                            "%r: not a list of [wall_time, step, value] rows; ignored" % key,
                        )
                    )
                else:
                    yield key, _checked(path, key, table, issues, text.position)
                if text.peek() == "}":
                    return
                text.expect(",")
        except _Malformed as error:
            issues.append(
                ReadIssue(
                    path,
                    text.position,
                    "not a valid summary.json (%s); the rest of it is ignored" % error,
                    True,
                )
            )
        except (OSError, UnicodeError) as error:
            issues.append(ReadIssue(path, text.position, "cannot read (%s); ignored" % error, True))


def _checked(
    path: str, key: str, table: np.ndarray, issues: List[ReadIssue], offset: int
) -> np.ndarray:
    steps = table[:, 1]
    with np.errstate(invalid="ignore"):
        good = np.isfinite(steps) & (np.abs(steps) <= MAX_STEP) & (steps == np.round(steps))
    if good.all():
        return table
    issues.append(
        ReadIssue(
            path,
            offset,
            "%r: %d rows with a step that is not a whole number within +-2**53 ignored"
            % (key, int((~good).sum())),
        )
    )
    return table[good]
