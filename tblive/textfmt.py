"""The one number formatter and the one JSON-safe number conversion of the package.

Contract (pure functions, no I/O, no dependencies beyond the standard library):

* :func:`format_number` -- short human form of a float (3 significant digits), used by every
  message, report and alert; :func:`fmt` is the same with ``None`` shown as ``"n/a"``;
  :func:`pct` a relative change as ``+12%`` (or ``+3x`` beyond +100x).
* :func:`finite` -- a number as a float, ``None`` when missing, not a number or not finite.
* :func:`json_safe` -- any nested value made strict-JSON serialisable: numpy scalars and
  arrays become Python numbers and lists, and non-finite floats become ``None`` (the JSON
  report) or, with ``non_finite_as_text=True``, the strings ``"nan"``, ``"inf"``, ``"-inf"``
  (the events log, where a NaN is the news).
"""

from __future__ import annotations

import math
from typing import Any, Optional

__all__ = ["finite", "fmt", "format_number", "json_safe", "pct"]


def format_number(value: float) -> str:
    """Short human form: 3 significant digits, plain notation for 1e-3 <= |x| < 1e6.

    ``1.3094 -> "1.31"``, ``0.01234 -> "0.0123"``, ``1234.5 -> "1234"`` (integer digits are
    never rounded away), ``1.5e-5 -> "1.5e-05"``, ``nan -> "nan"``.
    """
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0.0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return "%.3g" % value
    if magnitude >= 100.0:
        return "%.0f" % value
    rounded = float("%.3g" % value)
    exponent = int(math.floor(math.log10(abs(rounded))))
    return "%.*f" % (max(0, 2 - exponent), rounded)


def fmt(value: Optional[float]) -> str:
    """:func:`format_number`, with ``None`` as ``"n/a"``."""
    if value is None:
        return "n/a"
    return format_number(float(value))


def pct(value: float) -> str:
    """A relative change (0.12 -> ``"+12%"``; beyond +100x as a factor, ``"+150x"``)."""
    if not math.isfinite(value):
        return "%s%%" % value
    if abs(value) >= 100:
        return "%+.0fx" % (value + 1.0) if value > 0 else "%+.0f%%" % (100 * value)
    return "%+.0f%%" % (100.0 * value)


def finite(value: Any) -> Optional[float]:
    """``value`` as a JSON-safe float; ``None`` when missing, not a number, or not finite."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def json_safe(value: Any, non_finite_as_text: bool = False) -> Any:
    """``value`` (nested dicts/lists/tuples) made strict-JSON serialisable; see the module doc.

    Dict keys become strings; numpy scalars/arrays become Python numbers/lists; objects JSON
    cannot hold become their ``str``.
    """
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return str(value) if non_finite_as_text else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, non_finite_as_text) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, non_finite_as_text) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return json_safe(item(), non_finite_as_text)
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return json_safe(tolist(), non_finite_as_text)
    return str(value)
