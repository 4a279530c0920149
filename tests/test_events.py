"""Tests of tblive.read.events: records -> scalar points, from every kind of real writer."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_series_equal,
    event_bytes,
    f32,
    file_version_event,
    rank0,
    record_offsets,
    scalar_event,
    series_points,
    session_start_event,
    tensor_event,
    write_event_file,
)
from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tblive.read.events import EventDecoder
from tblive.read.records import RecordFile
from tblive.read.runs import LogDir, read_directory_points
from tblive.series.feed import SeriesPoints


def decode_file(path: Path, decoder: EventDecoder = None, verify_payload: bool = False):
    decoder = decoder or EventDecoder(str(path))
    batches = [
        decoder.decode(b)
        for b in RecordFile(str(path), verify_payload=verify_payload).read_blocks()
    ]
    points = []
    for batch in batches:
        for i in range(len(batch)):
            points.append(
                (
                    batch.tags[batch.tag_ids[i]],
                    int(batch.steps[i]),
                    float(batch.values[i]),
                    float(batch.wall_times[i]),
                )
            )
    return points, batches, decoder


def test_tensorboardx_add_scalar_every_value_step_and_wall_time(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    rng = np.random.default_rng(1)
    expected = {"loss": [], "train/reward": [], "ünï/cödé": []}
    writer = SummaryWriter(str(tmp_path), flush_secs=3600)
    for step in range(300):
        for tag in expected:
            value = float(rng.normal() * 10.0 ** rng.integers(-5, 6))
            wall = 1_700_000_000.0 + step * 0.25 + len(tag) * 1e-3
            writer.add_scalar(tag, value, step * 10, walltime=wall)
            expected[tag].append((step * 10, f32(value), wall))
    writer.close()
    got, run = read_directory_points(str(tmp_path))
    assert_series_equal(series_points(got), expected)
    assert run.issues == []


def test_tensorboard_event_file_writer(tmp_path: Path) -> None:
    writer = EventFileWriter(str(tmp_path))
    expected = []
    for step in range(0, 5000, 7):
        value = math.sin(step) * 1e3
        writer.add_event(scalar_event("x", step, value, 1000.0 + step))
        expected.append((step, f32(value), 1000.0 + step))
    writer.close()
    got, _ = read_directory_points(str(tmp_path))
    assert_series_equal(series_points(got), {"x": expected})


def bf16_bits(value: float) -> int:
    return int(np.array([value], "<f4").view("<u4")[0]) >> 16


TENSOR_CASES = {
    "float_content": (
        types_pb2.DT_FLOAT,
        lambda v: {"tensor_content": np.float32(v).tobytes()},
        f32,
    ),
    "float_val": (types_pb2.DT_FLOAT, lambda v: {"float_val": [v]}, f32),
    "double_content": (
        types_pb2.DT_DOUBLE,
        lambda v: {"tensor_content": np.float64(v).tobytes()},
        float,
    ),
    "double_val": (types_pb2.DT_DOUBLE, lambda v: {"double_val": [v]}, float),
    "half_val": (
        types_pb2.DT_HALF,
        lambda v: {"half_val": [int(np.float16(v).view("<u2"))]},
        lambda v: float(np.float16(v)),
    ),
    "half_content": (
        types_pb2.DT_HALF,
        lambda v: {"tensor_content": np.float16(v).tobytes()},
        lambda v: float(np.float16(v)),
    ),
    "int32": (
        types_pb2.DT_INT32,
        lambda v: {"int_val": [int(v * 100)]},
        lambda v: float(int(v * 100)),
    ),
    "int64": (
        types_pb2.DT_INT64,
        lambda v: {"int64_val": [int(v * 1e6)]},
        lambda v: float(int(v * 1e6)),
    ),
    "int64_content": (
        types_pb2.DT_INT64,
        lambda v: {"tensor_content": np.int64(int(v * 1e6)).tobytes()},
        lambda v: float(int(v * 1e6)),
    ),
    "bfloat16": (
        types_pb2.DT_BFLOAT16,
        lambda v: {"half_val": [bf16_bits(v)]},
        lambda v: float(np.array([bf16_bits(v) << 16], "<u4").view("<f4")[0]),
    ),
}


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_tf2_tensor_scalars_metadata_on_first_event_only(tmp_path: Path, case: str) -> None:
    dtype, fields, expect = TENSOR_CASES[case]
    values = [0.0, 1.5, -2.25, 3.14159, 1234.5678, -0.001]
    events = [file_version_event()]
    expected = []
    for i, value in enumerate(values):
        events.append(
            tensor_event("epoch_loss", i, 50.0 + i, rank0(dtype, **fields(value)), i == 0)
        )
        expected.append((i, expect(value), 50.0 + i))
    # the metadata is remembered across the directory's files
    write_event_file(tmp_path / "events.out.tfevents.1.v2", events[:3])
    write_event_file(tmp_path / "events.out.tfevents.2.v2", events[3:])
    got, run = read_directory_points(str(tmp_path))
    assert_series_equal(series_points(got), {"epoch_loss": expected})
    assert run.issues == [] and sum(run.skipped.values()) == 0


def test_torch_new_style_float_val_with_metadata_everywhere(tmp_path: Path) -> None:
    events = [file_version_event()]
    expected = []
    for step in range(20):
        value = step / 3.0
        events.append(
            tensor_event(
                "Loss/train", step, 9.0 + step, rank0(types_pb2.DT_FLOAT, float_val=[value]), True
            )
        )
        expected.append((step, f32(value), 9.0 + step))
    write_event_file(tmp_path / "events.out.tfevents.1", events)
    got, _ = read_directory_points(str(tmp_path))
    assert_series_equal(series_points(got), {"Loss/train": expected})


def test_tensors_of_other_plugins_or_shapes_are_skipped_and_counted(tmp_path: Path) -> None:
    text = rank0(types_pb2.DT_STRING, string_val=[b"hello"])
    vector = rank0(types_pb2.DT_FLOAT, float_val=[1.0, 2.0])
    vector.tensor_shape.dim.add(size=2)
    no_plugin = rank0(types_pb2.DT_FLOAT, float_val=[1.0])
    text_value = summary_pb2.Summary.Value(tag="notes", tensor=text)
    text_value.metadata.plugin_data.plugin_name = "text"
    events = [
        file_version_event(),
        event_pb2.Event(step=1, summary=summary_pb2.Summary(value=[text_value])),
        tensor_event("vec", 1, 1.0, vector, True),
        tensor_event("raw", 1, 1.0, no_plugin, False),
        scalar_event("real", 1, 2.0, 3.0),
    ]
    path = write_event_file(tmp_path / "events.out.tfevents.1", events)
    points, _, decoder = decode_file(path)
    assert points == [("real", 1, 2.0, 3.0)]
    # a "scalars" tensor that is not one scalar: skipped, counted as malformed
    assert decoder.skipped == {"text": 1, "malformed scalar tensors": 1, "tensors": 1}
    assert decoder.issues == []


def test_real_non_scalar_summaries_are_skipped_and_counted(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path), flush_secs=3600)
    writer.add_scalar("loss", 1.0, 0, walltime=10.0)
    writer.add_histogram("weights", np.arange(100.0), 0)
    writer.add_image("frame", np.zeros((3, 8, 8)), 0)
    writer.add_text("notes", "hello", 0)
    writer.add_scalar("loss", 0.5, 1, walltime=11.0)
    writer.add_hparams({"lr": 0.1}, {"hparam/score": 1.0})
    writer.close()
    logdir = LogDir(str(tmp_path), lambda name: SeriesPoints())
    logdir.rescan()
    logdir.poll()
    (run,) = logdir.runs.values()  # add_hparams writes into a nested folder of the run
    points = series_points(run.sinks)
    assert points["loss"] == [(0, 1.0, 10.0), (1, 0.5, 11.0)]
    assert run.issues == []
    assert run.skipped["histograms"] == 1 and run.skipped["images"] == 1
    assert run.skipped["text"] == 1
    assert run.skipped["hparams"] >= 1


def test_events_with_many_values_no_step_long_tags_and_odd_steps(tmp_path: Path) -> None:
    long_tag = "x" * 5000
    events = [
        event_pb2.Event(
            wall_time=5.0,
            step=3,
            summary=summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(tag="a", simple_value=1.0),
                    summary_pb2.Summary.Value(tag="b", simple_value=2.0),
                ]
            ),
        ),
        scalar_event("a", 0, 7.0, 6.0),  # step 0 is not written at all
        scalar_event(long_tag, 4, 3.0, 7.0),
        scalar_event("big", 2**62 + 5, 4.0, 8.0),
        scalar_event("neg", -3, 5.0, 9.0),
        scalar_event("", 1, 6.0, 10.0),
    ]
    path = write_event_file(tmp_path / "events.out.tfevents.1", events)
    points, _, decoder = decode_file(path)
    assert points == [
        ("a", 3, 1.0, 5.0),
        ("b", 3, 2.0, 5.0),
        ("a", 0, 7.0, 6.0),
        (long_tag, 4, 3.0, 7.0),
        ("big", 2**62 + 5, 4.0, 8.0),
        ("neg", -3, 5.0, 9.0),
        ("", 1, 6.0, 10.0),
    ]
    assert decoder.issues == []


def test_nan_and_inf_are_data(tmp_path: Path) -> None:
    values = [1.0, float("nan"), float("inf"), float("-inf"), 2.0]
    path = write_event_file(
        tmp_path / "events.out.tfevents.1",
        [scalar_event("v", i, v, 1.0) for i, v in enumerate(values)],
    )
    points, _, _ = decode_file(path)
    got = [p[2] for p in points]
    assert len(got) == 5 and got[0] == 1.0 and math.isnan(got[1]) and got[2:] == values[2:]


def test_session_start_is_a_restart_barrier_in_order(tmp_path: Path) -> None:
    events = [scalar_event("a", i, float(i), 1.0) for i in range(3)]
    events.append(session_start_event(1, 2.0))
    events += [scalar_event("a", i, 10.0 + i, 3.0) for i in range(1, 3)]
    path = write_event_file(tmp_path / "events.out.tfevents.1", events)
    _, (batch,), _ = decode_file(path)
    assert batch.restarts == [(3, 1)]
    assert batch.steps.tolist() == [0, 1, 2, 1, 2]


def test_corrupt_payload_is_reported_once_naming_file_and_offset(tmp_path: Path, caplog) -> None:
    events = [file_version_event()] + [scalar_event("a", i, float(i), 1.0) for i in range(4)]
    data = bytearray(event_bytes(events))
    offset, _ = record_offsets(bytes(data))[2]
    data[offset + 12] = 0xFF  # an invalid protobuf field key: the payload cannot be parsed
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        points, _, decoder = decode_file(path)
    assert [p[1] for p in points] == [0, 2, 3]
    assert [(i.path, i.offset) for i in decoder.issues] == [(str(path), offset)]
    assert "crc mismatch" in decoder.issues[0].message
    assert str(path) in caplog.text and str(offset) in caplog.text


def test_verify_payload_skips_a_record_whose_value_bytes_were_flipped(tmp_path: Path) -> None:
    """A flipped bit inside simple_value still parses; only the payload CRC can catch it."""
    events = [scalar_event("a", i, float(i), 1.0) for i in range(4)]
    data = bytearray(event_bytes(events))
    offset, length = record_offsets(bytes(data))[1]
    data[offset + 12 + length - 1] ^= 0x40  # top byte of the float: 1.0 -> something else
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(data))
    points, _, _ = decode_file(path)
    assert [p[1] for p in points] == [0, 1, 2, 3]  # default: not detected, as documented
    points, _, decoder = decode_file(path, verify_payload=True)
    assert [p[1] for p in points] == [0, 2, 3]


# -- the vectorised path and the protobuf path agree -----------------------------------------


def no_fast_path(self, raw, block):
    count = len(block)
    empty_i = np.zeros(0, np.int64)
    empty_f = np.zeros(0, np.float64)
    return np.zeros(count, bool), empty_i, empty_i, empty_i, empty_f, empty_f


def mixed_events():
    rng = np.random.default_rng(3)
    events = [file_version_event()]
    for step in range(400):
        kind = step % 7
        wall = 1e9 + step * 1.5
        if kind == 5:
            events.append(
                tensor_event(
                    "t2", step, wall, rank0(types_pb2.DT_FLOAT, float_val=[step * 0.5]), True
                )
            )
        elif kind == 6:
            events.append(session_start_event(step - 3, wall)) if step % 70 == 6 else None
            events.append(scalar_event("tag/%d" % (step % 11), step * 3, float(rng.normal()), wall))
        else:
            events.append(scalar_event("tag/%d" % (step % 13), step * 3, float(rng.normal()), wall))
    events.append(scalar_event("nan", 1, float("nan"), 2.0))
    return events


def test_fast_path_and_protobuf_path_agree(tmp_path: Path, monkeypatch) -> None:
    path = write_event_file(tmp_path / "events.out.tfevents.1", mixed_events())
    fast_points, fast_batches, fast_decoder = decode_file(path)
    monkeypatch.setattr(EventDecoder, "_fast_path", no_fast_path)
    slow_points, slow_batches, slow_decoder = decode_file(path)
    assert len(fast_points) > 300
    assert repr(fast_points) == repr(slow_points)  # repr: nan == nan
    assert [b.restarts for b in fast_batches] == [b.restarts for b in slow_batches]
    assert fast_decoder.skipped == slow_decoder.skipped and fast_decoder.issues == []


def test_fast_path_takes_the_common_shape(tmp_path: Path) -> None:
    path = write_event_file(
        tmp_path / "events.out.tfevents.1", [scalar_event("a", i, 1.0, 2.0) for i in range(50)]
    )
    (block,) = list(RecordFile(str(path)).read_blocks())
    raw = np.frombuffer(block.data + bytes(2048), np.uint8)
    fast = EventDecoder()._fast_path(raw, block)[0]
    assert fast.all()


@pytest.mark.parametrize(
    "tensor",
    [
        # DT_FLOAT with 3 bytes of content
        lambda: _tensor(types_pb2.DT_FLOAT, tensor_content=b"\x00\x00\x80"),
        # a half whose bit pattern does not fit in 16 bits
        lambda: _tensor(types_pb2.DT_HALF, half_val=[70000]),
        lambda: _tensor(types_pb2.DT_BFLOAT16, half_val=[-5]),
    ],
)
def test_malformed_scalar_tensors_never_raise(tmp_path: Path, tensor) -> None:
    from tensorboard.compat.proto import summary_pb2

    from tblive.read.runs import read_directory_points

    value = summary_pb2.Summary.Value(tag="loss", tensor=tensor())
    value.metadata.plugin_data.plugin_name = "scalars"
    events = [
        file_version_event(),
        event_pb2.Event(wall_time=1.0, step=1, summary=summary_pb2.Summary(value=[value])),
        scalar_event("reward", 2, 1.0, 2.0),
    ]
    write_event_file(tmp_path / "events.out.tfevents.1", events)
    points, run = read_directory_points(str(tmp_path))
    assert points["reward"].arrays()[1].tolist() == [1.0]  # reading went on
    if "loss" in points:  # a masked half: a value, but never a crash
        assert len(points["loss"]) == 1
    else:
        assert run.skipped["malformed scalar tensors"] == 1


def _tensor(dtype, **fields):
    from tensorboard.compat.proto import tensor_pb2

    return tensor_pb2.TensorProto(dtype=dtype, **fields)
