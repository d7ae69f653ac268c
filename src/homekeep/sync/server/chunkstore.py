"""Where chunk data lives on the server: staged uploads, and the files that hold it.

Uploaded chunks are verified and appended to pack files under ``staging/`` until a file
is assembled from them; a chunk already in a stored file is read from that file through
the chunk index (file, offset, length), never copied a second time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, NamedTuple

import zstandard
from blake3 import blake3

from homekeep.core.db import Database
from homekeep.core.errors import HomekeepError, InvalidInput, PayloadTooLarge
from homekeep.sync.server import fsops
from homekeep.sync.wire.chunklist import ChunkList, ChunkRef, Chunks, ListFile, decode_chunks
from homekeep.sync.wire.compression import BASE_MAX, inflate_frame, unpatcher
from homekeep.sync.wire.pack import decode_pack
from homekeep.sync.wire.protocol import CHUNK_MAX, HASH_BYTES

MAX_INFLATED = 128 << 20  # chunk bytes one request may carry, once decompressed
OPEN_MAX = 64  # files one assembly keeps open to read chunks from
COLLECT_EVERY = 3600.0  # seconds between sweeps of stale staged chunks while serving


class Location(NamedTuple):
    """Where a chunk can be read."""

    path: Path  # a file, or a pack of staged chunks
    offset: int
    wire_bytes: int  # received for it on the wire (staged chunks only)
    staged: bool
    length: int
    source: str | int  # the pack's name or the entry id: what to forget if it is gone


class ChunkStore:
    """Staged chunk packs plus lookups into the chunk index of one target folder.

    Used by every request thread at once (two batches in flight per client, several
    clients, the data port's workers): what it keeps is per thread or guarded, as marked.
    """

    def __init__(
        self,
        root: Path,
        db: Database,
        staging: Path,
        lists: Path,
        *,
        ttl: float,
        shared: bool = False,
    ) -> None:
        self.root = root
        # False: a client's chunks come only from its own files and uploads, so neither an
        # answer nor a copy tells it what another client holds
        self.shared = shared
        self.db = db
        self.staging = staging
        self.lists = lists  # the chunk lists of huge files, sent on their own, by content id
        self.staging_ttl = ttl
        # per thread: a python-zstandard context used by two threads at once corrupts
        # what it inflates ("chunk ... is not valid zstd", issue 11) or crashes the process
        self._local = threading.local()
        self._sweeping = threading.Lock()  # guards _collected_at: one sweep at a time
        self._collected_at = time.monotonic()

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        """This thread's own zstd context."""
        dctx: zstandard.ZstdDecompressor | None = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        return dctx

    def owner(self, client: str, column: str = "client") -> tuple[str, tuple[str, ...]]:
        """The SQL condition (and its argument) on rows whose content ``client`` may be
        given by dedup: its own, or every client's when dedup is shared."""
        return ("", ()) if self.shared else (f" AND {column} = ?", (client,))

    def verify(
        self, body: bytes | bytearray | memoryview, client: str
    ) -> list[tuple[str, bytes, int]]:
        """Decode a pack and check every chunk against its id: (id, data, wire bytes).

        A chunk sent twice is taken once, and the chunks of one pack may not add up to
        more than MAX_INFLATED: 58 bytes of zstd can be 128 KiB of zeros, so without a
        bound a small request could fill the server's memory. A chunk compressed against
        a base (an earlier version of a file: ``client``'s own unless dedup is shared)
        that is not here is left out: its file answers "missing", and the client sends
        it plain.
        """
        with _Bases(self, client) as bases:
            records = []
            seen: set[str] = set()
            total = 0
            dctx = self._decompressor()
            for record in decode_pack(body, max_chunk=CHUNK_MAX):
                if record.chunk_id in seen:
                    continue
                data = record.data
                wire = len(data)
                if record.base is not None:
                    unpatch = bases.get(record.base)
                    if unpatch is None:
                        continue
                    wire += HASH_BYTES
                    what = f"chunk {record.chunk_id[:12]} (against its base)"
                    data = inflate_frame(unpatch, data, CHUNK_MAX, what)
                elif record.compressed:
                    data = inflate_frame(dctx, data, CHUNK_MAX, f"chunk {record.chunk_id[:12]}")
                seen.add(record.chunk_id)
                if len(data) > CHUNK_MAX or not data:
                    raise InvalidInput(f"chunk {record.chunk_id[:12]} has a bad length")
                total += len(data)
                if total > MAX_INFLATED:
                    raise PayloadTooLarge(
                        f"the chunks of one request add up to more than {MAX_INFLATED >> 20} MiB"
                    )
                if blake3(data).hexdigest() != record.chunk_id:
                    raise InvalidInput(f"chunk {record.chunk_id[:12]} does not match its id")
                records.append((record.chunk_id, data, wire))
            return records

    def receive(self, client: str, body: bytes | bytearray | memoryview) -> tuple[int, int]:
        """Verify and stage a pack of ``client``'s chunks; return (chunks stored, bytes)."""
        if self._sweeping.acquire(blocking=False):  # a thread finding one running skips it
            try:
                if time.monotonic() - self._collected_at > COLLECT_EVERY:
                    self._collected_at = time.monotonic()
                    self.collect()
            finally:
                self._sweeping.release()
        records = self.verify(body, client)
        if not records:
            return 0, 0
        name = uuid.uuid4().hex
        pack = self.staging / name
        rows = []
        offset = 0
        with pack.open("wb") as fh:
            for chunk_id, data, wire in records:
                fh.write(data)
                rows.append((client, chunk_id, name, offset, len(data), wire, time.time()))
                offset += len(data)
        # no fsync: a staged chunk lost in a crash is sent again; files are synced when placed
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO staged"
                " (client, hash, pack, offset, length, wire_bytes, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(records), sum(r[2] for r in records)

    def collect(self) -> int:
        """Drop staged chunks older than the TTL and packs nobody needs; return packs removed."""
        cutoff = time.time() - self.staging_ttl
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM staged WHERE received_at < ?", (cutoff,))
            conn.execute("DELETE FROM pending_lists WHERE created_at < ?", (cutoff,))
            live = {row[0] for row in conn.execute("SELECT DISTINCT pack FROM staged")}
        removed = 0
        for kept in self.lists.iterdir():
            try:
                if kept.stat().st_mtime < cutoff:
                    kept.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
        fresh = time.time() - 600  # a pack this young may still be arriving
        for pack in self.staging.iterdir():
            try:
                young = pack.stat().st_mtime > fresh
            except FileNotFoundError:
                continue
            if pack.name not in live and not young:
                pack.unlink(missing_ok=True)
                removed += 1
        return removed

    def _kept(self, client: str, file_hash: str) -> Path:
        # each client's own: another client cannot swap the list one is about to use
        return self.lists / f"{client}.{file_hash}"

    def keep_list(self, client: str, file_hash: str, tmp: Path) -> None:
        """Keep a huge file's chunk list (written whole to ``tmp``) until the file is made."""
        tmp.replace(self._kept(client, file_hash))

    def pending_list(self, client: str, file_hash: str, size: int) -> Chunks | None:
        """The chunk list ``client`` sent for content ``file_hash`` of ``size``, if kept.

        A huge file's list sent on its own comes first; else the list an earlier answer
        kept. One that adds up to another size is not this file's: None, and the client
        is asked to send its list.
        """
        chunks: Chunks
        try:
            chunks = ListFile.open(self._kept(client, file_hash))
        except OSError:
            row = self.db.query_one(
                "SELECT chunks FROM pending_lists WHERE client = ? AND hash = ?",
                (client, file_hash),
            )
            if row is None:
                return None
            try:
                chunks = decode_chunks(row["chunks"], max_chunks=1 << 40)
            except InvalidInput:
                return None
        return chunks if chunks.size() == size else None

    def keep_lists(self, client: str, lists: dict[str, ChunkList]) -> None:
        """Keep the chunk lists of files still missing chunks, by content id, for a resend."""
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO pending_lists (client, hash, chunks, created_at)"
                " VALUES (?, ?, ?, ?)",
                [(client, h, c.raw, time.time()) for h, c in lists.items()],
            )

    def drop_list(self, client: str, file_hash: str) -> None:
        """Forget the lists kept for this content: one did not add up to it."""
        self._kept(client, file_hash).unlink(missing_ok=True)
        self.db.execute(
            "DELETE FROM pending_lists WHERE client = ? AND hash = ?", (client, file_hash)
        )

    def locate_all(self, client: str, chunk_ids: Iterable[str]) -> dict[str, Location]:
        """Where each chunk can be read for ``client``: a staged pack, else a file that holds
        it (its own, or any client's when dedup is shared).

        Only what is found is returned, and each file's path is one object, so looking
        up the 140,000 chunks of a new 4 GiB file holds almost nothing.
        """
        conn = self.db.connection()
        found: dict[str, Location] = {}
        paths: dict[tuple[str, str], Path] = {}
        ids = iter(chunk_ids)
        owner, mine = self.owner(client)
        while part := list(dict.fromkeys(itertools.islice(ids, 500))):
            marks = ",".join("?" * len(part))
            for row in conn.execute(
                "SELECT hash, pack, offset, wire_bytes, length FROM staged"  # noqa: S608 - placeholders only
                f" WHERE hash IN ({marks}){owner}",
                (*part, *mine),
            ):
                pack = paths.setdefault(("", row[1]), self.staging / row[1])
                found[row[0]] = Location(
                    pack, int(row[2]), int(row[3]), True, int(row[4]), str(row[1])
                )
            rest = [c for c in part if c not in found]
            if not rest:
                continue
            marks = ",".join("?" * len(rest))
            for row in conn.execute(
                "SELECT c.hash, e.client, e.path, c.offset, c.length, e.id FROM chunks c"  # noqa: S608 - placeholders only
                f" JOIN entries e ON e.id = c.entry_id WHERE c.hash IN ({marks})"
                + self.owner(client, "e.client")[0],
                (*rest, *mine),
            ):
                if row[0] not in found:
                    key = (str(row[1]), str(row[2]))
                    where = paths.get(key)
                    if where is None:
                        where = paths[key] = self.root / key[0] / key[1]
                    found[row[0]] = Location(where, int(row[3]), 0, False, int(row[4]), int(row[5]))
        return found

    def drop(self, chunk_id: str, where: Location) -> None:
        """Forget one place of a chunk: its file changed under us, or its pack is gone."""
        with self.db.transaction() as conn:
            if where.staged:
                conn.execute(
                    "DELETE FROM staged WHERE hash = ? AND pack = ?", (chunk_id, where.source)
                )
            else:
                conn.execute(
                    "DELETE FROM chunks WHERE hash = ? AND entry_id = ?", (chunk_id, where.source)
                )

    def release_many(
        self, conn: sqlite3.Connection, client: str, done: list[tuple[set[str], str]]
    ) -> set[str]:
        """Files were made from staged chunks: drop those chunks and the files' pending lists.

        Runs inside the caller's transaction and returns the packs it took chunks from, for
        ``remove_empty_packs`` once that commits. The caller's own set, not one on the
        store: two clients' batches settle at once, and a shared set could hand a pack to
        a thread that checks it before this transaction commits, leaving it behind.
        """
        conn.executemany(
            "DELETE FROM pending_lists WHERE client = ? AND hash = ?",
            [(client, h) for _, h in done],
        )
        for _, file_hash in done:
            self._kept(client, file_hash).unlink(missing_ok=True)
        used = {chunk_id for staged, _ in done for chunk_id in staged}
        # the chunk is in a file now: gone from staging for whoever may read that file
        owner, mine = self.owner(client)
        emptied: set[str] = set()
        for chunk_id in used:
            rows = conn.execute(
                f"SELECT pack FROM staged WHERE hash = ?{owner}",  # noqa: S608 - a constant fragment
                (chunk_id, *mine),
            ).fetchall()
            if rows:
                emptied.update(row[0] for row in rows)
                conn.execute(f"DELETE FROM staged WHERE hash = ?{owner}", (chunk_id, *mine))  # noqa: S608 - a constant fragment
        return emptied

    def remove_empty_packs(self, packs: set[str]) -> None:
        """Delete those of ``packs`` no staged chunk points to any more."""
        if not packs:
            return
        conn = self.db.connection()
        for pack in packs:
            if conn.execute("SELECT 1 FROM staged WHERE pack = ? LIMIT 1", (pack,)).fetchone():
                continue
            (self.staging / pack).unlink(missing_ok=True)

    @staticmethod
    def read(handles: dict[Path, BinaryIO], where: Location, chunk: ChunkRef) -> bytes | None:
        path, offset = where.path, where.offset
        try:
            fh = handles.pop(path, None)
            if fh is not None:
                handles[path] = fh  # last in the dict: least recently used comes first
            else:
                if len(handles) >= OPEN_MAX:  # a file made of many packs: close the LRU one
                    handles.pop(next(iter(handles))).close()
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                fh = handles[path] = os.fdopen(fd, "rb")
            fh.seek(offset)
            data = fh.read(chunk.length)
        except OSError:
            return None
        if len(data) != chunk.length or blake3(data).hexdigest() != chunk.chunk_id:
            return None
        return data


class _Bases:
    """The earlier versions of files that the chunks of one pack are compressed against,
    found by content id among the files dedup may draw on for ``client`` (its own, or
    every client's with ``dedup_across_clients``: whether a chunk inflates to its id
    would tell what another client's file holds), read through the folder descriptors of
    an ``fsops.Tree`` and checked against that id. Belongs to the one ``verify`` call
    that made it, which closes it."""

    KEEP = 4  # bases held at once: a file's chunks come together
    READ_MAX = 64 << 20  # bytes of bases one pack may make the server read

    def __init__(self, store: ChunkStore, client: str) -> None:
        self.store = store
        self.client = client
        self.read = 0
        self.held: dict[str, zstandard.ZstdDecompressor | None] = {}
        self._trees = contextlib.ExitStack()
        self._tree: dict[str, fsops.Tree] = {}  # a client's folder, opened once

    def __enter__(self) -> _Bases:
        return self

    def __exit__(self, *exc: object) -> None:
        self._trees.close()

    def get(self, base: str) -> zstandard.ZstdDecompressor | None:
        if base in self.held:
            self.held[base] = self.held.pop(base)  # most recently used last
            return self.held[base]
        found = None
        data = self._content(base)
        if data is not None:
            found = unpatcher(data)
        if len(self.held) >= self.KEEP:
            del self.held[next(iter(self.held))]
        self.held[base] = found
        return found

    def _content(self, base: str) -> bytes | None:
        owner, mine = self.store.owner(self.client)
        rows = self.store.db.query(
            "SELECT client, path, size FROM entries WHERE hash = ? AND kind = 'file'"  # noqa: S608 - a constant fragment
            f" AND size > 0 AND size < ?{owner} LIMIT 4",
            (base, BASE_MAX, *mine),
        )
        for row in rows:
            size = int(row["size"])
            if self.read + size > self.READ_MAX:
                return None
            self.read += size
            try:
                fd = self._folder(str(row["client"])).open(str(row["path"]), os.O_RDONLY)
                try:
                    data = os.read(fd, size + 1)
                finally:
                    os.close(fd)
            except (OSError, HomekeepError):
                continue
            if len(data) == size and blake3(data).hexdigest() == base:
                return data
        return None

    def _folder(self, client: str) -> fsops.Tree:
        tree = self._tree.get(client)
        if tree is None:
            tree = self._tree[client] = self._trees.enter_context(
                fsops.Tree(self.store.root / client)
            )
        return tree
