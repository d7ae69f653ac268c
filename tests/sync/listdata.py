"""Packed chunk-list entries for the sync tests: made from seeds, summed, joined, closed."""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Callable

from blake3 import blake3

from homekeep.sync.wire.chunklist import ENTRY_BYTES, Chunks, ListFile
from homekeep.sync.wire.delta import Delta
from homekeep.sync.wire.protocol import CHUNK_MAX, CHUNK_MIN

ENTRY = struct.Struct(">32sI")
Spill = Callable[[bytes], ListFile]


def raw_entries(count: int, seed: int, *, length: int | None = None) -> bytes:
    """``count`` packed entries with distinct ids (seeded) and lengths in 1..CHUNK_MAX."""
    rng = random.Random(seed)
    out = bytearray()
    for i in range(count):
        chunk_id = blake3(f"{seed}:{i}".encode()).digest()
        out += ENTRY.pack(chunk_id, length if length is not None else rng.randint(1, CHUNK_MAX))
    return bytes(out)


def packed(*lengths: int) -> bytes:
    """Entries of the given lengths, with ids from their positions."""
    return b"".join(
        ENTRY.pack(blake3(i.to_bytes(4, "big")).digest(), n) for i, n in enumerate(lengths)
    )


def entries_of(raw: bytes) -> list[bytes]:
    """The entries of a packed list, one bytes each."""
    return [raw[i : i + ENTRY_BYTES] for i in range(0, len(raw), ENTRY_BYTES)]


def total_of(raw: bytes) -> int:
    """The file size a packed list describes."""
    return sum(length for _, length in ENTRY.iter_unpack(raw))


def joined(chunks: Chunks) -> bytes:
    """A chunk list's entries as one packed bytes."""
    return b"".join(chunks.slices())


def close_lists(*lists: Chunks | None) -> None:
    """Close the lists that are files."""
    for chunks in lists:
        if isinstance(chunks, ListFile):
            chunks.close()


def literals_of(delta: Delta) -> int:
    """How many new entries a delta carries."""
    return sum(
        len(base64.b64decode(item)) // ENTRY_BYTES for item in delta if isinstance(item, str)
    )


# Lists a receiver must refuse: (name, packed entries, the declared file size).
BAD_LISTS: list[tuple[str, bytes, int]] = [
    ("zero-length", packed(1000, 0, 1000), 2000),
    ("over-max", packed(1000, CHUNK_MAX + 1), 1000 + CHUNK_MAX + 1),
    ("over-max-huge", packed(0xFFFFFFFF), 0xFFFFFFFF),
    ("truncated-last", packed(1000, 1000, 1000)[:-1], 3000),
    ("half-an-entry", packed(1000)[:20], 1000),
    ("total-short", packed(1000, 2000), 3001),
    ("total-over", packed(1000, 2001), 3000),
    ("empty", b"", 1),
    ("too-many", packed(*[1] * 4), CHUNK_MIN),  # 4 bytes, but at most 8192 // 8192 + 2 entries
    ("too-many-long", packed(*[2] * 1000), CHUNK_MIN * 5),
]
