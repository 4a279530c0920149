"""tblive: live monitor and honest post-hoc verdicts for TensorBoard logs of RL runs."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``tblive.Monitor`` / ``tblive.attach`` without importing numpy on ``import tblive``."""
    if name in ("Monitor", "attach"):
        from tblive.doors import monitor

        return getattr(monitor, name)
    raise AttributeError("module 'tblive' has no attribute %r" % name)
