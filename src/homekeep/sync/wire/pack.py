"""The chunk pack format: the records chunks travel in, each checked against its id."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from homekeep.core.errors import InvalidInput
from homekeep.sync.wire.protocol import HASH_BYTES

# A chunk pack is a sequence of records: 32-byte id, 1-byte flags, 4-byte big-endian
# length of what follows, then the chunk (zstd-compressed when flags & 1). With flags & 2
# (servers that answer "patch": true in hello) what follows starts with the 32-byte id of
# an earlier version of the file, the zstd dictionary the chunk was compressed with.
_RECORD = struct.Struct(">32sBI")
RECORD_HEAD = _RECORD.size
FLAG_ZSTD = 1
FLAG_BASE = 2


@dataclass(frozen=True)
class PackRecord:
    """One chunk in a pack, as sent (``data`` still compressed when ``compressed``)."""

    chunk_id: str
    compressed: bool
    data: bytes
    base: str | None = None  # the content id of the dictionary ``data`` needs


def encode_record(
    chunk_id: str, data: bytes, *, compressed: bool, base: str | None = None
) -> bytes:
    """Return one pack record (``base``: compressed against that content, see FLAG_BASE)."""
    if base is None:
        flags = FLAG_ZSTD if compressed else 0
        return _RECORD.pack(bytes.fromhex(chunk_id), flags, len(data)) + data
    head = _RECORD.pack(bytes.fromhex(chunk_id), FLAG_ZSTD | FLAG_BASE, HASH_BYTES + len(data))
    return head + bytes.fromhex(base) + data


def decode_pack(body: bytes | bytearray | memoryview, *, max_chunk: int) -> Iterator[PackRecord]:
    """Yield the records of a pack; raise InvalidInput on any malformed byte."""
    view = memoryview(body)
    pos = 0
    while pos < len(view):
        if len(view) - pos < _RECORD.size:
            raise InvalidInput("chunk pack is truncated inside a record header")
        raw_id, flags, length = _RECORD.unpack_from(view, pos)
        pos += _RECORD.size
        if flags & ~(FLAG_ZSTD | FLAG_BASE) or flags == FLAG_BASE:
            raise InvalidInput(f"chunk pack record has unknown flags {flags}")
        if length > max_chunk + 1024:
            raise InvalidInput(f"chunk pack record of {length} bytes exceeds the chunk limit")
        if len(view) - pos < length:
            raise InvalidInput("chunk pack is truncated inside a chunk")
        base = None
        data = view[pos : pos + length]
        if flags & FLAG_BASE:
            if length <= HASH_BYTES:
                raise InvalidInput("chunk pack record is too short for its base id")
            base, data = bytes(data[:HASH_BYTES]).hex(), data[HASH_BYTES:]
        yield PackRecord(raw_id.hex(), bool(flags & FLAG_ZSTD), bytes(data), base)
        pos += length
