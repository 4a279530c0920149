"""Text layout shared by every rendering: numbers, display widths, wrapping, distinct run names.

Pure functions on strings; nothing here prints.  The number formatter itself is
:func:`tblive.series.stats.format_number` (3 significant digits); :func:`format_count` adds
thousands separators to counts and steps.
"""

from __future__ import annotations

import os
import textwrap
import unicodedata
from typing import Dict, List, Optional, Sequence

from tblive.textfmt import format_number

__all__ = [
    "display_width",
    "distinct_names",
    "format_count",
    "format_number",
    "pad",
    "shorten",
    "wrap",
]


def format_count(value: Optional[int]) -> str:
    """``100000000 -> "100,000,000"``; None -> ``"-"``."""
    if value is None:
        return "-"
    return f"{int(value):,}"


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (emoji, CJK) characters count 2, combining 0."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` display columns (left-aligned unless ``right``)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def shorten(text: str, width: int) -> str:
    """``text`` cut in the middle (``head…tail``) to at most ``width`` display columns: both the
    start and the end of a run's path tell runs apart."""
    if display_width(text) <= width:
        return text
    head, tail = "", ""
    budget = max(1, width - 1)
    for char in text:  # the head takes a little less than half
        if display_width(head + char) > (budget - 1) // 2:
            break
        head += char
    for char in reversed(text):
        if display_width(head) + display_width(char + tail) > budget:
            break
        tail = char + tail
    return head + "\u2026" + tail


def wrap(text: str, width: int, indent: str = "") -> List[str]:
    """``text`` as lines of at most ``width`` columns, each starting with ``indent``.

    Existing line breaks are kept; long words (paths, tags) are not broken.  ``width <= 0``
    means no wrapping.
    """
    lines: List[str] = []
    for paragraph in text.splitlines() or [""]:
        if width <= 0 or len(indent) + display_width(paragraph) <= width:
            lines.append(indent + paragraph)
            continue
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=max(20, width),
                initial_indent=indent,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [indent]
        )
    return lines


def distinct_names(names: Sequence[str], paths: Sequence[str]) -> List[str]:
    """Names that tell runs apart: ``names`` where they are unique, else a path suffix.

    A name shared by several runs is replaced, for each of them, by the shortest trailing part
    of its path (``seed-1/logs``, then ``exp/seed-1/logs`` ...) that no other run shares.  Runs
    whose paths are equal too keep their name with ``#2``, ``#3`` appended.
    """
    result = list(names)
    parts = [os.path.normpath(os.path.abspath(p)).replace(os.sep, "/").split("/") for p in paths]
    groups: Dict[str, List[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name, []).append(index)
    for members in groups.values():
        if len(members) < 2:
            continue
        for index in members:
            mine = parts[index]
            others = [parts[o] for o in members if o != index]
            for depth in range(1, len(mine) + 1):
                suffix = mine[-depth:]
                if all(other[-depth:] != suffix for other in others):
                    result[index] = "/".join(suffix)
                    break
    seen: Dict[str, int] = {}
    for index, name in enumerate(result):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            result[index] = "%s#%d" % (name, seen[name])
    return result
