"""Chunk lists: a file's chunks packed as on the wire, in memory or in a file, built,
decoded and received in pieces."""

from __future__ import annotations

import base64
import os
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from homekeep.core.errors import InvalidInput
from homekeep.sync.wire.protocol import CHUNK_MAX, CHUNK_MIN

_CHUNK_ENTRY = struct.Struct(">32sI")
ENTRY_BYTES = _CHUNK_ENTRY.size
SPILL = 4096  # chunks (128 MiB of file): a longer list is kept in a file, not in memory
WINDOW = 4096  # chunks a long list is read, looked up and assembled by at a time


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A chunk of a file: its id and its length (offsets follow from the order)."""

    chunk_id: str
    length: int


class _Entries:
    """What both kinds of chunk list derive from their packed entries, read in order."""

    __slots__ = ()

    def entries(self) -> Iterator[tuple[bytes, int]]:
        """(raw 32-byte id, length) of each chunk, in order."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[ChunkRef]:
        for raw_id, length in self.entries():
            yield ChunkRef(raw_id.hex(), length)

    def ids(self) -> Iterator[str]:
        for raw_id, _ in self.entries():
            yield raw_id.hex()

    def offsets(self) -> Iterator[tuple[str, int, int]]:
        """(chunk id, offset, length) of each chunk, in order."""
        offset = 0
        for raw_id, length in self.entries():
            yield raw_id.hex(), offset, length
            offset += length

    def size(self) -> int:
        """The file size the chunks add up to."""
        return sum(length for _, length in self.entries())


class ChunkList(_Entries):
    """A file's chunk list, packed as on the wire: a 32-byte id and a 4-byte length each.

    36 bytes per chunk (about 1.1 MiB per GiB of file at the 32 KiB average), where a list
    of objects with hex ids took some 9 MiB per GiB: the lists of huge files stay small.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: bytes | bytearray = b"") -> None:
        if len(raw) % ENTRY_BYTES:
            raise InvalidInput("chunk list length is not a whole number of entries")
        self.raw = raw

    @classmethod
    def of(cls, refs: Iterable[ChunkRef]) -> ChunkList:
        raw = bytearray()
        for ref in refs:
            raw += _CHUNK_ENTRY.pack(bytes.fromhex(ref.chunk_id), ref.length)
        return cls(raw)

    def __len__(self) -> int:
        return len(self.raw) // ENTRY_BYTES

    def __getitem__(self, i: int) -> ChunkRef:
        if not 0 <= i < len(self):
            raise IndexError(i)
        raw_id, length = _CHUNK_ENTRY.unpack_from(self.raw, i * ENTRY_BYTES)
        return ChunkRef(raw_id.hex(), length)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChunkList) and bytes(self.raw) == bytes(other.raw)

    def __hash__(self) -> int:
        return hash(bytes(self.raw))

    def __repr__(self) -> str:
        return f"ChunkList({len(self)} chunks, {self.size()} bytes)"

    def entry(self, i: int) -> bytes:
        """The packed entry ``i``: equal entries are equal chunks."""
        return bytes(self.raw[i * ENTRY_BYTES : (i + 1) * ENTRY_BYTES])

    def part(self, start: int, count: int) -> bytes:
        """Packed entries ``start`` to ``start + count``."""
        return bytes(self.raw[start * ENTRY_BYTES : (start + count) * ENTRY_BYTES])

    def entries(self) -> Iterator[tuple[bytes, int]]:
        return _CHUNK_ENTRY.iter_unpack(self.raw)

    def encode(self) -> str:
        """Base64 of the packed entries: compact JSON."""
        return base64.b64encode(self.raw).decode("ascii")

    def slices(self, count: int = WINDOW) -> Iterator[bytes]:
        """The packed entries, ``count`` at a time."""
        step = count * ENTRY_BYTES
        for start in range(0, len(self.raw), step):
            yield bytes(self.raw[start : start + step])

    def windows(self, count: int = WINDOW) -> Iterator[ChunkList]:
        """The list in pieces of ``count`` chunks (one piece for a short list)."""
        if len(self) <= count:
            yield self
            return
        for part in self.slices(count):
            yield ChunkList(part)


_OPENING = threading.Lock()


class ListFile(_Entries):
    """A long chunk list kept in a file, read a window at a time: constant memory.

    The same reading methods as ChunkList. A 4 GiB file has some 140,000 chunks: as a
    ListFile its list costs one open file, whatever the file's size. A list at a path is
    opened when first read, so a thousand cached lists nobody reads hold no file handle.
    """

    __slots__ = ("_count", "_fh", "_path", "_size")

    def __init__(
        self, fh: BinaryIO | None, count: int, size: int | None = None, path: Path | None = None
    ) -> None:
        self._fh = fh
        self._path = path
        self._count = count
        self._size = size

    @classmethod
    def open(cls, path: Path) -> ListFile:
        """A list written whole to ``path`` (raises OSError if it is not there)."""
        length = path.stat().st_size
        if length % ENTRY_BYTES:
            raise OSError(f"{path.name} is not a whole number of chunk entries")
        return cls(None, length // ENTRY_BYTES, path=path)

    def _fd(self) -> int:
        if self._fh is None:
            with _OPENING:  # two threads reading first at once open it once
                if self._fh is None:
                    if self._path is None:
                        raise OSError("a chunk list without a file")
                    self._fh = self._path.open("rb")  # kept: reads whole if unlinked now
        return self._fh.fileno()

    def hold(self) -> ListFile:
        """Open the file now: the list stays readable if its path is deleted later."""
        self._fd()
        return self

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"ListFile({self._count} chunks)"

    def slices(self, count: int = WINDOW) -> Iterator[bytes]:
        """The packed entries, ``count`` at a time (positioned reads: threads may share)."""
        step = count * ENTRY_BYTES
        fd = self._fd() if self._count else -1
        end = self._count * ENTRY_BYTES
        for start in range(0, end, step):
            part = os.pread(fd, min(step, end - start), start)
            if len(part) != min(step, end - start):
                raise OSError("a chunk list file came out short")
            yield part

    def windows(self, count: int = WINDOW) -> Iterator[ChunkList]:
        for part in self.slices(count):
            yield ChunkList(part)

    def part(self, start: int, count: int) -> bytes:
        """Packed entries ``start`` to ``start + count`` (one positioned read)."""
        count = max(0, min(count, self._count - start))
        if not count:
            return b""
        data = os.pread(self._fd(), count * ENTRY_BYTES, start * ENTRY_BYTES)
        if len(data) != count * ENTRY_BYTES:
            raise OSError("a chunk list file came out short")
        return data

    def entry(self, i: int) -> bytes:
        return self.part(i, 1)

    def entries(self) -> Iterator[tuple[bytes, int]]:
        for part in self.slices():
            yield from _CHUNK_ENTRY.iter_unpack(part)

    def size(self) -> int:
        if self._size is None:  # a pass over the file: kept
            self._size = super().size()
        return self._size

    def save(self, path: Path) -> None:
        """Write the list to ``path`` (through a temp name: never seen half written)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as out:
            for part in self.slices():
                out.write(part)
        tmp.replace(path)


Chunks = ChunkList | ListFile


class ChunkListBuilder:
    """Appends chunks to a packed list as a file is read.

    Past ``spill`` chunks the list moves to an unnamed temp file in ``spill_dir`` and the
    result is a ListFile: building the list of a 50 GiB file holds 144 KiB at a time.
    """

    __slots__ = ("_count", "_file", "_raw", "_size", "_spill", "_spill_dir")

    def __init__(self, spill_dir: Path | None = None, *, spill: int = SPILL) -> None:
        self._raw = bytearray()
        self._file: BinaryIO | None = None
        self._count = 0
        self._size = 0
        self._spill_dir = spill_dir
        self._spill = spill * ENTRY_BYTES

    def add(self, raw_id: bytes, length: int) -> None:
        self._raw += raw_id
        self._raw += length.to_bytes(4, "big")
        self._count += 1
        self._size += length
        if len(self._raw) > self._spill:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._spill_dir)  # noqa: SIM115 - the ListFile owns it
            self._file.write(self._raw)
            self._raw = bytearray()

    def extend(self, raw: bytes | bytearray) -> None:
        """Append packed entries."""
        for raw_id, length in _CHUNK_ENTRY.iter_unpack(raw):
            self.add(raw_id, length)

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        """The bytes the chunks so far add up to."""
        return self._size

    def done(self) -> Chunks:
        if self._file is None:
            return ChunkList(self._raw)
        self._file.write(self._raw)
        self._file.flush()
        self._raw = bytearray()
        return ListFile(self._file, self._count, self._size)


def decode_chunks(text: str | bytes, *, max_chunks: int) -> ChunkList:
    """Unpack a chunk list (base64, or the packed bytes themselves), raising InvalidInput
    on anything malformed."""
    if isinstance(text, bytes):
        return check_chunks(text, max_chunks=max_chunks)
    if not text.isascii():  # b64decode takes ASCII text as is: no encoded copy
        raise InvalidInput("chunk list is not valid base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InvalidInput("chunk list is not valid base64") from exc
    return check_chunks(raw, max_chunks=max_chunks)


def check_chunks(raw: bytes, *, max_chunks: int) -> ChunkList:
    """Return packed chunk entries as a list if every length is valid, else raise."""
    if len(raw) % ENTRY_BYTES:
        raise InvalidInput("chunk list length is not a whole number of entries")
    if len(raw) // ENTRY_BYTES > max_chunks:
        raise InvalidInput(f"chunk list has more than {max_chunks} chunks")
    for _, length in _CHUNK_ENTRY.iter_unpack(raw):
        if length == 0 or length > CHUNK_MAX:
            raise InvalidInput(f"chunk length {length} is outside 1..{CHUNK_MAX}")
    return ChunkList(raw)


class ListReceiver:
    """Writes a chunk list that arrives in pieces to ``out``, checking every entry.

    For the list of a huge file, streamed as raw entries: what the file's ``size`` allows
    is the bound, and nothing is held but a partial entry.
    """

    def __init__(self, out: BinaryIO, size: int) -> None:
        self._out = out
        self._want = size
        self._max = size // CHUNK_MIN + 2
        self._rest = b""
        self.count = 0
        self.total = 0

    def feed(self, data: bytes) -> None:
        data = self._rest + data if self._rest else data
        whole = len(data) - len(data) % ENTRY_BYTES
        self._rest = data[whole:]
        view = memoryview(data)[:whole]
        for _, length in _CHUNK_ENTRY.iter_unpack(view):
            if length == 0 or length > CHUNK_MAX:
                raise InvalidInput(f"chunk length {length} is outside 1..{CHUNK_MAX}")
            self.total += length
        self.count += whole // ENTRY_BYTES
        if self.count > self._max or self.total > self._want:
            raise InvalidInput("the chunk list is longer than its file's size allows")
        self._out.write(view)

    def finish(self) -> None:
        if self._rest:
            raise InvalidInput("chunk list length is not a whole number of entries")
        if self.total != self._want:
            raise InvalidInput(
                f"the chunk lengths add up to {self.total} bytes, not the size {self._want}"
            )
