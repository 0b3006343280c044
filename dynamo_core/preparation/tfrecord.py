"""TFRecord files without TensorFlow: framing, CRC-32C checks, a reader and a writer.

A TFRecord file is a sequence of records, each::

    u64  length (little endian)
    u32  masked CRC-32C of the 8 length bytes
    data (length bytes)
    u32  masked CRC-32C of the data

The mask is `((crc >> 15) | (crc << 17)) + 0xa282ead8` modulo 2^32.

CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) uses `google_crc32c` when it is
installed (the `[waymo]` extra). Otherwise a numpy version computes the CRC of many equal
chunks side by side and folds them together with a precomputed "append L zero bytes" operator,
which checks a 1 MB record in tens of milliseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from dynamo_core.errors import DataError

POLYNOMIAL = 0x82F63B78
MASK_DELTA = 0xA282EAD8
HEADER = struct.Struct("<QI")
FOOTER = struct.Struct("<I")
MAX_RECORD_BYTES = 1 << 32
"""No Waymo record comes near this; a larger length means a corrupt header."""


def _byte_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLYNOMIAL if crc & 1 else crc >> 1
        table[byte] = crc
    return table


TABLE = _byte_table()
_TABLE_LIST = [int(v) for v in TABLE]


def _update_python(crc: int, data: bytes | memoryview) -> int:
    """The raw CRC register after `data`, starting from `crc` (no pre- or post-inversion)."""
    table = _TABLE_LIST
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


@lru_cache(maxsize=8)
def _zeros_operator(length: int) -> np.ndarray:
    """(4, 256) tables: the register after `length` zero bytes is the XOR of one entry per input byte."""
    columns = np.array([_update_python(1 << bit, bytes(length)) for bit in range(32)], dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    values = np.arange(256)
    for lane in range(4):
        for bit in range(8):
            hit = (values >> bit) & 1 == 1
            tables[lane, hit] ^= columns[lane * 8 + bit]
    return tables


def _update_numpy(crc: int, data: bytes | memoryview) -> int:
    size = len(data)
    chunk = 1 << max(8, int(round(np.log2(np.sqrt(size)))))  # few distinct sizes, so few cached operators
    head = size % chunk
    crc = _update_python(crc, data[:head])
    lanes = np.frombuffer(data, dtype=np.uint8, offset=head).reshape(-1, chunk)
    registers = np.zeros(lanes.shape[0], dtype=np.uint32)
    for column in range(chunk):
        registers = TABLE[(registers ^ lanes[:, column]) & 0xFF] ^ (registers >> 8)
    tables = _zeros_operator(chunk)
    for value in registers.tolist():
        crc = (
            int(tables[0, crc & 0xFF]) ^ int(tables[1, (crc >> 8) & 0xFF])
            ^ int(tables[2, (crc >> 16) & 0xFF]) ^ int(tables[3, crc >> 24])
        ) ^ value
    return crc


def _crc32c_fallback(data: bytes | memoryview) -> int:
    if len(data) < 4096:
        return _update_python(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    return _update_numpy(0xFFFFFFFF, data) ^ 0xFFFFFFFF


try:  # pragma: no cover - depends on the environment
    import google_crc32c as _google_crc32c

    def crc32c(data: bytes | memoryview) -> int:
        """CRC-32C of `data`."""
        return int(_google_crc32c.value(bytes(data)))

except ImportError:  # pragma: no cover - depends on the environment
    crc32c = _crc32c_fallback


def masked_crc(data: bytes | memoryview) -> int:
    """The CRC that TFRecord stores: CRC-32C rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


class CorruptRecord(DataError):
    """A TFRecord file whose framing or checksums are wrong."""


@dataclass(frozen=True)
class Record:
    offset: int
    """Byte offset of the record's header in the file."""
    data: bytes


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    return data if len(data) == size else b""


def read_records(path: Path | str, name: str | None = None, check: bool = True) -> Iterator[Record]:
    """Yield the records of a TFRecord file, checking both CRCs of each when `check`.

    A corrupt or truncated record raises `CorruptRecord` naming `name` (default: the file
    name) and the byte offset where the record starts.
    """
    path = Path(path)
    label = name or path.name
    offset = 0
    try:
        stream = open(path, "rb")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}.") from None
    with stream:
        while True:
            header = stream.read(HEADER.size)
            if not header:
                return
            where = f"{label}: the record at byte {offset}"
            if len(header) < HEADER.size:
                raise CorruptRecord(f"{where} is truncated (the file ends inside its header); re-download the file.")
            length, length_crc = HEADER.unpack(header)
            if check and masked_crc(header[:8]) != length_crc:
                raise CorruptRecord(f"{where} has a corrupt length (CRC-32C mismatch); re-download the file.")
            if length >= MAX_RECORD_BYTES:
                raise CorruptRecord(f"{where} claims {length} bytes; the file is corrupt, re-download it.")
            data = _read_exact(stream, length)
            footer = _read_exact(stream, FOOTER.size)
            if not footer:
                raise CorruptRecord(f"{where} is truncated (the file ends inside its data); re-download the file.")
            if check and masked_crc(data) != FOOTER.unpack(footer)[0]:
                raise CorruptRecord(f"{where} has corrupt data (CRC-32C mismatch); re-download the file.")
            yield Record(offset, data)
            offset += HEADER.size + length + FOOTER.size


def count_records(path: Path | str) -> int:
    """The number of records, from the length headers only (no CRC checks, no data read)."""
    count = 0
    size = Path(path).stat().st_size
    with open(path, "rb") as stream:
        offset = 0
        while offset < size:
            header = stream.read(HEADER.size)
            if len(header) < HEADER.size:
                break
            length = HEADER.unpack(header)[0]
            offset += HEADER.size + length + FOOTER.size
            stream.seek(offset)
            count += 1
    return count


def encode_record(data: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(data))
    return length + FOOTER.pack(masked_crc(length)) + data + FOOTER.pack(masked_crc(data))


def write_records(stream: BinaryIO, records: list[bytes]) -> None:
    for data in records:
        stream.write(encode_record(data))
