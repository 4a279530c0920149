"""Masked CRC32C as TFRecord uses it, from the C ``crc32c`` package when it is installed."""

from __future__ import annotations

from typing import Callable

import numpy as np

_MASK_DELTA = 0xA282EAD8


def _load_crc32c() -> Callable[[bytes], int]:
    try:
        import crc32c  # type: ignore[import-not-found]

        return crc32c.crc32c
    except ImportError:  # pragma: no cover - exercised only without the C package
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (  # type: ignore
            crc32c as pure_python,
        )

        return pure_python


_crc32c = _load_crc32c()


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C TFRecord stores after the length and after the payload."""
    crc = _crc32c(data) & 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _crc32c_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table[byte] = crc
    return table


_TABLE = _crc32c_table()


def _length_tables() -> np.ndarray:
    """Per-byte contributions to the CRC of an 8-byte length whose bytes 3..7 are zero.

    CRC32C over messages of one fixed length is affine over GF(2):
    ``crc(a ^ b) == crc(a) ^ crc(b) ^ crc(0)``, so the CRC of ``(b0, b1, b2, 0, 0, 0, 0, 0)``
    is ``crc(0) ^ T0[b0] ^ T1[b1] ^ T2[b2]``.
    """
    rows = np.zeros((3 * 256 + 1, 8), dtype=np.uint8)
    for position in range(3):
        rows[position * 256 : (position + 1) * 256, position] = np.arange(256)
    crcs = _plain_crc32c_rows(rows)
    zero = crcs[-1]
    return (crcs[:-1] ^ zero).reshape(3, 256), zero


def _plain_crc32c_rows(rows: np.ndarray) -> np.ndarray:
    crc = np.full(rows.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for column in range(rows.shape[1]):
        crc = _TABLE[(crc ^ rows[:, column]) & 0xFF] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


_LENGTH_TABLES, _ZERO_LENGTH_CRC = _length_tables()


def masked_length_crcs(byte0: np.ndarray, byte1: np.ndarray, byte2: np.ndarray) -> np.ndarray:
    """Masked CRC32C of u64 lengths ``byte0 | byte1 << 8 | byte2 << 16`` (vectorised)."""
    crc = _LENGTH_TABLES[0][byte0] ^ _LENGTH_TABLES[1][byte1] ^ _LENGTH_TABLES[2][byte2]
    crc ^= _ZERO_LENGTH_CRC
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)
