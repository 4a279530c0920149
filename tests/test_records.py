"""Tests of tblive.read.records: incremental TFRecord framing of event files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List

import numpy as np
import pytest
from conftest import event_bytes, file_version_event, frame, record_offsets, scalar_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tblive.read.records import RecordFile


def payloads_of(record_file: RecordFile) -> List[bytes]:
    return [block.payload(i) for block in record_file.read_blocks() for i in range(len(block))]


def varied_payloads() -> List[bytes]:
    """Payloads of many sizes, some of them framed records themselves (false header candidates)."""
    rng = np.random.default_rng(7)
    payloads = [b"", b"a", bytes(20), rng.bytes(300)]
    payloads.append(frame([b"inner", bytes(5)]))  # a payload that *contains* valid records
    payloads.append(frame([b""]) * 3 + b"tail")
    payloads.append(bytes(1000))  # zeros everywhere look like lengths
    payloads.append(event_bytes([scalar_event("loss", 3, 0.5, 10.0)]))
    return payloads


def test_reads_every_record_of_a_real_writer_file(tmp_path: Path) -> None:
    events = [file_version_event()] + [scalar_event("t", i, i * 0.5, 100.0 + i) for i in range(200)]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(event_bytes(events))
    record_file = RecordFile(str(path))
    assert payloads_of(record_file) == [e.SerializeToString() for e in events]
    assert record_file.offset == path.stat().st_size
    assert record_file.issues == []
    assert payloads_of(record_file) == []  # nothing new


@pytest.mark.parametrize("block_size", [16, 64, 333, 4 << 20])
def test_false_candidates_and_block_sizes_frame_like_a_sequential_walk(
    tmp_path: Path, block_size: int
) -> None:
    payloads = varied_payloads() * 3
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame(payloads))
    record_file = RecordFile(str(path), block_size=block_size)
    assert payloads_of(record_file) == payloads
    assert record_file.issues == []


def test_record_larger_than_the_default_block_is_read(tmp_path: Path) -> None:
    """A 5 MiB record (a big graph_def or image) with the default 4 MiB block, records after it too."""
    payloads = [b"before", b"y" * (5 << 20), b"after"]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame(payloads))
    record_file = RecordFile(str(path))
    assert payloads_of(record_file) == payloads
    assert record_file.offset == path.stat().st_size


def test_record_larger_than_the_fast_search_limit(tmp_path: Path) -> None:
    big = bytes(range(256)) * ((1 << 24) // 256 + 10)  # > 16 MiB: a 4-byte length
    payloads = [b"before", big, b"after"]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame(payloads))
    assert payloads_of(RecordFile(str(path), block_size=1 << 20)) == payloads


@pytest.mark.parametrize("block_size", [40, 4 << 20])
def test_cut_at_every_byte_offset_loses_and_duplicates_nothing(
    memory_tmp_path: Path, block_size: int
) -> None:
    payloads = varied_payloads()
    data = frame(payloads)
    path = memory_tmp_path / "events.out.tfevents.1"
    for cut in range(len(data) + 1):
        path.write_bytes(data[:cut])
        record_file = RecordFile(str(path), block_size=block_size)
        first = payloads_of(record_file)
        with open(path, "ab") as handle:
            handle.write(data[cut:])
        second = payloads_of(record_file)
        assert first + second == payloads, cut
        assert record_file.issues == [], cut
        assert record_file.offset == len(data)


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty = tmp_path / "events.out.tfevents.0"
    empty.write_bytes(b"")
    record_file = RecordFile(str(empty))
    assert payloads_of(record_file) == [] and record_file.issues == []
    assert not record_file.has_new_data()
    header_only = tmp_path / "events.out.tfevents.1"
    header_only.write_bytes(event_bytes([file_version_event()]))
    record_file = RecordFile(str(header_only))
    assert payloads_of(record_file) == [file_version_event().SerializeToString()]
    assert record_file.issues == []


def test_missing_file_is_quiet(tmp_path: Path) -> None:
    record_file = RecordFile(str(tmp_path / "gone.tfevents"))
    assert payloads_of(record_file) == [] and record_file.issues == []
    assert record_file.size() is None and not record_file.has_new_data()


def test_bad_length_header_ends_the_file_with_one_warning(tmp_path: Path, caplog) -> None:
    payloads = [b"one", b"two", b"three", b"four"]
    data = bytearray(frame(payloads))
    third = record_offsets(bytes(data))[2][0]
    data[third] ^= 0x01  # the length no longer matches its CRC
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(data))
    record_file = RecordFile(str(path))
    with caplog.at_level(logging.WARNING, logger="tblive.read.records"):
        assert payloads_of(record_file) == payloads[:2]
    assert record_file.ended
    assert [(i.offset, i.fatal) for i in record_file.issues] == [(third, True)]
    assert str(path) in caplog.text and str(third) in caplog.text
    with open(path, "ab") as handle:
        handle.write(frame([b"more"]))
    assert payloads_of(record_file) == []  # nothing after a bad header is trusted
    assert len(record_file.issues) == 1


def test_payload_crc_is_verified_when_asked(tmp_path: Path, caplog) -> None:
    """verify_payload=True: a record whose payload CRC is wrong is skipped and reported once."""
    payloads = [b"one", b"two", b"three"]
    data = bytearray(frame(payloads))
    second = record_offsets(bytes(data))[1][0]
    data[second + 12] ^= 0x20  # 'two' -> 'Two'
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(data))
    record_file = RecordFile(str(path), verify_payload=True)
    with caplog.at_level(logging.WARNING):
        got = payloads_of(record_file)
    assert got == [b"one", b"three"]
    assert [i.offset for i in record_file.issues] == [second]
    assert str(path) in caplog.text


@pytest.mark.parametrize("which", [0, 2])
@pytest.mark.parametrize("count", [1, 3])
def test_verified_corrupt_first_or_last_record_is_reported_once(
    tmp_path: Path, which: int, count: int
) -> None:
    """Found by the property test below: a block whose last (or only) record is dropped."""
    payloads = [b"one", b"two", b"three"][:count]
    which = min(which, count - 1)
    data = bytearray(frame(payloads))
    offset = record_offsets(bytes(data))[which][0]
    data[offset + 12 + len(payloads[which])] ^= 0x01  # the payload CRC itself
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(data))
    record_file = RecordFile(str(path), verify_payload=True)
    assert payloads_of(record_file) == payloads[:which] + payloads[which + 1 :]
    assert payloads_of(record_file) == []
    assert [i.offset for i in record_file.issues] == [offset]
    assert record_file.offset == len(data)


def test_payload_crc_is_checkable_per_record(tmp_path: Path) -> None:
    data = bytearray(frame([b"one", b"two"]))
    second = record_offsets(bytes(data))[1][0]
    data[second + 12] ^= 0x20
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(data))
    (block,) = list(RecordFile(str(path)).read_blocks())
    assert [block.payload_crc_ok(i) for i in range(len(block))] == [True, False]
    assert [block.file_offset(i) for i in range(len(block))] == [0, second]


def test_a_file_that_shrank_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame([b"a" * 50, b"b" * 50]))
    record_file = RecordFile(str(path))
    assert len(payloads_of(record_file)) == 2
    path.write_bytes(frame([b"c"]))
    assert payloads_of(record_file) == [b"c"]
    assert len(record_file.issues) == 1 and not record_file.issues[0].fatal


# -- property: random, truncated and bit-flipped files -------------------------------------------

payload_lists = st.lists(st.binary(max_size=80), min_size=1, max_size=12)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=payload_lists, cut_fraction=st.floats(0, 1), block_size=st.sampled_from([128, 4096])
)
def test_property_truncated_file_returns_every_complete_record(
    memory_tmp_path: Path, payloads, cut_fraction: float, block_size: int
) -> None:
    data = frame(payloads)
    cut = int(len(data) * cut_fraction)
    path = memory_tmp_path / "events.out.tfevents.trunc"
    path.write_bytes(data[:cut])
    record_file = RecordFile(str(path), block_size=block_size)
    complete = [
        p
        for (offset, length), p in zip(record_offsets(data), payloads)
        if offset + length + 16 <= cut
    ]
    assert payloads_of(record_file) == complete
    assert record_file.issues == []


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payloads=payload_lists, flip=st.integers(0, 10**9), bit=st.integers(0, 7))
def test_property_bit_flip_keeps_the_intact_prefix(
    memory_tmp_path: Path, payloads, flip: int, bit: int
) -> None:
    data = bytearray(frame(payloads))
    position = flip % len(data)
    data[position] ^= 1 << bit
    offsets = record_offsets(frame(payloads))
    damaged = max(i for i, (offset, _) in enumerate(offsets) if offset <= position)
    path = memory_tmp_path / "events.out.tfevents.flip"
    path.write_bytes(bytes(data))
    record_file = RecordFile(str(path))
    got = payloads_of(record_file)  # never raises
    assert got[:damaged] == payloads[:damaged]
    in_header = position - offsets[damaged][0] < 12
    if in_header:  # CRC32C catches every single-bit error: the file ends here
        assert len(got) == damaged
        assert [(i.offset, i.fatal) for i in record_file.issues] == [(offsets[damaged][0], True)]
    else:  # payload or footer damaged: framing continues, every later record intact
        assert len(got) == len(payloads)
        assert got[damaged + 1 :] == payloads[damaged + 1 :]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payloads=payload_lists, flip=st.integers(0, 10**9), bit=st.integers(0, 7))
def test_property_verified_bit_flip_is_reported_once(
    memory_tmp_path: Path, payloads, flip: int, bit: int
) -> None:
    """verify_payload=True: the damaged record is skipped and reported exactly once, at its offset."""
    data = bytearray(frame(payloads))
    position = flip % len(data)
    data[position] ^= 1 << bit
    offsets = record_offsets(frame(payloads))
    damaged = max(i for i, (offset, _) in enumerate(offsets) if offset <= position)
    path = memory_tmp_path / "events.out.tfevents.flip"
    path.write_bytes(bytes(data))
    record_file = RecordFile(str(path), verify_payload=True)
    got = payloads_of(record_file)
    assert [i.offset for i in record_file.issues] == [offsets[damaged][0]]
    expected = payloads[:damaged]
    if position - offsets[damaged][0] >= 12:
        expected = expected + payloads[damaged + 1 :]
    assert got == expected
    assert payloads_of(record_file) == [] and len(record_file.issues) == 1


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400), block_size=st.sampled_from([16, 64, 4096]))
def test_property_random_bytes_never_raise(data: bytes, block_size: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.out.tfevents.random"
        path.write_bytes(data)
        record_file = RecordFile(str(path), block_size=block_size)
        for payload in payloads_of(record_file):
            assert isinstance(payload, bytes)
        assert record_file.offset <= len(data)


# -- limits, replaced and non-regular files ------------------------------------------------------


@pytest.mark.parametrize("block_size", [16, 64, 4096, 1 << 20])
def test_records_over_the_limit_are_skipped_unread(tmp_path: Path, block_size: int) -> None:
    payloads = [b"a", b"x" * 3000, b"b", b"y" * 1000, b"z" * 5000, b"c"]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame(payloads))
    record_file = RecordFile(str(path), block_size=block_size, max_record_size=2048)
    assert payloads_of(record_file) == [b"a", b"b", b"y" * 1000, b"c"]
    assert record_file.offset == path.stat().st_size
    assert [issue.message.split(" is ")[0] for issue in record_file.issues] == [
        "record of 3000 bytes",
        "record of 5000 bytes",
    ]
    assert all("limit of 2048 bytes" in issue.message for issue in record_file.issues)


def test_an_oversized_record_still_being_written_is_reported_once_then_skipped(
    tmp_path: Path,
) -> None:
    data = frame([b"a", b"x" * 3000, b"b"])
    path = tmp_path / "events.out.tfevents.1"
    cut = 17 + 12 + 100  # inside the big record
    path.write_bytes(data[:cut])
    record_file = RecordFile(str(path), max_record_size=2048)
    assert payloads_of(record_file) == [b"a"]
    assert payloads_of(record_file) == []
    assert len(record_file.issues) == 1
    path.write_bytes(data)
    assert payloads_of(record_file) == [b"b"]
    assert len(record_file.issues) == 1


def test_a_fifo_is_reported_and_its_issue_withdrawn_once_it_is_a_file(tmp_path: Path) -> None:
    import os

    path = tmp_path / "events.out.tfevents.1"
    os.mkfifo(path)
    record_file = RecordFile(str(path))
    assert payloads_of(record_file) == [] and payloads_of(record_file) == []
    (issue,) = record_file.issues
    assert "a FIFO, not a regular file" in issue.message and not issue.fatal
    assert record_file.unreadable is not None
    path.unlink()
    path.write_bytes(frame([b"a"]))
    assert payloads_of(record_file) == [b"a"]
    assert record_file.issues == [] and record_file.unreadable is None


def test_a_rewritten_file_of_the_same_size_or_larger_is_read_from_the_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.out.tfevents"
    path.write_bytes(frame([b"first", b"file"]))
    record_file = RecordFile(str(path))
    assert payloads_of(record_file) == [b"first", b"file"]
    with open(path, "r+b") as stream:  # same inode, new content, longer
        stream.write(frame([b"other", b"file", b"grown"]))
    assert payloads_of(record_file) == [b"other", b"file", b"grown"]
    (issue,) = record_file.issues
    assert "first bytes changed" in issue.message
