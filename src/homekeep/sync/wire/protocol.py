"""The sync wire protocol v1: fixed chunking parameters, path rules, the chunk pack format.

Changing anything here changes what a chunk id means, so it needs a new protocol version.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from homekeep.core.errors import Forbidden, InvalidInput

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
# length of what follows, then the chunk (zstd-compressed when flags & 1). With flags & 2
# (servers that answer "patch": true in hello) what follows starts with the 32-byte id of
# an earlier version of the file, the zstd dictionary the chunk was compressed with.
_RECORD = struct.Struct(">32sBI")
RECORD_HEAD = _RECORD.size
FLAG_ZSTD = 1
FLAG_BASE = 2


def check_client(name: str) -> str:
    """Return a valid client name, or raise InvalidInput."""
    if not _CLIENT_RE.match(name):
        raise InvalidInput(
            f"invalid client name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "not starting with '.'"
        )
    return name


class Grant(Protocol):
    """What a request's credentials say (a token, or a logged-in caller)."""

    @property
    def name(self) -> str: ...

    def allows(self, area: str) -> bool: ...

    def acts_for(self, client: str) -> bool: ...


def check_access(token: Grant, client: str) -> str:
    """Return ``client`` if ``token`` may sync as it (scope sync, bound to it), else raise.

    Without this, any sync token could read every client's manifest and change its files.
    """
    check_client(client)
    if not token.allows("sync"):
        raise Forbidden(f"token {token.name!r} has no access to sync; create one with --scope sync")
    if not token.acts_for(client):
        raise Forbidden(
            f"token {token.name!r} may not act as client {client!r}; on the server, create "
            f"a token for it: 'homekeep token create {client} --scope sync' (or any name "
            f"with '--client {client}')"
        )
    return client


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


def load_json(data: bytes | bytearray, what: str) -> object:
    """Parse JSON a client sent; garbage, and nesting too deep to parse, raise InvalidInput.

    The decoder recurses once per level: ``[`` a thousand deep runs out of stack
    (RecursionError) long before any size limit, and must not become a 500.
    """
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply") from exc


_HASH_RE = re.compile(r"[0-9a-fA-F]{64}")


def check_hash(value: str) -> str:
    """Return a lowercase hex BLAKE3 id, or raise InvalidInput (it may name a file)."""
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise InvalidInput("a content id must be 64 hex digits")
    return value.lower()


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


class DeltaTooBig(InvalidInput):
    """A delta that would copy its base too often or add up past its file's size: the
    client is asked for the whole list instead."""


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


Delta = list[list[int] | str]
DELTA_LITERALS = SPILL  # new entries a delta may carry; past that the list goes whole
DELTA_ITEMS = 1 << 16  # runs and literals in one delta (the server takes up to 1 << 20)
DELTA_REUSE = 4  # a delta may copy up to this many times the old list (plus a window)


def reuse_limit(old_len: int) -> int:
    """Entries a delta may copy from an old list of ``old_len``: a few times the list.

    A delta of a few bytes could otherwise copy a huge list thousands of times over.
    """
    return DELTA_REUSE * old_len + WINDOW


class _Near:
    """Where an entry sits in ``old``, looked up among the entries around a position.

    A short list is indexed whole. A long one (a ListFile) is indexed a few windows at a
    time around where the last match was: an edit moves the match by a few chunks, so
    this finds it, holding three windows instead of the whole list.
    """

    def __init__(self, old: Chunks) -> None:
        self.old = old
        self.size = len(old)
        self.whole = isinstance(old, ChunkList) and self.size <= 3 * WINDOW
        self.lo = self.hi = -1
        self.raw = b""
        self.at: dict[bytes, int] = {}

    def _load(self, pos: int) -> None:
        if (
            self.lo >= 0
            and self.lo <= max(0, pos - WINDOW // 2)
            and (self.hi >= min(self.size, pos + WINDOW))
        ):
            return
        if self.whole:
            lo, hi = 0, self.size
        else:
            lo, hi = max(0, pos - WINDOW), min(self.size, pos + 2 * WINDOW)
        self.raw = self.old.part(lo, hi - lo)
        self.at = {}
        for i in range(len(self.raw) // ENTRY_BYTES):
            self.at.setdefault(self.raw[i * ENTRY_BYTES : (i + 1) * ENTRY_BYTES], lo + i)
        self.lo, self.hi = lo, hi

    def entry(self, i: int) -> bytes:
        if not self.lo <= i < self.hi:
            self._load(i)
        at = (i - self.lo) * ENTRY_BYTES
        return self.raw[at : at + ENTRY_BYTES]

    def find(self, entry: bytes, pos: int) -> int | None:
        self._load(pos)
        return self.at.get(entry)


def make_delta(old: Chunks, new: Chunks, *, literals: int | None = None) -> Delta | None:
    """Describe ``new`` against ``old``: runs ``[start, count]`` of old chunks, and literal
    chunk entries (encoded as by ChunkList.encode) for the rest. An edit in the middle of a big
    file then costs a few entries instead of the whole chunk list.

    Both lists are read in order, a window at a time. With ``literals``, None when the
    delta would carry more new entries than that (the whole list is then cheaper).
    """
    near = _Near(old)
    out: Delta = []
    run_start = run_next = -1
    literal = bytearray()
    carried = copied = 0
    most = reuse_limit(len(old))
    pos = 0  # where in ``old`` the next entry is expected

    def flush_run() -> None:
        nonlocal run_start, copied
        if run_start >= 0:
            out.append([run_start, run_next - run_start])
            copied += run_next - run_start
            run_start = -1

    for part in new.slices():
        for i in range(0, len(part), ENTRY_BYTES):
            entry = part[i : i + ENTRY_BYTES]
            if run_start >= 0 and run_next < near.size and near.entry(run_next) == entry:
                run_next += 1
                pos = run_next
                continue
            flush_run()
            at = near.find(entry, pos)
            if at is not None:
                if literal:
                    out.append(ChunkList(literal).encode())
                    literal = bytearray()
                run_start, run_next = at, at + 1
                pos = run_next
            else:
                literal += entry
                carried += 1
                if literals is not None and carried > literals:
                    return None
            if len(out) > DELTA_ITEMS or copied > most:
                return None  # reordered or repeated content: the whole list is smaller
    flush_run()
    if len(out) > DELTA_ITEMS or copied > most:
        return None
    if literal:
        out.append(ChunkList(literal).encode())
    return out


def apply_delta(
    old: Chunks,
    delta: Delta,
    *,
    max_chunks: int,
    max_size: int | None = None,
    spill_dir: Path | None = None,
) -> Chunks:
    """Rebuild a chunk list from ``old`` and a delta; raise InvalidInput if malformed.

    A long result goes to a temp file in ``spill_dir`` as it is built (a ListFile). It
    may not add up to more than ``max_size`` bytes nor copy more than ``reuse_limit`` of
    ``old``, checked as it grows: a short delta cannot make a huge temp file.
    """
    out = ChunkListBuilder(spill_dir)
    most = reuse_limit(len(old))
    copied = 0
    for item in delta:
        if isinstance(item, str):
            out.extend(decode_chunks(item, max_chunks=max_chunks).raw)
        elif (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            and item[0] >= 0
            and item[1] >= 1
            and item[0] + item[1] <= len(old)
        ):
            copied += item[1]
            if copied > most:
                raise DeltaTooBig("the chunk delta copies the old list too many times over")
            for start in range(item[0], item[0] + item[1], WINDOW):
                if len(out) > max_chunks or (max_size is not None and out.size > max_size):
                    break
                out.extend(old.part(start, min(WINDOW, item[0] + item[1] - start)))
        else:
            raise InvalidInput(f"malformed chunk delta entry {str(item)[:40]}")
        if len(out) > max_chunks:
            raise InvalidInput(f"chunk list has more than {max_chunks} chunks")
        if max_size is not None and out.size > max_size:
            raise DeltaTooBig("the chunk delta adds up to more than the file's size")
    return out.done()
