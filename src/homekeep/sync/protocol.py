"""The sync wire protocol v1: fixed chunking parameters, path rules, the chunk pack format.

Changing anything here changes what a chunk id means, so it needs a new protocol version.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from homekeep.core.errors import InvalidInput

VERSION = 1
PREFIX = f"/v{VERSION}"

# FastCDC 2020 parameters, frozen for protocol v1: chunk ids are BLAKE3 of chunk bytes
# cut with exactly these settings, so client and server must agree on them.
CHUNK_AVG = 32 * 1024
CHUNK_MIN = 8 * 1024
CHUNK_MAX = 128 * 1024
CHUNK_NC: Literal[1] = 1

HASH_BYTES = 32
_CLIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255

# A chunk pack is a sequence of records: 32-byte id, 1-byte flags, 4-byte big-endian
# length of what follows, then the chunk (zstd-compressed when flags & 1).
_RECORD = struct.Struct(">32sBI")
FLAG_ZSTD = 1


def check_client(name: str) -> str:
    """Return a valid client name, or raise InvalidInput."""
    if not _CLIENT_RE.match(name):
        raise InvalidInput(
            f"invalid client name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "not starting with '.'"
        )
    return name


def check_path(path: str) -> str:
    """Return a client-relative path if it stays inside the client's folder, else raise.

    Refused: empty, absolute, NUL, backslashes, '.', '..' or empty components, and
    names longer than the filesystem allows.
    """
    if not isinstance(path, str) or not path:
        raise InvalidInput("empty path")
    if "\x00" in path:
        raise InvalidInput("path contains a NUL byte")
    if "\\" in path:
        raise InvalidInput(f"path {path!r} contains a backslash; use '/' between names")
    if path.startswith("/"):
        raise InvalidInput(f"path {path!r} is absolute; send paths relative to the folder")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"path {path!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidInput(f"path is longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInput(f"path {path!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidInput(f"a name in {path!r} is longer than {MAX_NAME_BYTES} bytes")
    return path


def check_hash(value: str) -> str:
    """Return a lowercase hex BLAKE3 id, or raise InvalidInput."""
    if not isinstance(value, str) or len(value) != 2 * HASH_BYTES:
        raise InvalidInput("a content id must be 64 hex digits")
    try:
        bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidInput("a content id must be 64 hex digits") from exc
    return value.lower()


@dataclass(frozen=True)
class PackRecord:
    """One chunk in a pack, as sent (``data`` still compressed when ``compressed``)."""

    chunk_id: str
    compressed: bool
    data: bytes


def encode_record(chunk_id: str, data: bytes, *, compressed: bool) -> bytes:
    """Return one pack record."""
    flags = FLAG_ZSTD if compressed else 0
    return _RECORD.pack(bytes.fromhex(chunk_id), flags, len(data)) + data


def decode_pack(body: bytes | bytearray | memoryview, *, max_chunk: int) -> Iterator[PackRecord]:
    """Yield the records of a pack; raise InvalidInput on any malformed byte."""
    view = memoryview(body)
    pos = 0
    while pos < len(view):
        if len(view) - pos < _RECORD.size:
            raise InvalidInput("chunk pack is truncated inside a record header")
        raw_id, flags, length = _RECORD.unpack_from(view, pos)
        pos += _RECORD.size
        if flags & ~FLAG_ZSTD:
            raise InvalidInput(f"chunk pack record has unknown flags {flags}")
        if length > max_chunk + 1024:
            raise InvalidInput(f"chunk pack record of {length} bytes exceeds the chunk limit")
        if len(view) - pos < length:
            raise InvalidInput("chunk pack is truncated inside a chunk")
        yield PackRecord(raw_id.hex(), bool(flags & FLAG_ZSTD), bytes(view[pos : pos + length]))
        pos += length


_CHUNK_ENTRY = struct.Struct(">32sI")
ENTRY_BYTES = _CHUNK_ENTRY.size


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A chunk of a file: its id and its length (offsets follow from the order)."""

    chunk_id: str
    length: int


class ChunkList:
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

    def __iter__(self) -> Iterator[ChunkRef]:
        for raw_id, length in _CHUNK_ENTRY.iter_unpack(self.raw):
            yield ChunkRef(raw_id.hex(), length)

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

    def size(self) -> int:
        """The file size the chunks add up to."""
        return sum(length for _, length in _CHUNK_ENTRY.iter_unpack(self.raw))

    def entries(self) -> Iterator[tuple[bytes, int]]:
        """(raw 32-byte id, length) of each chunk, in order."""
        return _CHUNK_ENTRY.iter_unpack(self.raw)

    def ids(self) -> Iterator[str]:
        for raw_id, _ in _CHUNK_ENTRY.iter_unpack(self.raw):
            yield raw_id.hex()

    def offsets(self) -> Iterator[tuple[str, int, int]]:
        """(chunk id, offset, length) of each chunk, in order."""
        offset = 0
        for raw_id, length in _CHUNK_ENTRY.iter_unpack(self.raw):
            yield raw_id.hex(), offset, length
            offset += length

    def encode(self) -> str:
        """Base64 of the packed entries: compact JSON."""
        return base64.b64encode(self.raw).decode("ascii")


class ChunkListBuilder:
    """Appends chunks to a packed list as a file is read."""

    __slots__ = ("_raw",)

    def __init__(self) -> None:
        self._raw = bytearray()

    def add(self, raw_id: bytes, length: int) -> None:
        self._raw += raw_id
        self._raw += length.to_bytes(4, "big")

    def done(self) -> ChunkList:
        return ChunkList(self._raw)


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


Delta = list[list[int] | str]


def make_delta(old: ChunkList, new: ChunkList) -> Delta:
    """Describe ``new`` against ``old``: runs ``[start, count]`` of old chunks, and literal
    chunk entries (encoded as by ChunkList.encode) for the rest. An edit in the middle of a big
    file then costs a few entries instead of the whole chunk list."""
    first: dict[bytes, int] = {}
    for i in range(len(old)):
        first.setdefault(old.entry(i), i)
    out: Delta = []
    run_start = run_next = -1
    literal = bytearray()

    def flush_run() -> None:
        nonlocal run_start
        if run_start >= 0:
            out.append([run_start, run_next - run_start])
            run_start = -1

    for i in range(len(new)):
        entry = new.entry(i)
        if run_start >= 0 and run_next < len(old) and old.entry(run_next) == entry:
            run_next += 1
            continue
        flush_run()
        at = first.get(entry)
        if at is not None:
            if literal:
                out.append(ChunkList(literal).encode())
                literal = bytearray()
            run_start, run_next = at, at + 1
        else:
            literal += entry
    flush_run()
    if literal:
        out.append(ChunkList(literal).encode())
    return out


def apply_delta(old: ChunkList, delta: Delta, *, max_chunks: int) -> ChunkList:
    """Rebuild a chunk list from ``old`` and a delta; raise InvalidInput if malformed."""
    out = bytearray()
    for item in delta:
        if isinstance(item, str):
            out += decode_chunks(item, max_chunks=max_chunks).raw
        elif (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            and item[0] >= 0
            and item[1] >= 1
            and item[0] + item[1] <= len(old)
        ):
            out += old.part(item[0], item[1])
        else:
            raise InvalidInput(f"malformed chunk delta entry {str(item)[:40]}")
        if len(out) // ENTRY_BYTES > max_chunks:
            raise InvalidInput(f"chunk list has more than {max_chunks} chunks")
    return ChunkList(out)
