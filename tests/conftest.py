"""Shared fixtures and helpers for the reader tests.

Event files are written either by real writers (tensorboardX, tensorboard's ``EventFileWriter``)
or, when a test needs exact control over file names and bytes, framed by tensorboard's own
``RecordWriter`` (independent of tblive's framing code).
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

# One math thread per process (inherited by the scripts the tests run): the tests train tiny
# networks, where torch's default of a thread per core only adds OpenMP threads spinning against
# the other pytest worker for the same cores (the SB3 example took twice as long).  Set before
# any test module imports torch.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld"

Point = Tuple[int, float, float]  # (step, value, wall_time)


@pytest.fixture
def memory_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory in memory (``/dev/shm``) when there is a roomy one, else ``tmp_path``.

    For tests that write a small file thousands of times (every cut of a file, every example of
    a property): on a busy disk each rewrite costs milliseconds, so those tests took seconds.
    Only for small files and reading logic that does not depend on the file system.
    """
    shm = Path("/dev/shm")
    try:
        roomy = os.access(str(shm), os.W_OK) and shutil.disk_usage(str(shm)).free > 256 << 20
    except OSError:
        roomy = False
    if not roomy:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="tblive-test-", dir=str(shm)))
    try:
        yield path
    finally:
        shutil.rmtree(str(path), ignore_errors=True)


@pytest.fixture
def realworld() -> Path:
    """The shared directory of real third-party event files; skips when it is absent."""
    if not REALWORLD.is_dir():
        pytest.skip("no real-world event files at %s" % REALWORLD)
    return REALWORLD


# -- building events ---------------------------------------------------------------------------


def file_version_event(wall_time: float = 1.0) -> event_pb2.Event:
    return event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2")


def scalar_event(tag: str, step: int, value: float, wall_time: float) -> event_pb2.Event:
    """The shape every simple_value writer produces."""
    return event_pb2.Event(
        wall_time=wall_time,
        step=step,
        summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]),
    )


def scalars_metadata() -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )


def tensor_event(
    tag: str,
    step: int,
    wall_time: float,
    tensor: tensor_pb2.TensorProto,
    with_metadata: bool,
) -> event_pb2.Event:
    """A TF2 / torch ``new_style`` scalar: a rank-0 tensor, plugin metadata optional."""
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if with_metadata:
        value.metadata.CopyFrom(scalars_metadata())
    return event_pb2.Event(
        wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value])
    )


def rank0(dtype: int, **fields) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(
        dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(), **fields
    )


def session_start_event(step: int, wall_time: float) -> event_pb2.Event:
    return event_pb2.Event(
        wall_time=wall_time,
        step=step,
        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
    )


# -- framing and writing -----------------------------------------------------------------------


def frame(payloads: Iterable[bytes]) -> bytes:
    """TFRecord bytes of ``payloads``, framed by tensorboard's own RecordWriter."""
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for payload in payloads:
        writer.write(payload)
    return buffer.getvalue()


def event_bytes(events: Iterable[event_pb2.Event]) -> bytes:
    return frame(event.SerializeToString() for event in events)


def write_event_file(path: os.PathLike, events: Iterable[event_pb2.Event]) -> Path:
    """Write ``events`` to exactly ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(event_bytes(events))
    return path


def record_offsets(data: bytes) -> List[Tuple[int, int]]:
    """(header offset, payload length) of each record of well-formed TFRecord ``data``."""
    found = []
    position = 0
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 8], "little")
        found.append((position, length))
        position += 16 + length
    return found


# -- reading back ------------------------------------------------------------------------------


def series_points(sinks: Dict[str, object]) -> Dict[str, List[Point]]:
    """``{series: [(step, value, wall_time), ...]}`` from SeriesPoints sinks."""
    result = {}
    for name, sink in sinks.items():
        steps, values, walls = sink.arrays()  # type: ignore[attr-defined]
        result[name] = list(zip(steps.tolist(), values.tolist(), walls.tolist()))
    return result


def same_points(got: Sequence[Point], expected: Sequence[Point]) -> bool:
    """Equal point lists; NaN equals NaN (values are data, NaN included)."""
    if len(got) != len(expected):
        return False
    for (s1, v1, w1), (s2, v2, w2) in zip(got, expected):
        if s1 != s2 or w1 != w2:
            return False
        if not (v1 == v2 or (math.isnan(v1) and math.isnan(v2))):
            return False
    return True


def f32(value: float) -> float:
    """What a simple_value (float32) field gives back."""
    return float(np.float32(value))


def assert_series_equal(
    got: Dict[str, List[Point]], expected: Dict[str, List[Point]], message: Optional[str] = None
) -> None:
    assert sorted(got) == sorted(expected), message
    for name in expected:
        assert same_points(got[name], expected[name]), (name, got[name][:5], expected[name][:5])
