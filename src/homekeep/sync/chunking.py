"""Cut files into content-defined chunks (FastCDC) and name them by BLAKE3, in constant memory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3
from pyfastcdc import FastCDC

from homekeep.sync.protocol import CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CHUNK_NC, ChunkRef

_CHUNKER = FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX, normalized_chunking=CHUNK_NC)
READ_SIZE = 4 << 20


class FileChanged(Exception):
    """The file changed while it was read: it is still being written."""


@dataclass(frozen=True)
class Digest:
    """A file's whole-content id and its chunk list."""

    file_hash: str
    size: int
    chunks: list[ChunkRef]


def chunk_id(data: bytes | memoryview) -> str:
    """Return the id of one chunk."""
    return blake3(data).hexdigest()


def digest_file(path: Path, *, expect_size: int, expect_mtime_ns: int) -> Digest:
    """Chunk and hash a file; raise FileChanged if it is not the file that was stat'ed."""
    whole = blake3()
    chunks: list[ChunkRef] = []
    size = 0
    with path.open("rb", buffering=0) as fh:
        before = os.fstat(fh.fileno())
        if before.st_size != expect_size or before.st_mtime_ns != expect_mtime_ns:
            raise FileChanged(str(path))
        for chunk in FastCDC.cut_stream(_CHUNKER, fh):
            whole.update(chunk.data)
            chunks.append(ChunkRef(blake3(chunk.data).hexdigest(), chunk.length))
            size += chunk.length
        after = os.fstat(fh.fileno())
    if size != expect_size or after.st_mtime_ns != expect_mtime_ns or after.st_size != size:
        raise FileChanged(str(path))
    return Digest(whole.hexdigest(), size, chunks)
