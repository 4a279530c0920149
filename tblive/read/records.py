"""TFRecord framing: bytes of an event file -> complete records, incrementally.

An event file is a sequence of records, each::

    u64 length | u32 masked crc32c(length bytes) | payload (length bytes) | u32 masked crc32c(payload)

all little-endian.  :class:`RecordFile` reads one file from a remembered offset to its current end
in bounded blocks and hands out :class:`RecordBlock` objects holding the complete records of that
block.  Its contract:

* Incremental: ``read_blocks()`` returns only records that were not returned before; the offset
  advances past every complete record and never past an incomplete one.
* A half-written last record (training is still writing) is normal: it is left for the next call,
  never reported and never lost.
* What is verified: every record's *length header* CRC (a bad header ends the file with a warning,
  as TensorBoard does: nothing after it can be framed reliably).  The *payload* CRC is checked only
  when ``verify_payload=True`` (each record costs ~1 us with a C crc32c, more than decoding it) or
  when a record fails to decode (see :mod:`tblive.read.events`).  TensorBoard's Rust data server makes
  the same trade.
* Memory is bounded by the block size and by ``max_record_size`` (default
  :data:`DEFAULT_MAX_RECORD_SIZE`, 32 MiB), never by the file size nor by what a length header
  claims: a record longer than the limit is skipped without being read, with a read issue.
* Only regular files are opened (``os.stat`` first, then a non-blocking open): a FIFO, socket or
  device named like an event file is skipped with a read issue and never blocks the reader.  A
  file that cannot be opened or read (permission denied, I/O error) is reported once as a fatal
  read issue (its data is missing); the issue is withdrawn if a later call can read it.
* A file replaced by another of the same name (a new inode, different first bytes, or a size
  below the offset; CatBoost rewrites ``events.out.tfevents``) is read again from the start with a
  read issue, never spliced onto the old offset.

Framing is sequential by nature (each record's position depends on the previous length).  The fast
path finds every position in a block that *looks like* a record header (length < 16 MiB and a
matching header CRC) with numpy, then accepts a chain of such candidates only where each
candidate's end is exactly the next candidate: this proves the chain equals the sequential walk.
Anything else (a huge record, a false candidate inside a payload) falls back to the plain walk from
the first position that is not proven.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from tblive.read.crc import masked_crc32c, masked_length_crcs

logger = logging.getLogger(__name__)

HEADER_SIZE = 12  # u64 length + u32 length crc
FOOTER_SIZE = 4  # u32 payload crc
FRAME_OVERHEAD = HEADER_SIZE + FOOTER_SIZE
DEFAULT_BLOCK_SIZE = 1 << 20  # bounds the transient numpy arrays too (RSS of a long-lived daemon)
_MAX_FAST_LENGTH = 1 << 24  # the vectorised header search handles 3-byte lengths
_MAX_RECORD_LENGTH = 1 << 34  # anything larger is a corrupt header, not a record
DEFAULT_MAX_RECORD_SIZE = 32 << 20  # larger records are skipped unread (images, graphs, tensors)
_HEAD_SIZE = 64  # first bytes remembered to notice a file rewritten in place
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def file_kind(mode: int) -> str:
    """A human name for what a non-regular ``st_mode`` is."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def error_text(error: OSError) -> str:
    """``permission denied`` / ``input/output error``: the OS message without the path."""
    if error.errno is not None:
        return os.strerror(error.errno).lower()
    return str(error)


def size_text(size: int) -> str:
    """``32 MiB`` for whole mebibytes, else ``4096 bytes``."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return "%d MiB" % (size >> 20)
    return "%d bytes" % size


def byte_windows(raw: np.ndarray, width: int) -> np.ndarray:
    """A zero-copy (len - width + 1, width) view: row ``i`` is ``raw[i : i + width]``."""
    rows = max(raw.shape[0] - width + 1, 1)
    if raw.shape[0] < width:
        raw = np.concatenate([raw, np.zeros(width - raw.shape[0], np.uint8)])
    return np.lib.stride_tricks.as_strided(
        raw, shape=(rows, width), strides=(1, 1), writeable=False
    )


@dataclass(frozen=True)
class ReadIssue:
    """Something wrong with the bytes of a file: where it was and what."""

    path: str
    offset: int
    message: str
    fatal: bool = False  # True when the rest of the file cannot be read

    def __str__(self) -> str:
        return "%s: offset %d: %s" % (self.path, self.offset, self.message)


@dataclass
class RecordBlock:
    """Complete records framed from one block of a file.

    ``data`` is the block's bytes; ``starts[i]`` / ``lengths[i]`` locate record ``i``'s payload
    inside ``data``; ``base`` is the file offset of ``data[0]``.
    """

    path: str
    data: bytes
    base: int
    starts: np.ndarray
    lengths: np.ndarray
    end: int = -1  # end of the last framed payload in ``data`` (set when records were dropped)

    def __post_init__(self) -> None:
        if self.end < 0 and len(self):
            self.end = int(self.starts[-1]) + int(self.lengths[-1])

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def payload(self, index: int) -> bytes:
        start = int(self.starts[index])
        return self.data[start : start + int(self.lengths[index])]

    def payload_crc_ok(self, index: int) -> bool:
        start = int(self.starts[index])
        end = start + int(self.lengths[index])
        (stored,) = struct.unpack_from("<I", self.data, end)
        return masked_crc32c(self.data[start:end]) == stored

    def file_offset(self, index: int) -> int:
        """File offset of record ``index``'s header."""
        return self.base + int(self.starts[index]) - HEADER_SIZE


@dataclass
class RecordFile:
    """Incremental reader of one event file's records.  Not thread-safe; one reader per file."""

    path: str
    verify_payload: bool = False
    block_size: int = DEFAULT_BLOCK_SIZE
    offset: int = 0
    issues: List[ReadIssue] = field(default_factory=list)
    ended: bool = False  # a bad length header made the rest unreadable
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE
    _length_crc_cache: Dict[int, int] = field(default_factory=dict, repr=False)
    _unreadable: Optional[ReadIssue] = field(default=None, repr=False)
    _identity: Optional[Tuple[int, int]] = field(default=None, repr=False)
    _head: bytes = field(default=b"", repr=False)
    _oversized_at: int = field(default=-1, repr=False)

    def _issue(self, offset: int, message: str, fatal: bool = False) -> ReadIssue:
        issue = ReadIssue(self.path, offset, message, fatal)
        self.issues.append(issue)
        logger.warning("%s", issue)
        return issue

    @property
    def unreadable(self) -> Optional[str]:
        """Why the last attempt could not read this file at all (None when it could)."""
        return None if self._unreadable is None else self._unreadable.message

    def _cannot_read(self, message: str, fatal: bool = True) -> None:
        """Report once that the file cannot be read now (kept until a read succeeds)."""
        if self._unreadable is not None and self._unreadable.message == message:
            return
        if self._unreadable is not None:
            self._withdraw()
        self._unreadable = self._issue(self.offset, message, fatal)

    def _withdraw(self) -> None:
        if self._unreadable is not None:
            if self._unreadable in self.issues:
                self.issues.remove(self._unreadable)
            logger.info("%s: readable again", self.path)
            self._unreadable = None

    def size(self) -> Optional[int]:
        """Current file size, or None when the file cannot be stat'ed (deleted, I/O error)."""
        try:
            return os.stat(self.path).st_size
        except OSError:
            return None

    def has_new_data(self) -> bool:
        size = self.size()
        return size is not None and not self.ended and size != self.offset

    def _start_over(self, why: str) -> None:
        self._issue(self.offset, "%s; reading it again from the start" % why)
        self.offset = 0
        self.ended = False  # rewritten: whatever ended it may be gone
        self._head = b""
        self._oversized_at = -1

    def _stat(self) -> Optional[os.stat_result]:
        """``os.stat`` of a regular file; None (with a read issue when it matters) otherwise."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if os.path.islink(self.path):
                self._cannot_read("broken symbolic link; skipped")
            return None  # deleted: what was read stays
        except OSError as error:
            self._cannot_read("cannot stat the file (%s); skipped" % error_text(error))
            return None
        if not stat.S_ISREG(info.st_mode):
            self._cannot_read(
                "%s, not a regular file; skipped without opening it" % file_kind(info.st_mode),
                fatal=False,
            )
            return None
        return info

    def read_blocks(self) -> Iterator[RecordBlock]:
        """Yield blocks of complete, not-yet-returned records up to the file's current end.

        A file that cannot be opened or read is reported once as a fatal read issue and retried
        on the next call (the offset is kept); a file that was replaced or shrank is read again
        from the start (the restart rules downstream discard what is re-read).
        """
        info = self._stat()
        if info is None:
            return
        identity = (info.st_dev, info.st_ino)
        if self._identity is not None and identity != self._identity and self.offset:
            self._start_over("file was replaced by another of the same name")
        size = info.st_size
        if size < self.offset:
            self._start_over("file shrank to %d bytes" % size)
        if self.ended or (size == self.offset and self._unreadable is None):
            return
        try:
            descriptor = os.open(self.path, _OPEN_FLAGS)
        except OSError as error:
            self._cannot_read("cannot open the file (%s); skipped" % error_text(error))
            return
        with os.fdopen(descriptor, "rb") as handle:
            opened = os.fstat(descriptor)
            if not stat.S_ISREG(opened.st_mode):  # swapped between stat and open
                self._cannot_read(
                    "%s, not a regular file; skipped" % file_kind(opened.st_mode), fatal=False
                )
                return
            self._identity = (opened.st_dev, opened.st_ino)
            if identity != self._identity and self.offset:
                self._start_over("file was replaced by another of the same name")
            size = opened.st_size
            try:
                if self._head and self.offset:
                    handle.seek(0)
                    if handle.read(len(self._head)) != self._head:
                        self._start_over("file was rewritten (its first bytes changed)")
                yield from self._read_from(handle, size)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return  # a non-blocking read on something odd: nothing now
                self._cannot_read(
                    "cannot read the file at offset %d (%s); retried later"
                    % (self.offset, error_text(error))
                )
                return
            self._withdraw()

    def _read_from(self, handle, size: int) -> Iterator[RecordBlock]:
        while not self.ended and self.offset < size:
            handle.seek(self.offset)
            data = handle.read(min(self.block_size, size - self.offset))
            if self.offset == 0 and not self._head:
                self._head = data[:_HEAD_SIZE]
            block, needed = self._frame(data)
            if block is not None and block.end >= 0:
                self.offset = block.base + block.end + FOOTER_SIZE
                if len(block):
                    yield block
                continue
            if not needed:
                return  # partial record at the end: wait for the writer
            if needed - FRAME_OVERHEAD > self.max_record_size:
                self._oversized(needed, size)
                if self.offset + needed > size:
                    return
                self.offset += needed  # skipped unread
                continue
            if self.offset + needed > size:
                return  # partial record at the end: wait for the writer
            # one record larger than the block: read exactly that record
            handle.seek(self.offset)
            block = self._frame_one(handle.read(needed))
            if block is None:
                return
            self.offset += needed
            if len(block):
                yield block

    def _oversized(self, needed: int, size: int) -> None:
        if self._oversized_at == self.offset:
            return
        self._oversized_at = self.offset
        self._issue(
            self.offset,
            "record of %d bytes is larger than the limit of %s (max_record_size); skipped "
            "without reading it" % (needed - FRAME_OVERHEAD, size_text(self.max_record_size)),
        )

    # -- framing ---------------------------------------------------------------------------

    def _length_crc(self, length: int) -> int:
        crc = self._length_crc_cache.get(length)
        if crc is None:
            crc = masked_crc32c(struct.pack("<Q", length))
            if len(self._length_crc_cache) < 65536:
                self._length_crc_cache[length] = crc
        return crc

    def _frame_one(self, data: bytes) -> Optional[RecordBlock]:
        """Frame ``data`` holding exactly one record (the file offset ``self.offset``).

        Used for records larger than a block, so that no per-byte search arrays are built over
        them.  None when the bytes changed since the header was read (the caller retries later).
        """
        if len(data) < FRAME_OVERHEAD:
            return None
        length, length_crc = struct.unpack_from("<QI", data, 0)
        if length_crc != self._length_crc(length) or FRAME_OVERHEAD + length != len(data):
            return None
        block = RecordBlock(
            self.path,
            data,
            self.offset,
            np.array([HEADER_SIZE], dtype=np.int64),
            np.array([length], dtype=np.int64),
        )
        return self._drop_corrupt(block) if self.verify_payload else block

    def _frame(self, data: bytes):
        """Frame the complete records at the start of ``data`` (file offset ``self.offset``).

        Returns ``(block, needed)``: the block of complete records (None if there are none), and,
        when the first record does not fit in ``data``, the total size it needs (else 0).
        """
        size = len(data)
        starts: List[np.ndarray] = []
        lengths: List[np.ndarray] = []
        candidates, cand_lengths, cand_next, run_end = self._candidates(data)
        position = 0
        while position + HEADER_SIZE <= size:
            index = int(np.searchsorted(candidates, position))
            if index < candidates.shape[0] and candidates[index] == position:
                last = int(run_end[index])
                # records of the chain that end inside the block
                fits = int(np.searchsorted(cand_next[index : last + 1], size, side="right"))
                if fits:
                    stop = index + fits
                    starts.append(candidates[index:stop] + HEADER_SIZE)
                    lengths.append(cand_lengths[index:stop])
                    position = int(cand_next[stop - 1])
                    if stop <= last:
                        break  # the next record is incomplete
                    continue
                if position == 0:
                    return None, int(cand_next[index])  # one record larger than the block
                break
            # slow path: one record by hand
            length, length_crc = struct.unpack_from("<QI", data, position)
            if length_crc != self._length_crc(length) or length > _MAX_RECORD_LENGTH:
                self._issue(
                    self.offset + position,
                    "corrupt record length header (length crc mismatch); "
                    "the rest of the file is skipped",
                    fatal=True,
                )
                self.ended = True
                break
            end = position + HEADER_SIZE + length + FOOTER_SIZE
            if end > size or length > self.max_record_size:
                if position == 0 and not starts:
                    return None, end
                break
            starts.append(np.array([position + HEADER_SIZE], dtype=np.int64))
            lengths.append(np.array([length], dtype=np.int64))
            position = end
        if not starts:
            return None, 0
        all_starts = np.concatenate(starts) if len(starts) > 1 else starts[0]
        all_lengths = np.concatenate(lengths) if len(lengths) > 1 else lengths[0]
        block = RecordBlock(self.path, data, self.offset, all_starts, all_lengths)
        if self.verify_payload:
            block = self._drop_corrupt(block)
        return block, 0

    def _drop_corrupt(self, block: RecordBlock) -> RecordBlock:
        """Check every payload CRC; report and drop the records that fail it."""
        good = np.ones(len(block), dtype=bool)
        for index in range(len(block)):
            if not block.payload_crc_ok(index):
                good[index] = False
                self._issue(
                    block.file_offset(index), "corrupted record (payload crc mismatch); skipped"
                )
        if good.all():
            return block
        # keep the offset bookkeeping: the block still ends after its last framed record
        end = int(block.starts[-1]) + int(block.lengths[-1])
        return RecordBlock(
            block.path, block.data, block.base, block.starts[good], block.lengths[good], end
        )

    def _candidates(self, data: bytes):
        """Positions in ``data`` that look like record headers, and how far each chain runs.

        Returns ``(positions, lengths, next_positions, run_end)`` where ``run_end[i]`` is the last
        index of the proven chain that contains candidate ``i``.
        """
        size = len(data)
        empty = np.zeros(0, dtype=np.int64)
        if size < FRAME_OVERHEAD:
            return empty, empty, empty, empty
        raw = np.frombuffer(data, dtype=np.uint8)
        span = size - HEADER_SIZE + 1  # the header must fit
        zero = raw == 0
        # bytes 3..7 of the u64 length are zero for records shorter than 16 MiB
        positions = np.flatnonzero(zero[3 : 3 + span] & zero[7 : 7 + span])
        for byte in (4, 5, 6):
            positions = positions[zero[positions + byte]]
        if positions.shape[0] == 0:
            return empty, empty, empty, empty
        byte0, byte1, byte2 = raw[positions], raw[positions + 1], raw[positions + 2]
        stored_crc = np.ascontiguousarray(byte_windows(raw, 4)[positions + 8]).view("<u4")
        good = masked_length_crcs(byte0, byte1, byte2) == stored_crc.reshape(-1)
        positions = positions[good].astype(np.int64)
        cand_lengths = (
            byte0[good].astype(np.int64)
            | (byte1[good].astype(np.int64) << 8)
            | (byte2[good].astype(np.int64) << 16)
        )
        if self.max_record_size < _MAX_FAST_LENGTH:
            small = cand_lengths <= self.max_record_size  # larger ones take the checked walk
            positions, cand_lengths = positions[small], cand_lengths[small]
        cand_next = positions + FRAME_OVERHEAD + cand_lengths
        count = positions.shape[0]
        if count == 0:
            return empty, empty, empty, empty
        linked = cand_next[:-1] == positions[1:]
        breaks = np.flatnonzero(~linked)
        # run_end[i] = first break index >= i (or the last candidate)
        ends = np.append(breaks, count - 1)
        run_end = ends[np.searchsorted(ends, np.arange(count))]
        return positions, cand_lengths, cand_next, run_end
