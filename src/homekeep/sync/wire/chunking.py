"""Cut files into content-defined chunks (FastCDC) and name them by BLAKE3, in constant memory."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3
from pyfastcdc import FastCDC

from homekeep.sync.wire.chunklist import ChunkListBuilder, Chunks
from homekeep.sync.wire.protocol import CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CHUNK_NC

# shared by every thread: a FastCDC object is only its parameters and gear table, read-only
# after construction; each cut_buf/cut_stream call keeps its position in a chunker of its own
_CHUNKER = FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX, normalized_chunking=CHUNK_NC)
READ_SIZE = 4 << 20
# the server's threads that chunk and hash uploads as they arrive; more uploads queue here
DIGESTERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="digest")
SMALL_FILE = 1 << 20  # read whole and cut in memory up to this size
KEEP_DATA = 64 << 10  # a digest keeps the content of files up to this size


class FileChanged(Exception):
    """The file changed while it was read: it is still being written."""


@dataclass(frozen=True)
class Digest:
    """A file's whole-content id and its chunk list (and a small file's content, as read)."""

    file_hash: str
    size: int
    chunks: Chunks
    data: bytes | None = field(default=None, repr=False, compare=False)


def chunk_id(data: bytes | memoryview) -> str:
    """Return the id of one chunk."""
    return blake3(data).hexdigest()


class Follower:
    """Reads a file while another thread writes it, never past what the writer published.

    Lets the server chunk and hash a streamed upload as it arrives instead of reading the
    whole file again afterwards.
    """

    def __init__(self, path: Path) -> None:
        # _cond guards what the writer publishes (_published, _done, _failed); _fh and _pos
        # belong to the reading thread
        self._fh = path.open("rb", buffering=0)
        self._spill_dir = path.parent  # a huge file's chunk list goes next to it
        self._cond = threading.Condition()
        self._published = 0
        self._pos = 0
        self._done = False
        self._failed = False

    def publish(self, total: int, *, done: bool = False) -> None:
        """The writer flushed ``total`` bytes (and, with ``done``, will write no more)."""
        with self._cond:
            self._published = total
            self._done = done
            self._cond.notify_all()

    def abort(self) -> None:
        """The upload failed: wake the reader, which stops with FileChanged."""
        with self._cond:
            self._failed = self._done = True
            self._cond.notify_all()

    def readinto(self, buf: memoryview) -> int:
        with self._cond:
            while self._pos >= self._published and not self._done:
                self._cond.wait(1.0)
            if self._failed:
                raise FileChanged("upload aborted")
            want = min(len(buf), self._published - self._pos)
        if want <= 0:
            return 0
        got = self._fh.readinto(buf[:want])
        if not got:
            raise FileChanged("the upload's temp file is shorter than what was written")
        self._pos += got
        return got

    def digest(self) -> Digest:
        """Chunk and hash everything the writer publishes, until it is done."""
        try:
            return _digest_stream(self, self._spill_dir)
        finally:
            self._fh.close()

    def verify(self, expected: Chunks) -> Digest:
        """Hash what the writer publishes along a known chunk list, until it is done.

        Much cheaper than cutting the file again; raises ListMismatch if the data does not
        follow the list (the caller then chunks the file itself).
        """
        verifier = ListVerifier(expected)
        buf = memoryview(bytearray(READ_SIZE))
        try:
            while got := self.readinto(buf):
                verifier.update(buf[:got])
            return verifier.done()
        finally:
            self._fh.close()


class ListMismatch(Exception):
    """The data does not follow the chunk list it was announced with."""


class ListVerifier:
    """Hashes data along a known chunk list as it arrives, in the caller's own thread.

    For a receiver that reads a socket in a loop: a second hashing thread would make it
    wait for the GIL on every read.
    """

    def __init__(self, expected: Chunks) -> None:
        self._expected = expected
        self._entries = expected.entries()
        self._want: tuple[bytes, int] | None = next(self._entries, None)
        self._whole = blake3()
        self._partial = bytearray()
        self._size = 0

    def update(self, data: memoryview) -> None:
        """Take the next bytes; raise ListMismatch as soon as they leave the list."""
        self._whole.update(data)
        self._size += len(data)
        pos = 0
        while pos < len(data):
            if self._want is None:
                raise ListMismatch("the data goes on after its chunk list")
            raw_id, length = self._want
            piece: bytes | bytearray | memoryview
            if not self._partial and len(data) - pos >= length:
                piece = data[pos : pos + length]
                pos += length
            else:
                take = min(length - len(self._partial), len(data) - pos)
                self._partial += data[pos : pos + take]
                pos += take
                if len(self._partial) < length:
                    return
                piece, self._partial = self._partial, bytearray()
            if blake3(piece).digest() != raw_id:
                raise ListMismatch("a chunk does not match its id")
            self._want = next(self._entries, None)

    def done(self) -> Digest:
        if self._want is not None or self._partial:
            raise ListMismatch("the data ends before its chunk list")
        return Digest(self._whole.hexdigest(), self._size, self._expected)


def _digest_stream(fh: Any, spill_dir: Path | None) -> Digest:
    whole = blake3()
    chunks = ChunkListBuilder(spill_dir)
    size = 0
    for chunk in FastCDC.cut_stream(_CHUNKER, fh):
        whole.update(chunk.data)
        chunks.add(blake3(chunk.data).digest(), chunk.length)
        size += chunk.length
    return Digest(whole.hexdigest(), size, chunks.done())


def digest_file(
    path: Path, *, expect_size: int, expect_mtime_ns: int, spill_dir: Path | None = None
) -> Digest:
    """Chunk and hash a file; raise FileChanged if it is not the file that was stat'ed.

    A small file is read in one call and cut in memory; a big one streams in blocks, and
    its chunk list goes to a temp file in ``spill_dir`` once it is long (a ListFile).
    """
    whole = blake3()
    chunks = ChunkListBuilder(spill_dir)
    size = 0
    data = b""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if before.st_size != expect_size or before.st_mtime_ns != expect_mtime_ns:
            raise FileChanged(str(path))
        if expect_size <= SMALL_FILE:
            data = os.read(fd, expect_size + 1)  # one byte more tells a file that grew
            if len(data) != expect_size:
                raise FileChanged(str(path))
            whole.update(data)
            if 0 < len(data) <= CHUNK_MIN:  # one chunk: its id is the file's hash
                chunks.add(whole.digest(), len(data))
                size = len(data)
            else:
                for chunk in _CHUNKER.cut_buf(data):
                    chunks.add(blake3(chunk.data).digest(), chunk.length)
                    size += chunk.length
        else:
            with os.fdopen(os.dup(fd), "rb", buffering=0) as fh:
                for chunk in FastCDC.cut_stream(_CHUNKER, fh):
                    whole.update(chunk.data)
                    chunks.add(blake3(chunk.data).digest(), chunk.length)
                    size += chunk.length
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if size != expect_size or after.st_mtime_ns != expect_mtime_ns or after.st_size != size:
        raise FileChanged(str(path))
    kept = data if size <= KEEP_DATA else None  # sent from memory, not read a second time
    return Digest(whole.hexdigest(), size, chunks.done(), kept)


def chunk_ids(data: bytes) -> set[str]:
    """The ids of the chunks ``data`` is cut into (as a file of that content would be)."""
    if len(data) <= CHUNK_MIN:
        return {chunk_id(data)} if data else set()
    return {chunk_id(chunk.data) for chunk in _CHUNKER.cut_buf(data)}


def read_as(path: Path, file_hash: str, size: int) -> bytes | None:
    """The content of a small file if it is still ``size`` bytes with id ``file_hash``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = os.read(fd, size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == size and blake3(data).hexdigest() == file_hash else None
