"""tblive: live monitor and honest post-hoc verdicts for TensorBoard logs of RL runs.

The public API is what :data:`__all__` lists; everything else is internal and may change.
``import tblive`` stays light (no numpy, no protobuf): each name is imported on first use.

* In the trainer: :class:`Monitor`, :func:`attach`.
* Post hoc: :func:`analyze` (read a log directory once and judge every run), :func:`evaluate`
  (judge statistics you hold), :class:`MetricStats` (the bounded statistics of one series).
* The vocabulary: :class:`Status`, :class:`Finding`, :class:`Verdict`.
* Tuning: :class:`Config`, :func:`load_config`, :func:`classify` (which tag plays which role).
* Errors: :mod:`tblive.errors` (:class:`TbliveError` is the base of every bad-input error).
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Tuple

from tblive import errors
from tblive.errors import ConfigError, NoEventFiles, ReaderError, TbliveError

__version__ = "0.1.0"
version = __version__

#: public name -> (module, attribute), imported on first access
_LAZY: Dict[str, Tuple[str, str]] = {
    "Monitor": ("tblive.doors.monitor", "Monitor"),
    "attach": ("tblive.doors.monitor", "attach"),
    "analyze": ("tblive.doors.posthoc", "analyze"),
    "evaluate": ("tblive.judge.verdict", "evaluate"),
    "MetricStats": ("tblive.series.stats", "MetricStats"),
    "Status": ("tblive.judge.findings", "Status"),
    "Finding": ("tblive.judge.findings", "Finding"),
    "Verdict": ("tblive.judge.findings", "Verdict"),
    "Config": ("tblive.judge.config", "Config"),
    "Grace": ("tblive.judge.config", "Grace"),
    "load_config": ("tblive.judge.config_file", "load_config"),
    "classify": ("tblive.judge.roles", "classify"),
    "Roles": ("tblive.judge.roles", "Roles"),
}

__all__ = [
    "ConfigError",
    "NoEventFiles",
    "ReaderError",
    "TbliveError",
    "__version__",
    "errors",
    "version",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (``tblive.Monitor`` without numpy on ``import tblive``)."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError("module 'tblive' has no attribute %r" % name)
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
