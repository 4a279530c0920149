"""Shared by the benchmarks: a large event log written by a real writer (tensorboardX)."""

from __future__ import annotations

import math
import os
import tempfile

TAGS = 50
STEPS = 40_000


def big_log(directory: str = "", tags: int = TAGS, steps: int = STEPS) -> str:
    """Write (once) ``tags`` x ``steps`` scalars with tensorboardX; return the run directory."""
    directory = directory or os.path.join(
        tempfile.gettempdir(), "tblive-bench-%dx%d" % (tags, steps)
    )
    done = os.path.join(directory, ".complete")
    if os.path.exists(done):
        return directory
    from tensorboardX import SummaryWriter

    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        os.remove(os.path.join(directory, name))
    names = ["train/metric_%02d" % i for i in range(tags)]
    writer = SummaryWriter(directory, max_queue=4096, flush_secs=3600)
    for step in range(steps):
        for i, name in enumerate(names):
            writer.add_scalar(name, math.sin(step / 500.0 + i) + i, step)
    writer.close()
    open(done, "w").close()
    return directory
