"""Records -> scalar points: every scalar any real writer produces, fast.

:class:`EventDecoder` turns the records of a :class:`~tblive.read.records.RecordBlock` into a
:class:`ScalarBatch` in record order.  One decoder serves one directory of event files (one
TensorBoard "run"), because the plugin metadata that marks a tensor as a scalar is written only
with a tag's *first* event and must be remembered across that directory's files.

What counts as a scalar:

* ``Summary.Value.simple_value`` (tensorboardX, torch.utils.tensorboard, SB3, rsl_rl, ML-Agents,
  Lightning, CatBoost);
* rank-0 numeric tensors of the ``scalars`` plugin (TF2 / Keras ``tensor_content``; torch
  ``new_style=True`` ``float_val``/``double_val``; half, bfloat16, int and bool types too).

Everything else (histograms, images, audio, text, pr-curves, hparams, graphs, non-scalar tensors)
is skipped without error and counted by kind in :attr:`EventDecoder.skipped`.  A record that does
not parse is reported once (as a CRC mismatch if its payload CRC is wrong, else as undecodable)
and skipped.  ``SessionLog.START`` events are reported as restart barriers; the run layer applies
TensorBoard's restart semantics.

The common record shape (``wall_time``, ``step``, one ``Value`` with ``tag`` and
``simple_value``) is decoded for a whole block at once with numpy; any other record goes through
the protobuf decoder.  Both paths give identical results: the vectorised one accepts a record only
if it matches that shape exactly, byte for byte, to the end of the payload.

A tag that is not valid UTF-8 is read on both paths as the same string, its bad bytes written as
``\\xNN`` escapes (``errors="backslashreplace"``, so distinct byte strings stay distinct tags),
with one read issue per tag.  Protobuf refuses such an event outright; the protobuf path then
repairs the tag fields of the raw bytes and parses again.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from tblive.read.records import ReadIssue, RecordBlock, byte_windows

logger = logging.getLogger(__name__)

SCALARS_PLUGIN = "scalars"
_MAX_FAST_TAG = 1024
_HASH_MULTIPLIER = np.uint64(1099511628211)  # FNV-1a 64-bit prime
_HASH_SEED = np.uint64(14695981039346656037)
_MAX_FAST_RECORD = 2 * _MAX_FAST_TAG  # longer events never have the fast path's shape
_TAG_ERRORS = "backslashreplace"  # how both paths decode a tag that is not valid UTF-8


@dataclass
class ScalarBatch:
    """Scalar points of one block, in the order they were written.

    ``tags[tag_ids[i]]`` is point ``i``'s tag.  ``restarts`` lists ``(point_index, step)`` for each
    ``SessionLog.START`` seen: it applies before point ``point_index``.
    """

    tags: List[str]
    tag_ids: np.ndarray
    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray
    restarts: List[Tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @staticmethod
    def empty() -> ScalarBatch:
        return ScalarBatch(
            [],
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
        )


def _event_proto():
    from tensorboard.compat.proto import event_pb2

    return event_pb2


def _gather(raw: np.ndarray, index: np.ndarray, width: int) -> np.ndarray:
    """``raw[index[i] : index[i] + width]`` for each i, as an (n, width) uint8 array.

    Indices past the end are clipped; the caller's structural checks reject such rows.
    """
    windows = byte_windows(raw, width)
    return windows[np.minimum(index, windows.shape[0] - 1)]


def _varints(raw: np.ndarray, index: np.ndarray, max_bytes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Decode varints starting at ``index``.  Returns (values as uint64, sizes); size 0 = invalid."""
    count = index.shape[0]
    values = np.zeros(count, dtype=np.uint64)
    size = np.zeros(count, dtype=np.int64)
    pending = np.ones(count, dtype=bool)
    last = raw.shape[0] - 1
    for k in range(max_bytes):
        byte = raw[np.minimum(index + k, last)]
        values |= np.where(pending, (byte & 0x7F).astype(np.uint64), np.uint64(0)) << np.uint64(
            7 * k
        )
        ends_here = pending & (byte < 0x80)
        size[ends_here] = k + 1
        pending &= ~ends_here
        if not pending.any():
            break
    return values, size


def _fixed(raw: np.ndarray, index: np.ndarray, dtype: str) -> np.ndarray:
    width = np.dtype(dtype).itemsize
    return np.ascontiguousarray(_gather(raw, index, width)).view(dtype).reshape(-1)


_DTYPES = {
    1: ("float_val", "<f4"),  # DT_FLOAT
    2: ("double_val", "<f8"),  # DT_DOUBLE
    3: ("int_val", "<i4"),  # DT_INT32
    4: ("int_val", "<u1"),  # DT_UINT8
    5: ("int_val", "<i2"),  # DT_INT16
    6: ("int_val", "<i1"),  # DT_INT8
    9: ("int64_val", "<i8"),  # DT_INT64
    10: ("bool_val", "?"),  # DT_BOOL
    14: ("half_val", "bfloat16"),  # DT_BFLOAT16
    17: ("int_val", "<u2"),  # DT_UINT16
    19: ("half_val", "<f2"),  # DT_HALF
    22: ("uint32_val", "<u4"),  # DT_UINT32
    23: ("uint64_val", "<u8"),  # DT_UINT64
}


def scalar_from_tensor(tensor) -> Optional[float]:
    """The value of a rank-0 (or one-element) numeric ``TensorProto``; None when it is not one
    or its bytes do not make one (never raises)."""
    if any(dim.size != 1 for dim in tensor.tensor_shape.dim):
        return None
    spec = _DTYPES.get(tensor.dtype)
    if spec is None:
        return None
    field_name, dtype = spec
    content = tensor.tensor_content
    if content:
        if dtype == "bfloat16":
            if len(content) != 2:
                return None
            return _bfloat16(int.from_bytes(content, "little"))
        if len(content) != np.dtype(dtype).itemsize:
            return None
        return float(np.frombuffer(content, dtype=dtype)[0])
    values = getattr(tensor, field_name)
    if len(values) != 1:
        return None
    value = values[0]
    if field_name == "half_val":  # half and bfloat16 are stored as their 16-bit pattern
        bits = int(value) & 0xFFFF
        if dtype == "bfloat16":
            return _bfloat16(bits)
        return float(np.array([bits], dtype="<u2").view("<f2")[0])
    return float(value)


def _bfloat16(bits: int) -> float:
    return float(np.array([(bits & 0xFFFF) << 16], dtype="<u4").view("<f4")[0])


@dataclass
class EventDecoder:
    """Decodes the records of one run directory's event files into scalar points.

    State kept across files and calls: the plugin name of every tag seen with metadata, the
    latest ``file_version``, counters of skipped non-scalar summaries, and the read issues.
    """

    source: str = ""
    plugin_of_tag: Dict[str, str] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    issues: List[ReadIssue] = field(default_factory=list)
    file_version: Optional[str] = None
    records: int = 0
    _bad_tags: Set[bytes] = field(default_factory=set, repr=False)

    def tag_text(self, raw: bytes, path: str = "", offset: int = 0) -> str:
        """A tag's bytes as text, the same on both paths; reports a non-UTF-8 tag once."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", _TAG_ERRORS)
            if raw not in self._bad_tags:
                self._bad_tags.add(raw)
                issue = ReadIssue(
                    path or self.source,
                    offset,
                    "tag %r is not valid UTF-8; read as %r" % (raw, text),
                )
                self.issues.append(issue)
                logger.warning("%s", issue)
            return text

    def decode(self, block: RecordBlock) -> ScalarBatch:
        """Decode every record of ``block``; never raises for bad bytes."""
        count = len(block)
        self.records += count
        if count == 0:
            return ScalarBatch.empty()
        if int(block.lengths.min()) > _MAX_FAST_RECORD:
            # only big records (images, graphs, tensors): no padded copy of the block for a
            # fast path none of them can take
            empty = ScalarBatch.empty()
            return self._merge_slow(
                block,
                np.arange(count),
                np.zeros(0, np.int64),
                [],
                empty.tag_ids,
                empty.steps,
                empty.wall_times,
                empty.values,
            )
        # zero padding so that fixed-width gathers near the end read real bytes, not clipped ones
        raw = np.frombuffer(block.data + bytes(_MAX_FAST_TAG + 16), dtype=np.uint8)
        fast, tag_start, tag_len, steps, walls, values = self._fast_path(raw, block)
        fast_index = np.flatnonzero(fast)
        tags, tag_ids = self._tag_ids(raw, tag_start, tag_len, block)
        slow_index = np.flatnonzero(~fast)
        if slow_index.shape[0] == 0:
            return ScalarBatch(tags, tag_ids, steps, walls, values)
        return self._merge_slow(block, slow_index, fast_index, tags, tag_ids, steps, walls, values)

    # -- the vectorised path ------------------------------------------------------------

    def _fast_path(self, raw: np.ndarray, block: RecordBlock):
        starts = block.starts
        lengths = block.lengths
        ends = starts + lengths
        fast = raw[starts] == 0x09  # wall_time, fixed64
        fast &= lengths >= 9 + 1 + 2 + 2 + 5
        walls = _fixed(raw, starts + 1, "<f8")
        position = starts + 9
        has_step = raw[np.minimum(position, raw.shape[0] - 1)] == 0x10
        step_values, step_sizes = _varints(raw, position + 1, 10)
        fast &= ~has_step | (step_sizes > 0)
        steps = np.where(has_step, step_values, np.uint64(0)).view(np.int64)
        position = np.where(has_step, position + 1 + step_sizes, position)
        # summary (field 5, length-delimited) spanning the rest of the event
        fast &= raw[np.minimum(position, raw.shape[0] - 1)] == 0x2A
        summary_len, summary_size = _varints(raw, position + 1, 3)
        position = position + 1 + summary_size
        fast &= (summary_size > 0) & (position + summary_len.astype(np.int64) == ends)
        # exactly one Value (field 1) spanning the summary
        fast &= raw[np.minimum(position, raw.shape[0] - 1)] == 0x0A
        value_len, value_size = _varints(raw, position + 1, 3)
        position = position + 1 + value_size
        fast &= (value_size > 0) & (position + value_len.astype(np.int64) == ends)
        # tag (field 1), then simple_value (field 2, fixed32) ending the value
        fast &= raw[np.minimum(position, raw.shape[0] - 1)] == 0x0A
        tag_len, tag_size = _varints(raw, position + 1, 2)
        tag_start = position + 1 + tag_size
        tag_len = tag_len.astype(np.int64)
        fast &= (tag_size > 0) & (tag_len <= _MAX_FAST_TAG)
        value_tag_at = tag_start + tag_len
        fast &= value_tag_at + 5 == ends
        fast &= raw[np.minimum(value_tag_at, raw.shape[0] - 1)] == 0x15
        with np.errstate(invalid="ignore", over="ignore"):  # rows the checks above rejected
            values = _fixed(raw, value_tag_at + 1, "<f4").astype(np.float64)
        keep = np.flatnonzero(fast)
        return (
            fast,
            tag_start[keep],
            tag_len[keep],
            steps[keep],
            walls[keep],
            values[keep],
        )

    def _tag_ids(
        self, raw: np.ndarray, tag_start: np.ndarray, tag_len: np.ndarray, block: RecordBlock
    ):
        """Group the fast records' tag bytes: (tag names, per-record index into them)."""
        count = tag_start.shape[0]
        if count == 0:
            return [], np.zeros(0, np.int32)
        width = -(-int(tag_len.max()) // 8) * 8
        matrix = np.array(_gather(raw, tag_start, width))
        matrix[np.arange(width)[None, :] >= tag_len[:, None]] = 0
        words = matrix.view("<u8")
        hashes = np.full(count, _HASH_SEED, dtype=np.uint64) ^ tag_len.astype(np.uint64)
        for column in range(words.shape[1]):
            hashes = (hashes ^ words[:, column]) * _HASH_MULTIPLIER
        unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        # prove there was no hash collision: every record's bytes equal its representative's
        representative = first[inverse]
        exact = np.array_equal(tag_len, tag_len[representative]) and np.array_equal(
            words, words[representative]
        )
        if not exact:  # pragma: no cover - a 64-bit collision inside one block
            names: Dict[bytes, int] = {}
            ids = np.empty(count, np.int32)
            for i in range(count):
                start = int(tag_start[i])
                key = raw[start : start + int(tag_len[i])].tobytes()
                ids[i] = names.setdefault(key, len(names))
            return [self.tag_text(key, block.path) for key in names], ids
        tags = []
        for index in first:
            start = int(tag_start[index])
            tags.append(
                self.tag_text(raw[start : start + int(tag_len[index])].tobytes(), block.path)
            )
        return tags, inverse.astype(np.int32)

    # -- the protobuf path --------------------------------------------------------------

    def _merge_slow(self, block, slow_index, fast_index, tags, tag_ids, steps, walls, values):
        tag_lookup = {tag: i for i, tag in enumerate(tags)}
        extra_order: List[int] = []
        extra_tags: List[int] = []
        extra_steps: List[int] = []
        extra_walls: List[float] = []
        extra_values: List[float] = []
        restart_records: List[Tuple[int, int]] = []
        for record in slow_index.tolist():
            try:
                decoded = list(self._decode_record(block, record))
            except Exception as error:  # a parsed event whose contents make no sense
                issue = ReadIssue(
                    block.path, block.file_offset(record), "unreadable event (%s); skipped" % error
                )
                self.issues.append(issue)
                logger.warning("%s", issue)
                continue
            for kind, tag, step, wall, value in decoded:
                if kind == "restart":
                    restart_records.append((record, step))
                    continue
                tag_id = tag_lookup.get(tag)
                if tag_id is None:
                    tag_id = tag_lookup[tag] = len(tags)
                    tags.append(tag)
                extra_order.append(record)
                extra_tags.append(tag_id)
                extra_steps.append(step)
                extra_walls.append(wall)
                extra_values.append(value)
        if extra_order:
            order = np.concatenate([fast_index, np.array(extra_order, dtype=np.int64)])
            permutation = np.argsort(order, kind="stable")
            order = order[permutation]
            tag_ids = np.concatenate([tag_ids, np.array(extra_tags, np.int32)])[permutation]
            steps = np.concatenate([steps, np.array(extra_steps, np.int64)])[permutation]
            walls = np.concatenate([walls, np.array(extra_walls, np.float64)])[permutation]
            values = np.concatenate([values, np.array(extra_values, np.float64)])[permutation]
        else:
            order = fast_index
        restarts = [(int(np.searchsorted(order, record)), step) for record, step in restart_records]
        return ScalarBatch(tags, tag_ids, steps, walls, values, restarts)

    def _with_repaired_tags(self, payload: bytes, block: RecordBlock, record: int):
        """The event parsed after re-encoding non-UTF-8 tags as :meth:`tag_text` does, or None."""
        bad: List[bytes] = []

        def fix(raw: bytes) -> bytes:
            try:
                raw.decode("utf-8")
                return raw
            except UnicodeDecodeError:
                bad.append(raw)
                return raw.decode("utf-8", _TAG_ERRORS).encode("utf-8")

        try:
            repaired = _rewrite(
                payload,
                {
                    5: lambda summary: _rewrite(
                        summary, {1: lambda v: _rewrite(v, {1: fix, 7: fix})}
                    )
                },
            )
            event = _event_proto().Event.FromString(repaired)
        except Exception:
            return None
        for raw in bad:
            self.tag_text(raw, block.path, block.file_offset(record))
        return event

    def _decode_record(self, block: RecordBlock, record: int):
        """Yield ``(kind, tag, step, wall_time, value)`` for one record the fast path declined."""
        start = int(block.starts[record])
        payload = memoryview(block.data)[start : start + int(block.lengths[record])]  # no copy
        event_pb2 = _event_proto()
        try:
            event = event_pb2.Event.FromString(payload)
        except Exception:  # protobuf raises DecodeError and, on some versions, others
            crc_ok = block.payload_crc_ok(record)
            event = self._with_repaired_tags(bytes(payload), block, record) if crc_ok else None
        if event is None:
            message = (
                "undecodable event record (payload crc ok); skipped"
                if crc_ok
                else "corrupted record (payload crc mismatch); skipped"
            )
            issue = ReadIssue(block.path, block.file_offset(record), message)
            self.issues.append(issue)
            logger.warning("%s", issue)
            return
        what = event.WhichOneof("what")
        if what == "file_version":
            self.file_version = event.file_version
            return
        if what == "session_log":
            if event.session_log.status == event_pb2.SessionLog.START:
                yield ("restart", "", int(event.step), event.wall_time, 0.0)
            return
        if what != "summary":
            if what is not None:
                self.skipped[_SKIP_NAMES.get(what, what)] += 1
            return
        for value in event.summary.value:
            tag = value.tag
            if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                self.plugin_of_tag[tag] = value.metadata.plugin_data.plugin_name
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                yield ("scalar", tag, int(event.step), event.wall_time, float(value.simple_value))
            elif kind == "tensor":
                plugin = self.plugin_of_tag.get(tag, "")
                scalar = scalar_from_tensor(value.tensor) if plugin == SCALARS_PLUGIN else None
                if scalar is None:
                    kind_name = "malformed scalar tensors" if plugin == SCALARS_PLUGIN else plugin
                    self.skipped[kind_name or "tensors"] += 1
                else:
                    yield ("scalar", tag, int(event.step), event.wall_time, scalar)
            elif kind is None:
                self.skipped[self.plugin_of_tag.get(tag) or "empty values"] += 1
            else:
                self.skipped[_SKIP_NAMES.get(kind, kind)] += 1


def _varint(data: bytes, position: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _rewrite(message: bytes, fixes: Dict[int, Callable[[bytes], bytes]]) -> bytes:
    """``message`` (protobuf wire format) with each length-delimited field whose number is in
    ``fixes`` replaced by ``fixes[number](its bytes)``; raises ValueError on bad wire format."""
    out = bytearray()
    position = 0
    while position < len(message):
        start = position
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, position = _varint(message, position)
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        elif wire == 2:
            length, position = _varint(message, position)
            value = message[position : position + length]
            position += length
            if position <= len(message) and number in fixes:
                new = fixes[number](value)
                out += _encode_varint(key) + _encode_varint(len(new)) + new
                continue
        else:
            raise ValueError("unsupported wire type %d" % wire)
        if position > len(message):
            raise ValueError("truncated field")
        out += message[start:position]
    return bytes(out)


_SKIP_NAMES = {
    "histo": "histograms",
    "image": "images",
    "audio": "audio",
    "obsolete_old_style_histogram": "histograms",
    "graph_def": "graphs",
    "meta_graph_def": "graphs",
    "tagged_run_metadata": "run metadata",
    "log_message": "log messages",
}
