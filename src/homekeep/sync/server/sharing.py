"""Shared folders on the server: made by `sync share`, read back by clients, edited in place.

A shared folder is a namespace of the target folder (``DIR/<name>``) that several clients
send to and receive from. It holds a marker file: a folder whose marker is gone (an
unmounted disk, a deleted tree) is stopped with an error instead of having its files
seen as deleted. What is deleted or overwritten in it is kept in its versions folder.
Every change is an event, so the last event's id is the folder's change counter, which
clients wait on to learn that there is something to fetch.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homekeep.core.errors import Conflict, InvalidInput, NotFound
from homekeep.sync.server.target import Target
from homekeep.sync.store import ServerIndex
from homekeep.sync.wire.chunking import FileChanged, digest_file
from homekeep.sync.wire.folder import MARKER, RESERVED

log = logging.getLogger(__name__)

READ_MAX = 16 << 20  # bytes of file data in one read answer
RANGES_MAX = 4096


@dataclass(frozen=True, slots=True)
class FileChunks:
    """A file the server holds, as a client receiving it sees it."""

    hash: str
    size: int
    chunks: list[tuple[str, int]]  # (chunk id, length) in file order


class Sharing:
    """The shared folders of one target folder.

    Holds no state of its own: it reads and writes through the target's index (one SQLite
    connection per thread) and folders, so any thread may call it.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.index = target.index

    def share(self, name: str) -> Path:
        """Make ``name`` a shared folder (idempotent); returns its directory."""
        folder = self.target.client_dir(name)
        folder.mkdir(exist_ok=True)
        marker = folder / MARKER
        if not marker.exists():
            marker.write_text(f"homekeep shared folder {name}; do not delete\n", encoding="utf-8")
        self.index.share(name)
        return folder

    def check_mounted(self, name: str) -> None:
        """Refuse to read a shared folder whose marker is gone (see Target.tree)."""
        with self.target.tree(name):
            pass

    # -- reading files back ----------------------------------------------------------------

    def _file_row(self, name: str, path: str) -> Any:
        row = self.index.entry(name, path)
        if row is None or row["kind"] != "file":
            raise NotFound(f"{path!r} is not a file in {name!r}; fetch the manifest again")
        return row

    def file_chunks(self, name: str, path: str) -> FileChunks:
        """The chunk list of a file, as recorded when it was written or indexed."""
        self.check_mounted(name)
        row = self._file_row(name, path)
        chunks = [(str(h), int(n)) for h, _offset, n in self.index.chunk_rows(int(row["id"]))]
        if sum(n for _, n in chunks) != row["size"]:
            raise Conflict(f"{path!r} in {name!r} is being indexed again; retry shortly")
        return FileChunks(str(row["hash"]), int(row["size"]), chunks)

    def read(self, name: str, path: str, file_hash: str, ranges: list[tuple[int, int]]) -> bytes:
        """Bytes of a file at the given (offset, length) ranges, if it is still ``file_hash``."""
        if len(ranges) > RANGES_MAX:
            raise InvalidInput(f"more than {RANGES_MAX} ranges in one read")
        if sum(n for _, n in ranges) > READ_MAX:
            raise InvalidInput(f"more than {READ_MAX} bytes in one read; ask in parts")
        row = self._file_row(name, path)
        if row["hash"] != file_hash:
            raise Conflict(f"{path!r} changed on the server; fetch the manifest again")
        for offset, length in ranges:
            if offset < 0 or length < 0 or offset + length > row["size"]:
                raise InvalidInput(f"range {offset}+{length} is outside {path!r}")
        out = bytearray()
        with self.target.tree(name) as tree:
            try:
                fd = tree.open(path, os.O_RDONLY)
            except OSError as exc:
                raise Conflict(f"{path!r} is gone on the server; fetch the manifest again") from exc
            try:
                st = os.fstat(fd)
                if (st.st_size, st.st_mtime_ns) != (row["size"], row["mtime_ns"]):
                    raise Conflict(f"{path!r} changed on the server; fetch the manifest again")
                for offset, length in ranges:
                    out += os.pread(fd, length, offset)
            finally:
                os.close(fd)
        return bytes(out)

    # -- edits made on the server ----------------------------------------------------------

    def candidates(self, name: str) -> tuple[list[tuple[str, os.stat_result]], list[str]]:
        """What differs between the folder on disk and its index: (changed, gone)."""
        self.check_mounted(name)
        known = {
            str(r[0]): r
            for r in self.index.db.query(
                "SELECT path, kind, size, mtime_ns, mode, target FROM entries WHERE client = ?",
                (name,),
            )
        }
        base = self.target.client_dir(name)
        changed: list[tuple[str, os.stat_result]] = []
        seen: set[str] = set()
        for rel, st in _walk(base):
            seen.add(rel)
            entry = known.get(rel)
            if entry is None or not _same(entry, st, base / rel, self.target.mode_mask):
                changed.append((rel, st))
        gone = [p for p in known if p not in seen]
        return changed, gone

    def rescan(self, name: str) -> int:
        """Take edits made on the server's copy into the index (each an event); returns how many.

        The tree is compared and files are digested without the folder's lock; each change
        is then recorded under it, only if the path still has the stat that was digested,
        so a client's batch placing files meanwhile is never mistaken for a local edit.
        """
        changed, gone = self.candidates(name)
        if not changed and not gone:
            return 0
        base: Path = self.target.client_dir(name)
        rows: list[tuple[str, os.stat_result, str, str | None, list[tuple[str, int, int]]]] = []
        for rel, st in changed:
            if stat.S_ISDIR(st.st_mode):
                rows.append((rel, st, "dir", None, []))
            elif stat.S_ISLNK(st.st_mode):
                try:
                    rows.append((rel, st, "link", str((base / rel).readlink()), []))
                except OSError:
                    continue
            else:
                try:
                    digest = digest_file(
                        base / rel,
                        expect_size=st.st_size,
                        expect_mtime_ns=st.st_mtime_ns,
                        spill_dir=self.target.tmp,
                    )
                except (FileChanged, OSError):
                    continue  # still being written: the next rescan takes it
                rows.append((rel, st, "file", digest.file_hash, list(digest.chunks.offsets())))
        count = 0
        with self.target.lock(name), self.index.db.transaction() as conn:
            for rel, st, kind, value, placed in rows:
                try:
                    now = (base / rel).lstat()
                except OSError:
                    continue
                if (now.st_mode, now.st_size, now.st_mtime_ns) != (
                    st.st_mode,
                    st.st_size,
                    st.st_mtime_ns,
                ):
                    continue
                entry = self.index.entry(name, rel)
                if entry is not None and _same(entry, st, base / rel, self.target.mode_mask):
                    continue  # a client's batch recorded it meanwhile
                _record(conn, name, rel, kind, st, value, placed)
                count += 1
            for rel in gone:
                if not (base / rel).exists() and not (base / rel).is_symlink():
                    ServerIndex.forget(conn, name, rel)
                    ServerIndex.event(conn, name, "delete", rel, via="server")
                    count += 1
        if count:
            log.info("shared folder %s: %d changes made on the server taken in", name, count)
        return count


def _record(
    conn: Any,
    name: str,
    rel: str,
    kind: str,
    st: os.stat_result,
    value: str | None,
    placed: list[tuple[str, int, int]],
) -> None:
    """Index one path as found on disk (a file with its chunk list)."""
    if kind == "dir":  # what is under a folder keeps its rows
        conn.execute("DELETE FROM entries WHERE client = ? AND path = ?", (name, rel))
    else:
        ServerIndex.forget(conn, name, rel)
    cur = conn.execute(
        "INSERT INTO entries (client, path, kind, size, mtime_ns, mode, hash, target)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            name,
            rel,
            kind,
            st.st_size if kind == "file" else 0,
            st.st_mtime_ns,
            stat.S_IMODE(st.st_mode) if kind != "link" else 0,
            value if kind == "file" else None,
            value if kind == "link" else None,
        ),
    )
    conn.executemany(
        "INSERT INTO chunks (hash, entry_id, offset, length) VALUES (?, ?, ?, ?)",
        ((h, cur.lastrowid, o, n) for h, o, n in placed),
    )
    size = st.st_size if kind == "file" else 0
    ServerIndex.event(conn, name, "edit" if kind == "file" else kind, rel, size=size, via="server")


def _same(entry: Any, st: os.stat_result, full: Path, mask: int) -> bool:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return bool(entry["kind"] == "dir")
    if stat.S_ISLNK(mode):
        try:
            return bool(entry["kind"] == "link" and entry["target"] == str(full.readlink()))
        except OSError:
            return True  # gone meanwhile: the next rescan sees it
    return bool(
        entry["kind"] == "file"
        and entry["size"] == st.st_size
        and entry["mtime_ns"] == st.st_mtime_ns
        and entry["mode"] & mask == stat.S_IMODE(mode)
    )


def _walk(base: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every path under ``base`` with its lstat, never following links, skipping our own."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(base / rel_dir if rel_dir else base) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if not rel_dir and item.name in RESERVED:
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if not (
                stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
            ):
                continue
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
