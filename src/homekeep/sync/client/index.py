"""The client's own state in SQLite: what the server acknowledged, and a local hash cache.

``remote`` mirrors the server's copy (plus the local inode each entry had when sent, to
see renames); ``cache`` remembers the chunk lists of local files by (size, mtime, inode),
so a restart re-reads nothing unchanged; ``kept`` holds a zstd copy of the last-synced
content of small files that compress well, what their next version is compressed against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import zstandard
from blake3 import blake3

from homekeep.core.db import Database
from homekeep.core.errors import InvalidInput
from homekeep.sync.client.scan import Local
from homekeep.sync.wire.chunking import Digest
from homekeep.sync.wire.chunklist import Chunks, ListFile, decode_chunks
from homekeep.sync.wire.compression import BASE_MAX, inflate_frame

MIGRATIONS = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE remote (
        path TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        hash TEXT,
        target TEXT,
        inode INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE cache (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        hash TEXT NOT NULL,
        chunks TEXT NOT NULL
    );
    """,
    # a huge file's list is a file named by its content id in the lists folder
    "ALTER TABLE cache ADD COLUMN listed INTEGER NOT NULL DEFAULT 0;",
    # zstd copies of last-synced content: what a changed file is compressed against
    "CREATE TABLE kept (hash TEXT PRIMARY KEY, data BLOB NOT NULL);",
)


# A path and everything under it, as two index range scans ('/' sorts just before '0').
_SUBTREE = (
    "SELECT rowid FROM remote WHERE path = ?"
    " UNION ALL SELECT rowid FROM remote WHERE path > ? AND path < ?"
)


def _subtree(path: str) -> tuple[str, ...]:
    return (path, path + "/", path + "0")


@dataclass(frozen=True, slots=True)
class Remote:
    """One entry as the server holds it."""

    kind: str
    size: int
    mtime_ns: int
    mode: int
    hash: str | None
    target: str | None
    inode: int = 0


class ClientIndex:
    """The client's SQLite file.

    The pass's thread and its batch threads use it at once, each through its own SQLite
    connection (``Database`` keeps one per thread); it holds no other state.
    """

    def __init__(self, path: Path, *, keep_bytes: int = 256 << 20) -> None:
        self.db = Database(path, area="sync", migrations=MIGRATIONS)
        self.keep_bytes = keep_bytes  # room for kept content, compressed
        self.lists = path.with_suffix(".lists")  # chunk lists of huge files, by content id
        self.lists.mkdir(exist_ok=True)

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str, default: str = "") -> str:
        row = self.db.query_one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row["value"]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def remote(self) -> dict[str, Remote]:
        return {
            row[0]: Remote(*row[1:])
            for row in self.db.connection().execute(
                "SELECT path, kind, size, mtime_ns, mode, hash, target, inode FROM remote"
            )
        }

    def replace_remote(self, entries: Iterable[list[Any]]) -> None:
        """Take the server's manifest as the truth, keeping known inodes."""
        old = self.remote()
        rows = []
        for path, kind, size, mtime_ns, mode, file_hash, target in entries:
            entry = Remote(kind, size, mtime_ns, mode, file_hash, target)
            prev = old.get(path)
            if prev is not None and replace(prev, inode=0) == entry:
                entry = prev
            rows.append((path, *_row(entry)))
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM remote")
            conn.executemany("INSERT INTO remote VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def has_remote(self, path: str) -> bool:
        return self.db.query_one("SELECT 1 FROM remote WHERE path = ?", (path,)) is not None

    def put_remote(self, path: str, entry: Remote) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO remote VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (path, *_row(entry))
        )

    def drop_remote(self, path: str) -> None:
        self.db.execute(f"DELETE FROM remote WHERE rowid IN ({_SUBTREE})", _subtree(path))  # noqa: S608 - a constant fragment

    def rename_remote(self, path: str, dest: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(f"DELETE FROM remote WHERE rowid IN ({_SUBTREE})", _subtree(dest))  # noqa: S608 - a constant fragment
            conn.execute(
                f"UPDATE remote SET path = ? || substr(path, ?) WHERE rowid IN ({_SUBTREE})",  # noqa: S608 - a constant fragment
                (dest, len(path) + 1, *_subtree(path)),
            )

    def cached_many(self, paths: list[str], local: Mapping[str, Local]) -> dict[str, Digest]:
        """The digests of files not changed since they were read (same size, mtime, inode)."""
        found: dict[str, Digest] = {}
        for start in range(0, len(paths), 500):
            part = paths[start : start + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT path, size, mtime_ns, inode, hash, chunks, listed FROM cache WHERE path IN ({marks})"  # noqa: S608, E501 - placeholders only
            for row in self.db.query(query, part):
                now = local[row[0]]
                if (row[1], row[2], row[3]) != (now.size, now.mtime_ns, now.inode):
                    continue
                try:
                    chunks = self._chunks(str(row[4]), row[5], row[6])
                except OSError:
                    continue  # its list is gone: the file is read again
                found[row[0]] = Digest(str(row[4]), now.size, chunks)
        return found

    def previous(self, path: str) -> tuple[str, Chunks] | None:
        """The last chunk list read for ``path``, whatever the file's state now."""
        row = self.db.query_one("SELECT hash, chunks, listed FROM cache WHERE path = ?", (path,))
        if row is None:
            return None
        try:
            chunks = self._chunks(str(row["hash"]), row["chunks"], row["listed"])
            if isinstance(chunks, ListFile):
                chunks.hold()  # the new version's list replaces it while this is a base
            return str(row["hash"]), chunks
        except OSError:
            return None  # its kept list is gone: the list goes whole

    def _chunks(self, file_hash: str, raw: bytes, listed: int) -> Chunks:
        """A cached list: packed in the row, or (a huge file's) in the lists folder.

        Raises OSError when a kept list is gone.
        """
        if listed:
            return ListFile.open(self.lists / file_hash)
        return decode_chunks(raw, max_chunks=1 << 40)

    def remember(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        inode: int,
        file_hash: str,
        chunks: Chunks,
    ) -> None:
        old = self.db.query_one("SELECT hash, listed FROM cache WHERE path = ?", (path,))
        if isinstance(chunks, ListFile):
            kept = self.lists / file_hash
            if not kept.exists():
                chunks.save(kept)
            raw, listed = b"", 1
        else:
            raw, listed = bytes(chunks.raw), 0  # packed, not base64
        self.db.execute(
            "INSERT OR REPLACE INTO cache (path, size, mtime_ns, inode, hash, chunks, listed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, size, mtime_ns, inode, file_hash, raw, listed),
        )
        if old is not None and old["listed"] and old["hash"] != file_hash:
            self._drop_list(str(old["hash"]))

    def paths_with(self, file_hash: str) -> list[tuple[str, int, int]]:
        """(path, size, mtime_ns) of the files last read with content ``file_hash``."""
        rows = self.db.query("SELECT path, size, mtime_ns FROM cache WHERE hash = ?", (file_hash,))
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    def chunk_map(self) -> dict[str, tuple[str, int, int]]:
        """Where each chunk of the folder's files was last seen: id -> (path, offset, length).

        Read when a received file needs chunks: the caller checks each one it reads.
        """
        found: dict[str, tuple[str, int, int]] = {}
        for path, file_hash, raw, listed in self.db.query(
            "SELECT path, hash, chunks, listed FROM cache"
        ):
            try:
                chunks = self._chunks(str(file_hash), raw, listed)
            except (OSError, InvalidInput):
                continue
            try:
                for chunk, offset, length in chunks.offsets():
                    found.setdefault(chunk, (str(path), offset, length))
            finally:
                if isinstance(chunks, ListFile):
                    chunks.close()
        return found

    def forget_cache(self, paths: Iterable[str]) -> None:
        conn = self.db.connection()
        listed = []
        for path in paths:
            row = conn.execute("SELECT hash, listed FROM cache WHERE path = ?", (path,)).fetchone()
            if row is not None:
                conn.execute("DELETE FROM cache WHERE path = ?", (path,))
                if row[1]:
                    listed.append(str(row[0]))
        for file_hash in listed:
            self._drop_list(file_hash)

    def kept_among(self, hashes: Iterable[str]) -> set[str]:
        """Those of ``hashes`` whose content is kept."""
        wanted = list(dict.fromkeys(hashes))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT hash FROM kept WHERE hash IN ({marks})"  # noqa: S608 - placeholders only
            found.update(str(row[0]) for row in self.db.query(query, part))
        return found

    def kept(self, file_hash: str) -> bytes | None:
        """The content with id ``file_hash`` as last synced, if kept (and still that)."""
        row = self.db.query_one("SELECT data FROM kept WHERE hash = ?", (file_hash,))
        if row is None:
            return None
        try:
            data = inflate_frame(zstandard.ZstdDecompressor(), row[0], BASE_MAX, "kept content")
        except InvalidInput:
            return None
        return data if blake3(data).hexdigest() == file_hash else None

    def keep(self, rows: list[tuple[str, bytes]]) -> None:
        """Keep (content id, zstd of the content) rows while there is room."""
        with self.db.transaction() as conn:
            used = int(self.get_meta("kept_bytes", "0"))
            for file_hash, packed in rows:
                if used + len(packed) > self.keep_bytes:
                    break
                cur = conn.execute(
                    "INSERT OR IGNORE INTO kept (hash, data) VALUES (?, ?)", (file_hash, packed)
                )
                used += len(packed) if cur.rowcount == 1 else 0
            self.set_meta("kept_bytes", str(used))

    def prune_kept(self) -> None:
        """Drop kept content the server no longer holds for any path of ours."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM kept WHERE hash NOT IN"
                " (SELECT hash FROM remote WHERE kind = 'file' AND hash IS NOT NULL)"
            )
            row = conn.execute("SELECT COALESCE(SUM(length(data)), 0) FROM kept").fetchone()
            self.set_meta("kept_bytes", str(int(row[0])))

    def _drop_list(self, file_hash: str) -> None:
        """Delete a kept list once no cached file has that content any more."""
        if (
            self.db.query_one(
                "SELECT 1 FROM cache WHERE hash = ? AND listed = 1 LIMIT 1", (file_hash,)
            )
            is None
        ):
            (self.lists / file_hash).unlink(missing_ok=True)


def _row(entry: Remote) -> tuple[Any, ...]:
    return (
        entry.kind,
        entry.size,
        entry.mtime_ns,
        entry.mode,
        entry.hash,
        entry.target,
        entry.inode,
    )
