"""A minimal protobuf wire-format decoder: enough to read Waymo `Frame` messages.

A message is a sequence of (key, value) pairs. The key is a varint `field << 3 | wire type`;
wire type 0 is a varint, 1 eight bytes, 2 a length-prefixed byte string (a string, bytes, a
sub-message or a packed repeated field) and 5 four bytes. Only the fields asked for are
interpreted, and sub-messages are parsed when they are read, so the large camera images and
range images of a frame are never copied.

Repeated scalars are accepted both packed (one length-prefixed run) and unpacked (one key per
value), since real files use either.
"""

from __future__ import annotations

import struct
from typing import Optional

import numpy as np

from dynamo_core.errors import DataError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


class DecodeError(DataError):
    """Bytes that are not a well-formed protobuf message."""


def read_varint(data: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    result = shift = 0
    while True:
        if position >= len(data):
            raise DecodeError("a varint runs past the end of the message")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise DecodeError("a varint is longer than 10 bytes")


def decode_varints(data: bytes | memoryview) -> np.ndarray:
    """All varints of a packed run, as int64 (negative int32 values come back negative)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(raw < 0x80)
    if ends.size == 0 or ends[-1] != raw.size - 1:
        raise DecodeError("a packed varint run ends inside a varint")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise DecodeError("a varint is longer than 10 bytes")
    within = np.arange(raw.size) - np.repeat(starts, lengths)
    parts = (raw & 0x7F).astype(np.uint64) << (7 * within).astype(np.uint64)
    return np.add.reduceat(parts, starts).view(np.int64)


class Message:
    """The fields of one message: field number -> list of (wire type, raw value)."""

    __slots__ = ("fields",)

    def __init__(self, data: bytes | memoryview):
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        fields: dict[int, list[tuple[int, object]]] = {}
        position, end = 0, len(view)
        while position < end:
            key, position = read_varint(view, position)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise DecodeError("a field has number 0")
            if wire == VARINT:
                value, position = read_varint(view, position)
            elif wire == FIXED64:
                value, position = view[position:position + 8], position + 8
            elif wire == LENGTH:
                size, position = read_varint(view, position)
                value, position = view[position:position + size], position + size
            elif wire == FIXED32:
                value, position = view[position:position + 4], position + 4
            else:
                raise DecodeError(f"field {number} has wire type {wire}, which this decoder does not read")
            if position > end:
                raise DecodeError(f"field {number} runs past the end of the message")
            fields.setdefault(number, []).append((wire, value))
        self.fields = fields

    def has(self, number: int) -> bool:
        return number in self.fields

    def _last(self, number: int):
        entries = self.fields.get(number)
        return entries[-1] if entries else None

    def int(self, number: int, default: int = 0) -> int:
        """An int32/int64/enum field (negative values come back negative)."""
        entry = self._last(number)
        if entry is None:
            return default
        wire, value = entry
        if wire != VARINT:
            raise DecodeError(f"field {number} should be a varint, found wire type {wire}")
        return value - (1 << 64) if value >= 1 << 63 else value

    def ints(self, number: int) -> np.ndarray:
        """A repeated integer field, packed or not, as int64."""
        parts = []
        for wire, value in self.fields.get(number, ()):
            if wire == LENGTH:
                parts.append(decode_varints(value))
            elif wire == VARINT:
                parts.append(np.array([value], dtype=np.uint64).view(np.int64))
            else:
                raise DecodeError(f"field {number} should hold integers, found wire type {wire}")
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _reals(self, number: int, wire_single: int, dtype: str) -> np.ndarray:
        parts = []
        for wire, value in self.fields.get(number, ()):
            if wire == LENGTH:
                if len(value) % np.dtype(dtype).itemsize:
                    raise DecodeError(f"packed field {number} has a length that is not a whole number of values")
                parts.append(np.frombuffer(value, dtype=dtype))
            elif wire == wire_single:
                parts.append(np.frombuffer(value, dtype=dtype))
            else:
                raise DecodeError(f"field {number} should hold {dtype} values, found wire type {wire}")
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0, dtype=np.float64)

    def doubles(self, number: int) -> np.ndarray:
        """A repeated double field, packed or not."""
        return self._reals(number, FIXED64, "<f8")

    def floats(self, number: int) -> np.ndarray:
        """A repeated float field, packed or not, widened to float64."""
        return self._reals(number, FIXED32, "<f4")

    def double(self, number: int, default: Optional[float] = 0.0) -> Optional[float]:
        entry = self._last(number)
        if entry is None:
            return default
        wire, value = entry
        if wire != FIXED64:
            raise DecodeError(f"field {number} should be a double, found wire type {wire}")
        return _DOUBLE.unpack(value)[0]

    def float(self, number: int, default: Optional[float] = 0.0) -> Optional[float]:
        entry = self._last(number)
        if entry is None:
            return default
        wire, value = entry
        if wire != FIXED32:
            raise DecodeError(f"field {number} should be a float, found wire type {wire}")
        return _FLOAT.unpack(value)[0]

    def bytes(self, number: int) -> memoryview:
        entry = self._last(number)
        if entry is None:
            return memoryview(b"")
        wire, value = entry
        if wire != LENGTH:
            raise DecodeError(f"field {number} should be a byte string, found wire type {wire}")
        return value

    def string(self, number: int) -> str:
        return bytes(self.bytes(number)).decode("utf-8", errors="replace")

    def message(self, number: int) -> Optional["Message"]:
        """The sub-message in field `number`, or None when it is absent."""
        entry = self._last(number)
        if entry is None:
            return None
        wire, value = entry
        if wire != LENGTH:
            raise DecodeError(f"field {number} should be a message, found wire type {wire}")
        return Message(value)

    def messages(self, number: int) -> list["Message"]:
        """Every sub-message of a repeated field, in order."""
        found = []
        for wire, value in self.fields.get(number, ()):
            if wire != LENGTH:
                raise DecodeError(f"field {number} should hold messages, found wire type {wire}")
            found.append(Message(value))
        return found
