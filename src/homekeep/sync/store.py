"""The server side: a sync target folder, its content index, and every change applied to it.

Layout of a target folder DIR::

    DIR/.homekeep-sync/index.sqlite   entries, chunk locations, staged chunks, history
    DIR/.homekeep-sync/tmp/           files being written (renamed into place when whole)
    DIR/.homekeep-sync/staging/       uploaded chunks waiting to be assembled
    DIR/.homekeep-sync/lists/         chunk lists of huge files, sent on their own
    DIR/<client>/...                  each client's copy of its folder

A chunk id maps to (file, offset, length) of a file the server already holds, so chunks
are read back from the files themselves; nothing is stored twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from blake3 import blake3

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import Conflict, HomekeepError, InvalidInput, UsageError
from homekeep.core.hashing import hash_file
from homekeep.sync.server import fsops
from homekeep.sync.server.chunkstore import ChunkStore, Location
from homekeep.sync.wire.chunking import Digest
from homekeep.sync.wire.protocol import (
    ChunkList,
    ChunkListBuilder,
    Chunks,
    check_client,
)

log = logging.getLogger(__name__)

STATE = ".homekeep-sync"
BIG_LIST = 4096  # chunks (128 MiB of file): a list this long is looked up in slices
MISSING_MAX = 32768  # chunk ids in one "missing" answer (1 GiB of data on average)

MIGRATIONS = (
    """
    CREATE TABLE clients (
        name TEXT PRIMARY KEY,
        generation INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        last_seen_at TEXT
    );
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        client TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'dir', 'link')),
        size INTEGER NOT NULL DEFAULT 0,
        mtime_ns INTEGER NOT NULL DEFAULT 0,
        mode INTEGER NOT NULL DEFAULT 0,
        hash TEXT,
        target TEXT,
        UNIQUE (client, path)
    );
    CREATE INDEX entries_hash ON entries(hash);
    CREATE TABLE chunks (
        hash TEXT NOT NULL,
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL
    );
    CREATE INDEX chunks_hash ON chunks(hash);
    CREATE INDEX chunks_entry ON chunks(entry_id);
    CREATE TABLE staged (
        hash TEXT PRIMARY KEY,
        pack TEXT NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        wire_bytes INTEGER NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX staged_pack ON staged(pack);
    CREATE TABLE pending (
        hash TEXT PRIMARY KEY,
        chunks BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        client TEXT NOT NULL,
        action TEXT NOT NULL,
        path TEXT NOT NULL,
        dest TEXT,
        size INTEGER NOT NULL DEFAULT 0,
        data_bytes INTEGER NOT NULL DEFAULT 0,
        via TEXT
    );
    CREATE INDEX events_client ON events(client, id);
    """,
    """
    ALTER TABLE clients ADD COLUMN top_mode INTEGER;
    ALTER TABLE clients ADD COLUMN top_mtime_ns INTEGER;
    """,
    # the files of a batch being renamed into place, until their index rows are written
    "CREATE TABLE placing (client TEXT NOT NULL, path TEXT NOT NULL);",
    "CREATE INDEX IF NOT EXISTS placing_path ON placing(client, path);",
    # chunk lists kept between rounds are each client's own, like the kept huge lists
    """
    CREATE TABLE pending_lists (
        client TEXT NOT NULL,
        hash TEXT NOT NULL,
        chunks BLOB NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (client, hash)
    );
    DROP TABLE pending;
    """,
    # staged chunks are each client's own (dedup draws only on what a client may read);
    # those staged before are dropped: their clients send them again
    """
    DROP TABLE staged;
    CREATE TABLE staged (
        client TEXT NOT NULL,
        hash TEXT NOT NULL,
        pack TEXT NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        wire_bytes INTEGER NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (client, hash)
    );
    CREATE INDEX staged_pack ON staged(pack);
    CREATE INDEX staged_hash ON staged(hash);
    """,
)


# A path and everything under it, as two index range scans ('/' sorts just before '0').
_SUBTREE = (
    "SELECT id FROM entries WHERE client = ? AND path = ?"
    " UNION ALL SELECT id FROM entries WHERE client = ? AND path > ? AND path < ?"
)


def _subtree(client: str, path: str) -> tuple[str, ...]:
    return (client, path, client, path + "/", path + "0")


@dataclass(frozen=True)
class _Ready:
    """A file written to a temp name, waiting for the group commit that places it."""

    tmp: Path
    spec: FileSpec
    placed: Iterable[tuple[str, int, int]]  # iterated once, when recorded
    action: str
    data_bytes: int
    via: str
    staged: set[str]
    copy_of: int | None = None  # a copy's source entry: its chunk rows are copied as stored


@dataclass(frozen=True)
class FileSpec:
    """A file the client wants the server to hold."""

    path: str
    size: int
    mode: int
    mtime_ns: int
    hash: str
    chunks: Chunks | None


@dataclass
class Batch:
    """The file changes of one request: made into temp files, then placed by ``settle``.

    It also remembers what was looked up for them (entries, held content, chunk
    locations, folders checked), so a thousand small files cost a few queries, not a
    thousand; ``forget`` drops that after any other kind of change. It belongs to the
    one thread that holds its client's lock.
    """

    client: str
    tree: fsops.Tree  # the client's folder, walked by descriptors
    inline: dict[str, tuple[bytes, int]]  # chunks sent with the request: (data, wire bytes)
    ready: list[_Ready] = field(default_factory=list)
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

    def entry(self, store: ServerStore, path: str) -> sqlite3.Row | None:
        if path in self.entries:
            return self.entries[path]
        return store._entry(self.client, path)

    def locate(
        self, store: ServerStore, chunks: ChunkList, *, keep: bool = True
    ) -> dict[str, Location]:
        """Where the chunks of ``chunks`` are; without ``keep`` nothing is cached (a window
        of a huge file's list: what it finds is dropped with the window)."""
        if not keep:
            ids = (c for c in chunks.ids() if c not in self.inline)
            return store.chunks.locate_all(self.client, ids)
        unknown = {c for c in chunks.ids() if c not in self.looked and c not in self.inline}
        if unknown:
            self.located.update(store.chunks.locate_all(self.client, unknown))
            self.looked.update(unknown)
        return self.located


def is_target(root: Path) -> bool:
    """Return True if ``root`` is already a homekeep sync target."""
    return (root / STATE / "index.sqlite").is_file()


class ServerStore:
    """One sync target folder and its index; safe to use from many threads.

    Shared by the request threads and the data port's workers: the database hands each
    thread its own SQLite connection, one client's changes are serialised by its lock,
    a ``Batch`` belongs to the thread holding that lock, and ``chunks`` guards its own.
    """

    def __init__(
        self,
        root: Path,
        *,
        staging_ttl: float = 24 * 3600,
        maintain: bool = True,
        dedup_across_clients: bool = False,
        keep_group_and_other_write: bool = False,
        pause: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self._pause = pause  # for tests: see fsops.Tree
        # the bits a mode from a client keeps on disk: never setuid or setgid, and group
        # and other write (and sticky, which only matters with them) only when configured
        self.mode_mask = 0o1777 if keep_group_and_other_write else 0o755
        self.state = root / STATE
        self.tmp = self.state / "tmp"
        self.staging = self.state / "staging"
        self.lists = self.state / "lists"
        self.staging_ttl = staging_ttl
        if maintain:
            for folder in (self.state, self.tmp, self.staging, self.lists):
                folder.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.state / "index.sqlite", area="sync", migrations=MIGRATIONS)
        self.server_id = self._server_id(maintain)
        self._locks: dict[str, threading.Lock] = {}  # one per client, made under _locks_guard
        self._locks_guard = threading.Lock()
        self.chunks = ChunkStore(
            root, self.db, self.staging, self.lists, ttl=staging_ttl, shared=dedup_across_clients
        )
        self._serving = self.state / "serving" if maintain else None
        if self._serving is not None:  # only the serving process clears and repairs
            self._recover()
            if self._serving.exists():  # the last server did not stop cleanly
                self._restore_all_dir_times()
            self._serving.touch()
            self._clean_tmp()
            self.chunks.collect()

    @classmethod
    def open(
        cls,
        root: Path,
        *,
        adopt: bool = False,
        staging_ttl: float = 24 * 3600,
        dedup_across_clients: bool = False,
        keep_group_and_other_write: bool = False,
    ) -> ServerStore:
        """Open ``root`` as a target: new, empty, already ours, or adopted with ``adopt``."""
        root = root.expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} is not a folder; give an empty or new folder")
        if root.is_dir() and not is_target(root) and any(root.iterdir()) and not adopt:
            raise UsageError(
                f"{root} is not empty and not a homekeep sync target; give an empty folder, "
                "or pass --adopt to index what is there for dedup"
            )
        root.mkdir(parents=True, exist_ok=True)
        store = cls(
            root,
            staging_ttl=staging_ttl,
            dedup_across_clients=dedup_across_clients,
            keep_group_and_other_write=keep_group_and_other_write,
        )
        if adopt:
            from homekeep.sync.server.adopt import adopt as index_existing

            index_existing(store)
        return store

    def close(self) -> None:
        self.db.close()
        if self._serving is not None:
            self._serving.unlink(missing_ok=True)  # a clean stop: nothing to repair

    def _server_id(self, create: bool) -> str:
        """A random id of this target folder: clients see when they face another server."""
        path = self.state / "id"
        if not path.exists() and create:
            tmp = self.tmp / "id"
            tmp.write_text(uuid.uuid4().hex)
            tmp.replace(path)
        return path.read_text().strip() if path.exists() else ""

    # -- helpers -------------------------------------------------------------------------

    def lock(self, client: str) -> threading.Lock:
        """The lock that serialises one client's changes."""
        with self._locks_guard:
            return self._locks.setdefault(client, threading.Lock())

    def client_dir(self, client: str) -> Path:
        check_client(client)
        return self.root / client

    def tree(self, client: str) -> fsops.Tree:
        """The client's folder (made if new), to change through folder descriptors."""
        base = self.client_dir(client)
        base.mkdir(exist_ok=True)
        return fsops.Tree(base, pause=self._pause)

    def _recover(self, client: str | None = None) -> None:
        """Forget what a crash (or an error) left half placed.

        A batch's files are renamed into place before their index rows are written. Paths
        in ``placing`` may hold new content under rows that describe the old, so their rows
        go: the client's next manifest shows them missing and it sends them again.
        """
        where, args = ("WHERE client = ?", (client,)) if client else ("", ())
        with self.db.transaction() as conn:
            rows = conn.execute(f"SELECT client, path FROM placing {where}", args).fetchall()  # noqa: S608 - a constant fragment
            for owner, path in rows:
                self._forget(conn, owner, path)
            for owner in {row[0] for row in rows}:
                self._touch_client(conn, owner)  # a new generation: clients take the manifest
            conn.execute(f"DELETE FROM placing {where}", args)  # noqa: S608 - a constant fragment
        if rows:
            log.warning("forgot %d half-placed files; their clients send them again", len(rows))

    def _restore_all_dir_times(self) -> None:
        """Give every folder its recorded mtime, after a server that did not stop cleanly:
        one killed between placing files and restoring their folders' mtimes leaves them
        moved, and the client, seeing the right mtimes in the manifest, sends nothing."""
        clients = [str(r[0]) for r in self.db.query("SELECT name FROM clients")]
        for client in clients:
            try:
                self.client_dir(client)
            except InvalidInput:
                continue
            rows = self.db.query(
                "SELECT path FROM entries WHERE client = ? AND kind = 'dir' AND mtime_ns > 0",
                (client,),
            )
            self.restore_dir_times(client, [str(r[0]) for r in rows], top=True)

    def _clean_tmp(self) -> None:
        for leftover in self.tmp.iterdir():
            fsops.remove(leftover)

    def _touch_client(self, conn: sqlite3.Connection, client: str) -> None:
        conn.execute(
            "INSERT INTO clients (name, generation, created_at, last_seen_at) VALUES (?, 1, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET generation = generation + 1,"
            " last_seen_at = excluded.last_seen_at",
            (client, utcnow(), utcnow()),
        )

    def generation(self, client: str) -> int:
        row = self.db.query_one("SELECT generation FROM clients WHERE name = ?", (client,))
        return int(row["generation"]) if row else 0

    def _event(
        self,
        conn: sqlite3.Connection,
        client: str,
        action: str,
        path: str,
        *,
        dest: str | None = None,
        size: int = 0,
        data_bytes: int = 0,
        via: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO events (at, client, action, path, dest, size, data_bytes, via)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (utcnow(), client, action, path, dest, size, data_bytes, via),
        )

    def _entry(self, client: str, path: str) -> sqlite3.Row | None:
        return self.db.query_one(
            "SELECT * FROM entries WHERE client = ? AND path = ?", (client, path)
        )

    @staticmethod
    def _forget(conn: sqlite3.Connection, client: str, path: str) -> None:
        """Drop the index rows of ``path`` and everything under it."""
        conn.execute(f"DELETE FROM entries WHERE id IN ({_SUBTREE})", _subtree(client, path))  # noqa: S608 - a constant fragment

    def register(self, client: str) -> None:
        """Create a client's folder and record it, once."""
        self.client_dir(client).mkdir(exist_ok=True)
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM clients WHERE name = ?", (client,)).fetchone() is None:
                self._touch_client(conn, client)

    # -- reading -------------------------------------------------------------------------

    def manifest(self, client: str) -> tuple[int, list[list[Any]]]:
        """Return the client's generation and every entry it has on the server."""
        check_client(client)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT generation FROM clients WHERE name = ?", (client,)
            ).fetchone()
            rows = conn.execute(
                "SELECT path, kind, size, mtime_ns, mode, hash, target FROM entries"
                " WHERE client = ? ORDER BY path",
                (client,),
            ).fetchall()
        return (int(row[0]) if row else 0), [list(r) for r in rows]

    def top(self, client: str) -> list[int] | None:
        """The mode and mtime the client sent for its folder itself, if it did."""
        row = self.db.query_one(
            "SELECT top_mode, top_mtime_ns FROM clients WHERE name = ?", (client,)
        )
        if row is None or row[0] is None or row[1] is None:
            return None
        return [int(row[0]), int(row[1])]

    # -- changes -------------------------------------------------------------------------

    def set_top(self, client: str, mode: int, mtime_ns: int) -> None:
        """Record the mode and mtime of the client's folder itself and apply them."""
        base = self.client_dir(client)
        base.mkdir(exist_ok=True)
        base.chmod(mode & self.mode_mask)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE clients SET top_mode = ?, top_mtime_ns = ? WHERE name = ?",
                (mode, mtime_ns, client),
            )
            self._touch_client(conn, client)

    def mkdir(self, client: str, path: str, mode: int, mtime_ns: int | None = None) -> None:
        """Create or update a folder; its mtime is applied by ``restore_dir_times``."""
        with self.tree(client) as tree:
            created = tree.mkdir(path, mode & self.mode_mask)
        with self.db.transaction() as conn:
            old = conn.execute(
                "SELECT kind, mode FROM entries WHERE client = ? AND path = ?", (client, path)
            ).fetchone()
            conn.execute(
                "INSERT INTO entries (client, path, kind, mode, mtime_ns)"
                " VALUES (?, ?, 'dir', ?, ?)"
                " ON CONFLICT(client, path) DO UPDATE SET kind = 'dir', mode = excluded.mode,"
                " mtime_ns = CASE WHEN ? IS NULL THEN mtime_ns ELSE excluded.mtime_ns END,"
                " size = 0, hash = NULL, target = NULL",
                (client, path, mode, mtime_ns or 0, mtime_ns),
            )
            conn.execute(
                "DELETE FROM chunks WHERE entry_id IN"
                " (SELECT id FROM entries WHERE client = ? AND path = ?)",
                (client, path),
            )
            if created or old is None or (old["kind"], old["mode"]) != ("dir", mode):
                self._event(conn, client, "mkdir" if created else "meta", path)
            self._touch_client(conn, client)

    def touch_dirs(
        self, client: str, folders: list[tuple[str, int, int | None]]
    ) -> list[tuple[str, int, int | None]]:
        """Record the new mtimes of (path, mode, mtime_ns) folders that are already there
        with that mode, in one transaction; return the others, for ``mkdir`` one by one.

        A release upgrade of a source tree moves the mtime of thousands of folders: this
        costs one lstat and one row each (their times are applied by ``restore_dir_times``,
        which walks each path by folder descriptors), not a walk, a chmod and a transaction each.
        """
        rows: dict[str, sqlite3.Row] = {}
        conn = self.db.connection()
        for part in _slices([path for path, _, _ in folders]):
            marks = ",".join("?" * len(part))
            for row in conn.execute(
                "SELECT id, path, kind, mode FROM entries WHERE client = ?"  # noqa: S608 - placeholders only
                f" AND path IN ({marks})",
                (client, *part),
            ):
                rows[row["path"]] = row
        quick: list[tuple[int, int]] = []
        rest = []
        with self.tree(client) as tree:
            for path, mode, mtime_ns in folders:
                row = rows.get(path)
                if row is not None and row["kind"] == "dir" and row["mode"] == mode and mtime_ns:
                    try:
                        st = tree.lstat(path)
                    except (OSError, HomekeepError):  # a file or a link on the way
                        st = None
                    if (
                        st is not None
                        and stat.S_ISDIR(st.st_mode)
                        and stat.S_IMODE(st.st_mode) == mode & self.mode_mask
                    ):
                        quick.append((mtime_ns, int(row["id"])))
                        continue
                rest.append((path, mode, mtime_ns))
        if quick:
            with self.db.transaction() as conn:
                conn.executemany("UPDATE entries SET mtime_ns = ? WHERE id = ?", quick)
                self._touch_client(conn, client)
        return rest

    def symlink(self, client: str, path: str, link_target: str, mtime_ns: int) -> None:
        if "\x00" in link_target or not link_target or len(link_target) > 4096:
            raise InvalidInput(f"invalid symlink target for {path!r}")
        with self.tree(client) as tree:
            tree.lstat(path)  # a symlink or a file on the way: refused before anything
            tmp = self.temp_name()
            tmp.symlink_to(link_target)
            try:
                with contextlib.suppress(NotImplementedError, OSError):
                    os.utime(tmp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
                tree.place(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            tree.fsync(path.rpartition("/")[0])
        with self.db.transaction() as conn:
            self._forget(conn, client, path)
            conn.execute(
                "INSERT INTO entries (client, path, kind, mtime_ns, target)"
                " VALUES (?, ?, 'link', ?, ?)",
                (client, path, mtime_ns, link_target),
            )
            self._event(conn, client, "link", path)
            self._touch_client(conn, client)

    def delete(self, client: str, path: str) -> bool:
        with self.tree(client) as tree:
            removed = tree.remove(path)
        with self.db.transaction() as conn:
            self._forget(conn, client, path)
            self._event(conn, client, "delete", path)
            self._touch_client(conn, client)
        return removed

    def rename(self, client: str, path: str, dest: str) -> bool:
        """Rename a file or folder; return False if the source is not there (client re-sends)."""
        entry = self._entry(client, path)
        with self.tree(client) as tree:
            tree.lstat(dest)  # a symlink or a file on the way: refused before anything
            if entry is None or tree.lstat(path) is None:
                return False
            if dest == path or dest.startswith(path + "/"):
                raise InvalidInput(f"cannot move {path!r} into itself ({dest!r})")
            if path.startswith(dest + "/"):  # over a folder it is in: sent again instead
                return False
            tree.rename(path, dest, replace_any=entry["kind"] == "dir")
            tree.fsync(dest.rpartition("/")[0])
        with self.db.transaction() as conn:
            self._forget(conn, client, dest)
            conn.execute(
                f"UPDATE entries SET path = ? || substr(path, ?) WHERE id IN ({_SUBTREE})",  # noqa: S608 - a constant fragment
                (dest, len(path) + 1, *_subtree(client, path)),
            )
            self._event(conn, client, "rename", path, dest=dest, size=int(entry["size"]))
            self._touch_client(conn, client)
        return True

    # -- chunks --------------------------------------------------------------------------

    def receive_pack(self, client: str, body: bytes | bytearray | memoryview) -> tuple[int, int]:
        """Verify and stage a pack of chunks; return (chunks stored, bytes of chunk data)."""
        check_client(client)
        return self.chunks.receive(client, body)

    # -- files ---------------------------------------------------------------------------

    def begin(self, client: str, inline: dict[str, tuple[bytes, int]] | None = None) -> Batch:
        """Start a batch of changes for ``client`` (whose lock the caller holds)."""
        self.register(client)
        return Batch(client, self.tree(client), inline or {})

    def prepare(self, batch: Batch, specs: list[FileSpec]) -> None:
        """Look up, in a few queries, what ``commit_file`` will ask about these files."""
        conn = self.db.connection()
        paths = [s.path for s in specs]
        for part in _slices(paths):
            marks = ",".join("?" * len(part))
            for row in conn.execute(
                f"SELECT * FROM entries WHERE client = ? AND path IN ({marks})",  # noqa: S608 - placeholders only
                (batch.client, *part),
            ):
                batch.entries[row["path"]] = row
        for path in paths:
            batch.entries.setdefault(path, None)
        hashes = list({s.hash for s in specs if s.size})
        owner, mine = self.chunks.owner(batch.client)
        for part in _slices(hashes):
            marks = ",".join("?" * len(part))
            batch.held.update(
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT hash FROM entries WHERE hash IN ({marks}){owner}",  # noqa: S608 - placeholders only
                    (*part, *mine),
                )
            )
        batch.checked.update(hashes)
        wanted = {
            chunk_id
            for s in specs
            if isinstance(s.chunks, ChunkList) and len(s.chunks) <= BIG_LIST
            for chunk_id in s.chunks.ids()
            if chunk_id not in batch.inline
        }
        batch.located.update(self.chunks.locate_all(batch.client, wanted))
        batch.looked.update(wanted)

    def commit_file(self, batch: Batch, spec: FileSpec) -> dict[str, Any]:
        """Make the client's file ``spec``: by a local copy, from chunks, or ask for chunks.

        Returns ``{"status": "done", "via": ...}``, ``{"status": "missing", "chunks": [...]}``
        (or ``"all": true`` when the server has none of them), or ``{"status": "resend"}``
        (the server forgot the chunk list: send it again). A file made waits in the batch
        until ``settle(batch)`` places the lot.
        """
        client = batch.client
        on_disk = batch.tree.lstat(spec.path)  # a symlink on the way: refused here
        current = batch.entry(self, spec.path)
        if (
            current is not None
            and current["kind"] == "file"
            and current["hash"] == spec.hash
            and _unchanged(on_disk, current)
        ):
            batch.tree.chmod(spec.path, spec.mode & self.mode_mask)
            batch.tree.utime(spec.path, spec.mtime_ns)
            batch.touched.append((spec, int(current["id"])))  # recorded by ``settle``
            return {"status": "done", "via": "meta"}
        action = "modify" if current is not None else "create"
        if (spec.hash in batch.held or spec.hash not in batch.checked) and self._copy_existing(
            batch, spec, action
        ):
            return {"status": "done", "via": "copy"}
        chunks = spec.chunks
        if chunks is None:  # a list sent before (a huge file's, on its own), or a resend
            chunks = self.chunks.pending_list(client, spec.hash, spec.size)
            if chunks is None:
                return {"status": "resend"}
        elif chunks.size() != spec.size:
            raise InvalidInput(f"chunk lengths of {spec.path!r} do not add up to its size")
        keep = isinstance(chunks, ChunkList) and len(chunks) <= BIG_LIST
        have = 0
        missing: dict[str, None] = {}
        missing_bytes = 0
        more = False
        for window in chunks.windows():  # a huge file's list: a window at a time
            located = batch.locate(self, window, keep=keep)
            for ref in window:
                if ref.chunk_id in located or ref.chunk_id in batch.inline:
                    have += 1
                elif ref.chunk_id not in missing:
                    missing_bytes += ref.length
                    if len(missing) < MISSING_MAX:
                        missing[ref.chunk_id] = None
                    else:
                        more = True
        if missing:
            if isinstance(chunks, ChunkList):  # a ListFile is kept already
                batch.pending[spec.hash] = chunks
            if not have:  # one short answer, not a list of every chunk of a huge file
                return {"status": "missing", "all": True}
            answer: dict[str, Any] = {
                "status": "missing",
                "chunks": list(missing),
                "bytes": missing_bytes,
            }
            if more:  # the rest once these came: the answer stays small
                answer["more"] = True
            return answer
        try:
            return self._assemble(batch, spec, chunks, action, keep=keep)
        except InvalidInput:
            if spec.chunks is not None:
                raise
            # a kept list that does not make this content: drop it and ask for the list
            self.chunks.drop_list(client, spec.hash)
            return {"status": "resend"}

    def new_upload(self) -> Path:
        """A fresh temp file name for a streamed upload."""
        return self.temp_name()

    def temp_name(self) -> Path:
        """A temp file name no other writer uses (files are created with O_EXCL).

        Random, so request threads share no counter to draw it from.
        """
        return self.tmp / uuid.uuid4().hex

    def expected_chunks(self, client: str, spec: FileSpec) -> Chunks | None:
        """The chunk list a client announced for this content, if the server kept it."""
        return self.chunks.pending_list(client, spec.hash, spec.size)

    def commit_upload(
        self,
        client: str,
        spec: FileSpec,
        tmp: Path,
        wire_bytes: int,
        digest: Digest | None = None,
    ) -> None:
        """Place a file streamed whole into ``tmp`` once its content matches its id.

        ``digest`` is the chunk list and hash taken while the file arrived; without it the
        file is read again.
        """
        from homekeep.sync.wire.chunking import FileChanged, digest_file

        try:
            st = tmp.stat()
            if digest is None or digest.size != st.st_size:
                digest = digest_file(tmp, expect_size=st.st_size, expect_mtime_ns=st.st_mtime_ns)
        except (OSError, FileChanged) as exc:
            tmp.unlink(missing_ok=True)
            raise InvalidInput(f"upload of {spec.path!r} could not be read back") from exc
        if digest.size != spec.size or digest.file_hash != spec.hash:
            tmp.unlink(missing_ok=True)
            raise InvalidInput(f"the uploaded content of {spec.path!r} does not match its id")
        fd = os.open(tmp, os.O_WRONLY)
        try:
            fsops.finish(fd, mode=spec.mode & self.mode_mask, mtime_ns=spec.mtime_ns)
        finally:
            os.close(fd)
        with self.lock(client):
            batch = self.begin(client)
            try:
                batch.tree.lstat(spec.path)  # a symlink on the way: refused here
                action = "modify" if batch.entry(self, spec.path) is not None else "create"
                placed = digest.chunks.offsets()  # lazily: a huge file's list is not copied
                batch.ready.append(_Ready(tmp, spec, placed, action, wire_bytes, "upload", set()))
                self.settle(batch)
            finally:
                batch.close()

    def base_chunks(self, client: str, path: str, base: str) -> Chunks | None:
        """The chunk list of the file at ``path`` if its content id is ``base``.

        Read in offset order into a builder: a huge file's list goes to a temp file. None
        when the rows do not cover the file end to end (the client then sends its list).
        """
        entry = self._entry(client, path)
        if entry is None or entry["kind"] != "file" or entry["hash"] != base:
            return None
        rows = self.db.connection().execute(
            "SELECT hash, offset, length FROM chunks WHERE entry_id = ? ORDER BY offset",
            (entry["id"],),
        )
        built = ChunkListBuilder(self.tmp)
        for chunk_hash, offset, length in rows:
            if offset != built.size:  # a row was dropped (its chunk was not there once)
                return None
            built.add(bytes.fromhex(chunk_hash), length)
        return built.done() if built.size == entry["size"] else None

    def _copy_existing(self, batch: Batch, spec: FileSpec, action: str) -> bool:
        """Whole-file dedup: make the file from a copy of one the server holds."""
        if spec.size == 0:
            return False
        owner, mine = self.chunks.owner(batch.client)
        for row in self.db.query(
            "SELECT * FROM entries WHERE hash = ? AND kind = 'file' AND size = ?"  # noqa: S608 - a constant fragment
            f"{owner} LIMIT 8",
            (spec.hash, spec.size, *mine),
        ):
            tmp = self.temp_name()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with contextlib.ExitStack() as stack:
                    if row["client"] == batch.client:
                        tree = batch.tree
                    else:
                        tree = stack.enter_context(self.tree(row["client"]))
                    source = tree.open(row["path"], os.O_RDONLY)
                    stack.callback(os.close, source)
                    if not _unchanged(os.fstat(source), row):
                        raise OSError("the source changed since it was recorded")
                    fsops.clone(source, fd)
                if os.fstat(fd).st_size != spec.size:
                    raise OSError("copy came out short")
                # size and mtime say the source is what the index recorded; the hash makes
                # sure (a crash between placing a file and recording it could fool them)
                if hash_file(tmp) != spec.hash:
                    raise OSError("the source no longer holds that content")
                fsops.finish(fd, mode=spec.mode & self.mode_mask, mtime_ns=spec.mtime_ns)
            except (OSError, InvalidInput, Conflict):
                os.close(fd)
                tmp.unlink(missing_ok=True)
                continue
            os.close(fd)
            batch.ready.append(
                _Ready(tmp, spec, (), action, 0, "copy", set(), copy_of=int(row["id"]))
            )
            return True
        return False

    def _assemble(
        self,
        batch: Batch,
        spec: FileSpec,
        chunks: Chunks,
        action: str,
        *,
        keep: bool,
    ) -> dict[str, Any]:
        """Write the file from its chunks, a window of its list at a time."""
        tmp = self.temp_name()
        handles: dict[Path, BinaryIO] = {}
        # a one-chunk file's id is its chunk's, and every chunk is checked when read
        whole = None if _single(chunks, spec.hash) else blake3()
        staged_used: set[str] = set()
        counted: set[str] = set()
        data_bytes = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        done = False
        gone: list[str] = []  # chunks not where the index said: all asked for at once
        try:
            for window in chunks.windows():
                located = batch.locate(self, window, keep=keep)
                for chunk in window:
                    sent = batch.inline.get(chunk.chunk_id)
                    if sent is not None:
                        data = sent[0]
                        if len(data) != chunk.length:
                            raise InvalidInput(
                                f"the chunk list of {spec.path!r} gives a chunk a length it has not"
                            )
                        if chunk.chunk_id not in counted:
                            counted.add(chunk.chunk_id)
                            data_bytes += sent[1]
                    else:
                        where = located.get(chunk.chunk_id)
                        if where is not None and where[4] != chunk.length:
                            raise InvalidInput(
                                f"the chunk list of {spec.path!r} gives a chunk a length it has not"
                            )
                        got = self.chunks.read(handles, where, chunk) if where else None
                        if got is None or where is None:
                            if where is not None:  # that copy changed or went: forget only it
                                self.chunks.drop(chunk.chunk_id, where)
                            batch.located.pop(chunk.chunk_id, None)
                            if len(gone) < MISSING_MAX:
                                gone.append(chunk.chunk_id)
                            continue
                        data = got
                        if where[3] and chunk.chunk_id not in staged_used:
                            staged_used.add(chunk.chunk_id)
                            data_bytes += where[2]
                    if gone:
                        continue  # the file will not be made now; only look for more gone chunks
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    if whole is not None:
                        whole.update(data)
            if gone:
                if isinstance(chunks, ChunkList):
                    batch.pending[spec.hash] = chunks
                return {"status": "missing", "chunks": list(dict.fromkeys(gone))}
            if whole is not None and whole.hexdigest() != spec.hash:
                raise InvalidInput(f"the chunks of {spec.path!r} do not add up to its content id")
            fsops.finish(fd, mode=spec.mode & self.mode_mask, mtime_ns=spec.mtime_ns)
            done = True
        finally:
            os.close(fd)
            for fh in handles.values():
                fh.close()
            if not done:  # an error, or a chunk gone missing: no temp file stays behind
                tmp.unlink(missing_ok=True)
        via = "chunks" if data_bytes else "local"
        placed = chunks.offsets()
        batch.ready.append(_Ready(tmp, spec, placed, action, data_bytes, via, staged_used))
        return {"status": "done", "via": via, "data_bytes": data_bytes}

    def settle(self, batch: Batch) -> None:
        """Group commit: make the files durable, rename them into place, record them."""
        if batch.touched:
            # a crash before this leaves rows older than the files: next time they look
            # changed behind the index, and are made again from their chunks
            with self.db.transaction() as conn:
                conn.executemany(
                    "UPDATE entries SET mode = ?, mtime_ns = ? WHERE id = ?",
                    [(spec.mode, spec.mtime_ns, entry_id) for spec, entry_id in batch.touched],
                )
                for spec, _ in batch.touched:
                    self._event(conn, batch.client, "meta", spec.path, size=spec.size, via="local")
                self._touch_client(conn, batch.client)
            batch.touched.clear()
        ready = batch.ready
        if batch.pending:
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO pending_lists (client, hash, chunks, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    [(batch.client, h, c.raw, time.time()) for h, c in batch.pending.items()],
                )
            batch.pending.clear()
        if not ready:
            return
        client = batch.client
        with self.db.transaction() as conn:  # if this stops halfway, _recover knows what
            conn.executemany(
                "INSERT INTO placing (client, path) VALUES (?, ?)",
                [(client, r.spec.path) for r in ready],
            )
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
            with self.db.transaction() as conn:
                for r in ready:
                    self._record_file(conn, client, r)
                conn.executemany(
                    "DELETE FROM placing WHERE client = ? AND path = ?",
                    [(client, r.spec.path) for r in ready],
                )
                self._touch_client(conn, client)
                emptied = self.chunks.release_many(
                    conn, client, [(r.staged, r.spec.hash) for r in ready]
                )
        except BaseException:
            self._recover(client)  # placed or not, recorded or not: their rows go
            raise
        finally:
            for r in ready[placed:]:
                r.tmp.unlink(missing_ok=True)
        self.chunks.remove_empty_packs(emptied)
        paths = [r.spec.path for r in ready]
        ready.clear()
        batch.forget()
        self.restore_dir_times(client, paths)

    def restore_dir_times(self, client: str, changed: list[str], *, top: bool = False) -> None:
        """Give the folders around ``changed`` paths the mtimes the client recorded.

        Adding, removing or renaming an entry moves its folder's mtime, so this runs after
        each batch of changes: the changed paths that are folders themselves and every folder
        above them get their recorded mtime back, deepest first (a folder's own utime does
        not touch its parent), and the client's folder itself last (with ``top``, or when
        a changed path is right in it).
        """
        if top or any("/" not in path for path in changed):
            self._restore_top(client)
        folders: set[str] = set()
        for path in changed:
            folders.add(path)
            while "/" in path:
                path = path.rpartition("/")[0]
                if path in folders:
                    break
                folders.add(path)
        if not folders:
            return
        times: list[tuple[str, int]] = []
        for part in _slices(sorted(folders)):
            marks = ",".join("?" * len(part))
            rows = self.db.query(
                "SELECT path, mtime_ns FROM entries WHERE client = ? AND kind = 'dir'"  # noqa: S608 - placeholders only
                f" AND mtime_ns > 0 AND path IN ({marks})",
                (client, *part),
            )
            times.extend((str(r[0]), int(r[1])) for r in rows)
        with self.tree(client) as tree:
            for path, mtime_ns in sorted(times, key=lambda t: t[0].count("/"), reverse=True):
                try:
                    st = tree.lstat(path)
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        tree.utime(path, mtime_ns)
                except (OSError, InvalidInput, Conflict) as exc:
                    log.debug("cannot set the mtime of %s: %s", path, exc)

    def _restore_top(self, client: str) -> None:
        top = self.top(client)
        if top is None:
            return
        try:
            os.utime(self.client_dir(client), ns=(top[1], top[1]), follow_symlinks=False)
        except OSError as exc:
            log.debug("cannot set the mtime of %s's folder: %s", client, exc)

    def _record_file(self, conn: sqlite3.Connection, client: str, r: _Ready) -> None:
        spec = r.spec
        self._forget(conn, client, spec.path)
        cur = conn.execute(
            "INSERT INTO entries (client, path, kind, size, mtime_ns, mode, hash)"
            " VALUES (?, ?, 'file', ?, ?, ?, ?)",
            (client, spec.path, spec.size, spec.mtime_ns, spec.mode, spec.hash),
        )
        entry_id = cur.lastrowid
        conn.executemany(
            "INSERT INTO chunks (hash, entry_id, offset, length) VALUES (?, ?, ?, ?)",
            ((h, entry_id, o, n) for h, o, n in r.placed),
        )
        if r.copy_of is not None:  # the same bytes: the source's rows hold for the copy
            conn.execute(
                "INSERT INTO chunks (hash, entry_id, offset, length)"
                " SELECT c.hash, ?, c.offset, c.length FROM chunks c"
                " JOIN entries e ON e.id = c.entry_id WHERE e.id = ? AND e.hash = ?",
                (entry_id, r.copy_of, spec.hash),
            )
        self._event(
            conn, client, r.action, spec.path, size=spec.size, data_bytes=r.data_bytes, via=r.via
        )


def _unchanged(st: os.stat_result | None, entry: sqlite3.Row) -> bool:
    """A regular file of the size and mtime the index recorded for ``entry``."""
    return (
        st is not None
        and stat.S_ISREG(st.st_mode)
        and st.st_size == entry["size"]
        and st.st_mtime_ns == entry["mtime_ns"]
    )


def _single(chunks: Chunks, file_hash: str) -> bool:
    """A one-chunk file: its id is its chunk's, and chunks are checked when read."""
    return isinstance(chunks, ChunkList) and len(chunks) == 1 and chunks[0].chunk_id == file_hash


def _slices(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
