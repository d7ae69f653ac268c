"""Content hashing shared by the areas: BLAKE3, streamed in constant memory."""

from __future__ import annotations

from pathlib import Path

from blake3 import blake3

READ_SIZE = 1 << 20


def hash_bytes(data: bytes) -> str:
    """Return the BLAKE3 hex digest of ``data``."""
    return blake3(data).hexdigest()


def hash_file(path: Path) -> str:
    """Return the BLAKE3 hex digest of a file, read in 1 MiB blocks."""
    hasher = blake3()
    with path.open("rb") as fh:
        while block := fh.read(READ_SIZE):
            hasher.update(block)
    return hasher.hexdigest()
