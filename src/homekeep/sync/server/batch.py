"""A batch: the file changes of one request, made into temp files, then placed together
by ``settle`` (one group commit); and the named answers a file change gets."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from homekeep.sync.server import fsops
from homekeep.sync.server.chunkstore import Location
from homekeep.sync.server.target import Target
from homekeep.sync.wire.chunklist import ChunkList, Chunks


@dataclass(frozen=True)
class FileSpec:
    """A file the client wants the server to hold."""

    path: str
    size: int
    mode: int
    mtime_ns: int
    hash: str
    chunks: Chunks | None


@dataclass(frozen=True)
class Result:
    """The answer to one op: ``done`` (and how), ``missing`` chunks (some, or ``all``),
    ``resend`` (the server forgot the chunk list), or ``absent`` (a rename's source)."""

    status: Literal["done", "missing", "resend", "absent"]
    via: str | None = None
    data_bytes: int | None = None
    all: bool = False
    chunks: list[str] | None = None
    bytes: int | None = None
    more: bool = False  # more chunks are missing than listed: the rest once these came

    def as_dict(self) -> dict[str, Any]:
        """The answer as the protocol sends it (keys only when they say something)."""
        out: dict[str, Any] = {"status": self.status}
        if self.via is not None:
            out["via"] = self.via
        if self.data_bytes is not None:
            out["data_bytes"] = self.data_bytes
        if self.all:
            out["all"] = True
        if self.chunks is not None:
            out["chunks"] = self.chunks
        if self.bytes is not None:
            out["bytes"] = self.bytes
        if self.more:
            out["more"] = True
        return out


DONE = Result("done")
RESEND = Result("resend")


@dataclass(frozen=True)
class Ready:
    """A file written to a temp name, waiting for the group commit that places it."""

    tmp: Path
    spec: FileSpec
    placed: Iterable[tuple[str, int, int]]  # iterated once, when recorded
    action: str
    data_bytes: int
    via: str
    staged: set[str]
    copy_of: int | None = None  # a copy's source entry: its chunk rows are copied as stored


@dataclass
class Batch:
    """The file changes of one request: made into temp files, then placed by ``settle``.

    It also remembers what was looked up for them (entries, held content, chunk
    locations, folders checked), so a thousand small files cost a few queries, not a
    thousand; ``forget`` drops that after any other kind of change. It belongs to the
    one thread that holds its client's lock.
    """

    target: Target
    client: str
    tree: fsops.Tree  # the client's folder, walked by descriptors
    inline: dict[str, tuple[bytes, int]]  # chunks sent with the request: (data, wire bytes)
    ready: list[Ready] = field(default_factory=list)
    pending: dict[str, ChunkList] = field(default_factory=dict)  # lists to keep for a resend
    # files whose mode and mtime were just set on disk: (spec, entry id), for ``settle``
    touched: list[tuple[FileSpec, int]] = field(default_factory=list)
    entries: dict[str, sqlite3.Row | None] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # content ids some entry has
    checked: set[str] = field(default_factory=set)  # content ids looked up
    located: dict[str, Location] = field(default_factory=dict)
    looked: set[str] = field(default_factory=set)  # chunk ids looked up

    def forget(self) -> None:
        """Drop what was looked up: another change may have made it wrong."""
        for known in (self.entries, self.held, self.checked, self.located, self.looked):
            known.clear()
        self.tree.forget()  # a folder moved or removed: its descriptor is no longer its path

    def close(self) -> None:
        self.tree.close()

    def entry(self, path: str) -> sqlite3.Row | None:
        if path in self.entries:
            return self.entries[path]
        return self.target.index.entry(self.client, path)

    def locate(self, chunks: ChunkList, *, keep: bool = True) -> dict[str, Location]:
        """Where the chunks of ``chunks`` are; without ``keep`` nothing is cached (a window
        of a huge file's list: what it finds is dropped with the window)."""
        store = self.target.chunks
        if not keep:
            ids = (c for c in chunks.ids() if c not in self.inline)
            return store.locate_all(self.client, ids)
        unknown = {c for c in chunks.ids() if c not in self.looked and c not in self.inline}
        if unknown:
            self.located.update(store.locate_all(self.client, unknown))
            self.looked.update(unknown)
        return self.located


def begin(target: Target, client: str, inline: dict[str, tuple[bytes, int]] | None = None) -> Batch:
    """Start a batch of changes for ``client`` (whose lock the caller holds)."""
    target.register(client)
    return Batch(target, client, target.tree(client), inline or {})


def settle(batch: Batch) -> None:
    """Group commit: make the files durable, rename them into place, record them."""
    target, index, client = batch.target, batch.target.index, batch.client
    if batch.touched:
        # a crash before this leaves rows older than the files: next time they look
        # changed behind the index, and are made again from their chunks
        index.record_meta(
            client,
            [(spec.path, spec.size, spec.mode, spec.mtime_ns, i) for spec, i in batch.touched],
        )
        batch.touched.clear()
    ready = batch.ready
    if batch.pending:
        target.chunks.keep_lists(client, batch.pending)
        batch.pending.clear()
    if not ready:
        return
    index.placing(client, [r.spec.path for r in ready])  # if this stops halfway, recover knows
    placed = 0
    try:
        fsops.sync_files([r.tmp for r in ready])
        folders = set()
        for r in ready:
            batch.tree.place(r.tmp, r.spec.path)
            placed += 1
            folders.add(r.spec.path.rpartition("/")[0])
        for folder in folders:
            batch.tree.fsync(folder)
        with target.db.transaction() as conn:
            for r in ready:
                _record(conn, target, client, r)
            index.placed(conn, client, [r.spec.path for r in ready])
            index.touch_client(conn, client)
            emptied = target.chunks.release_many(
                conn, client, [(r.staged, r.spec.hash) for r in ready]
            )
    except BaseException:
        target.recover(client)  # placed or not, recorded or not: their rows go
        raise
    finally:
        for r in ready[placed:]:
            r.tmp.unlink(missing_ok=True)
    target.chunks.remove_empty_packs(emptied)
    paths = [r.spec.path for r in ready]
    ready.clear()
    batch.forget()
    target.restore_dir_times(client, paths)


def _record(conn: sqlite3.Connection, target: Target, client: str, r: Ready) -> None:
    spec = r.spec
    row = (spec.path, spec.size, spec.mtime_ns, spec.mode, spec.hash)
    target.index.record_file(conn, client, row, r.placed, r.copy_of)
    target.index.event(
        conn, client, r.action, spec.path, size=spec.size, data_bytes=r.data_bytes, via=r.via
    )
