"""The server's SQL: the migrations of a target folder's index, and every query on it.

The index lives in ``DIR/.homekeep-sync/index.sqlite`` (see ``server.target``). A chunk
id maps to (file, offset, length) of a file the server already holds, so chunks are read
back from the files themselves; nothing is stored twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from homekeep.core.db import Database, utcnow

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
    # shared folders: namespaces that several clients send to and receive from
    "CREATE TABLE folders (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);",
    # which device made a change (a shared folder's clients all act as the folder)
    """
    ALTER TABLE events ADD COLUMN device TEXT;
    CREATE INDEX events_path ON events(client, path, id);
    """,
    # the devices that call for each folder (a token's name and an address): the sync page
    """
    CREATE TABLE contacts (
        folder TEXT NOT NULL,
        device TEXT NOT NULL,
        address TEXT NOT NULL,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        PRIMARY KEY (folder, device, address)
    );
    """,
)

# The device a request comes from (its X-Homekeep-Device header), for the history; set by
# the API for the request's own context, which its worker thread inherits.
DEVICE: ContextVar[str | None] = ContextVar("device", default=None)


# A path and everything under it, as two index range scans ('/' sorts just before '0').
_SUBTREE = (
    "SELECT id FROM entries WHERE client = ? AND path = ?"
    " UNION ALL SELECT id FROM entries WHERE client = ? AND path > ? AND path < ?"
)


def _subtree(client: str, path: str) -> tuple[str, ...]:
    return (client, path, client, path + "/", path + "0")


def is_target(root: Path) -> bool:
    """Return True if ``root`` is already a homekeep sync target."""
    return (root / STATE / "index.sqlite").is_file()


def slices(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """``items`` in parts small enough for one ``IN (...)`` query."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ServerIndex:
    """The queries on one target folder's index (entries, chunk rows, clients, events).

    Safe from many threads: ``db`` hands each thread its own connection. Methods that
    take ``conn`` run inside the caller's transaction.
    """

    def __init__(self, path: Path) -> None:
        self.db = Database(path, area="sync", migrations=MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    # -- clients -------------------------------------------------------------------------

    @staticmethod
    def touch_client(conn: sqlite3.Connection, client: str) -> None:
        """Record a change of ``client``: a new generation, and when it was last seen."""
        conn.execute(
            "INSERT INTO clients (name, generation, created_at, last_seen_at) VALUES (?, 1, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET generation = generation + 1,"
            " last_seen_at = excluded.last_seen_at",
            (client, utcnow(), utcnow()),
        )

    def register(self, client: str) -> None:
        """Record a client, once."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM clients WHERE name = ?", (client,)).fetchone() is None:
                self.touch_client(conn, client)

    def clients(self) -> list[str]:
        return [str(r[0]) for r in self.db.query("SELECT name FROM clients")]

    def share(self, name: str) -> None:
        """Record ``name`` as a shared folder, once."""
        self.register(name)
        self.db.execute(
            "INSERT OR IGNORE INTO folders (name, created_at) VALUES (?, ?)", (name, utcnow())
        )

    def shared(self) -> list[str]:
        """The shared folders, by name."""
        return [str(r[0]) for r in self.db.query("SELECT name FROM folders ORDER BY name")]

    def is_shared(self, name: str) -> bool:
        return self.db.query_one("SELECT 1 FROM folders WHERE name = ?", (name,)) is not None

    def change(self, client: str) -> int:
        """A folder's change counter: the id of its last event."""
        row = self.db.query_one(
            "SELECT COALESCE(MAX(id), 0) FROM events WHERE client = ?", (client,)
        )
        return int(row[0]) if row else 0

    def generation(self, client: str) -> int:
        row = self.db.query_one("SELECT generation FROM clients WHERE name = ?", (client,))
        return int(row["generation"]) if row else 0

    def manifest(self, client: str) -> tuple[int, list[list[Any]]]:
        """Return the client's generation and every entry it has on the server."""
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

    def set_top(self, client: str, mode: int, mtime_ns: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE clients SET top_mode = ?, top_mtime_ns = ? WHERE name = ?",
                (mode, mtime_ns, client),
            )
            self.touch_client(conn, client)

    def client_counts(self) -> list[sqlite3.Row]:
        """Per client: its name, when it was last seen, its files, folders, links, bytes."""
        return self.db.query(
            "SELECT c.name, c.last_seen_at,"
            " SUM(e.kind = 'file') AS files, SUM(e.kind = 'dir') AS folders,"
            " SUM(e.kind = 'link') AS links, SUM(e.size) AS bytes"
            " FROM clients c LEFT JOIN entries e ON e.client = c.name"
            " GROUP BY c.name ORDER BY c.name"
        )

    def totals(self) -> sqlite3.Row:
        """Unique contents and chunks, staged chunks, and chunk data received."""
        row = self.db.query_one(
            "SELECT (SELECT COUNT(DISTINCT hash) FROM entries WHERE kind = 'file') AS contents,"
            " (SELECT COUNT(DISTINCT hash) FROM chunks) AS chunks,"
            " (SELECT COUNT(*) FROM staged) AS staged,"
            " (SELECT COALESCE(SUM(data_bytes), 0) FROM events) AS received"
        )
        assert row is not None
        return row

    def events(self, client: str | None, limit: int) -> list[sqlite3.Row]:
        """The latest events (of ``client``, or all), newest first."""
        return self.db.query(
            "SELECT * FROM events WHERE (? IS NULL OR client = ?) ORDER BY id DESC LIMIT ?",
            (client, client, limit),
        )

    def history(
        self, where: list[tuple[str, tuple[Any, ...]]], before: int | None, limit: int
    ) -> list[sqlite3.Row]:
        """Events matching every (SQL condition, its values), newest first, ``limit`` of
        them from id ``before`` down. The conditions are the caller's constants."""
        if before is not None:
            where = [*where, ("id < ?", (before,))]
        sql = "SELECT * FROM events"
        if where:
            sql += " WHERE " + " AND ".join(f"({c})" for c, _ in where)
        args = [v for _, values in where for v in values]
        return self.db.query(f"{sql} ORDER BY id DESC LIMIT ?", (*args, limit))

    def folder_counts(self) -> list[sqlite3.Row]:
        """Per folder (client): whether it is shared, files, bytes, and its last event's time."""
        return self.db.query(
            "SELECT c.name, f.name IS NOT NULL AS shared,"
            " (SELECT COUNT(*) FROM entries e WHERE e.client = c.name AND e.kind = 'file')"
            " AS files,"
            " (SELECT COALESCE(SUM(e.size), 0) FROM entries e WHERE e.client = c.name) AS bytes,"
            " (SELECT at FROM events v WHERE v.client = c.name ORDER BY v.id DESC LIMIT 1)"
            " AS last_change"
            " FROM clients c LEFT JOIN folders f ON f.name = c.name ORDER BY c.name"
        )

    def record_contact(self, folder: str, device: str, address: str, at: str) -> None:
        """A device called for ``folder`` at ``at``."""
        self.db.execute(
            "INSERT INTO contacts (folder, device, address, first_at, last_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(folder, device, address)"
            " DO UPDATE SET last_at = MAX(last_at, excluded.last_at)",
            (folder, device, address, at, at),
        )

    def contacts(self, limit: int) -> list[sqlite3.Row]:
        """The devices of every folder, last seen first."""
        return self.db.query(
            "SELECT folder, device, address, first_at, last_at FROM contacts"
            " ORDER BY last_at DESC LIMIT ?",
            (limit,),
        )

    def files_like(self, client: str, marker: str, limit: int) -> list[str]:
        """Paths of files of ``client`` whose name holds ``marker`` (no wildcards in it)."""
        rows = self.db.query(
            "SELECT path FROM entries WHERE client = ? AND kind = 'file' AND instr(path, ?) > 0"
            " ORDER BY path LIMIT ?",
            (client, marker, limit),
        )
        return [str(r[0]) for r in rows]

    def last_event_at(self) -> str | None:
        row = self.db.query_one("SELECT at FROM events ORDER BY id DESC LIMIT 1")
        return str(row["at"]) if row else None

    @staticmethod
    def event(
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
        """Add a line to the history."""
        conn.execute(
            "INSERT INTO events (at, client, action, path, dest, size, data_bytes, via, device)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utcnow(), client, action, path, dest, size, data_bytes, via, DEVICE.get()),
        )

    def last_device(self, client: str, path: str) -> str | None:
        """The device that last changed ``path``, when known."""
        row = self.db.query_one(
            "SELECT device FROM events WHERE client = ? AND path = ? AND device IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (client, path),
        )
        return str(row[0]) if row else None

    # -- entries -------------------------------------------------------------------------

    def entry(self, client: str, path: str) -> sqlite3.Row | None:
        return self.db.query_one(
            "SELECT * FROM entries WHERE client = ? AND path = ?", (client, path)
        )

    def entries_at(self, client: str, paths: list[str], columns: str = "*") -> list[sqlite3.Row]:
        """The entries of ``client`` at ``paths``, a few hundred to a query."""
        conn = self.db.connection()
        rows: list[sqlite3.Row] = []
        for part in slices(paths):
            marks = ",".join("?" * len(part))
            rows += conn.execute(
                f"SELECT {columns} FROM entries WHERE client = ? AND path IN ({marks})",  # noqa: S608 - placeholders only
                (client, *part),
            )
        return rows

    def held(self, hashes: list[str], owner: str, mine: tuple[str, ...]) -> set[str]:
        """Those of ``hashes`` some entry has (among the entries ``owner`` allows)."""
        conn = self.db.connection()
        found: set[str] = set()
        for part in slices(hashes):
            marks = ",".join("?" * len(part))
            found.update(
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT hash FROM entries WHERE hash IN ({marks}){owner}",  # noqa: S608 - placeholders only
                    (*part, *mine),
                )
            )
        return found

    def copies(
        self, file_hash: str, size: int, owner: str, mine: tuple[str, ...]
    ) -> list[sqlite3.Row]:
        """A few files that hold this content (among the entries ``owner`` allows)."""
        return self.db.query(
            "SELECT * FROM entries WHERE hash = ? AND kind = 'file' AND size = ?"  # noqa: S608 - a constant fragment
            f"{owner} LIMIT 8",
            (file_hash, size, *mine),
        )

    def chunk_rows(self, entry_id: int) -> Iterable[tuple[str, int, int]]:
        """(chunk id, offset, length) of a file, in offset order."""
        return self.db.connection().execute(
            "SELECT hash, offset, length FROM chunks WHERE entry_id = ? ORDER BY offset",
            (entry_id,),
        )

    def dir_times(self, client: str, folders: list[str]) -> list[tuple[str, int]]:
        """The recorded mtimes of those of ``folders`` that are folders with one."""
        times: list[tuple[str, int]] = []
        for part in slices(folders):
            marks = ",".join("?" * len(part))
            rows = self.db.query(
                "SELECT path, mtime_ns FROM entries WHERE client = ? AND kind = 'dir'"  # noqa: S608 - placeholders only
                f" AND mtime_ns > 0 AND path IN ({marks})",
                (client, *part),
            )
            times.extend((str(r[0]), int(r[1])) for r in rows)
        return times

    def dirs_with_times(self, client: str) -> list[str]:
        rows = self.db.query(
            "SELECT path FROM entries WHERE client = ? AND kind = 'dir' AND mtime_ns > 0",
            (client,),
        )
        return [str(r[0]) for r in rows]

    @staticmethod
    def forget(conn: sqlite3.Connection, client: str, path: str) -> None:
        """Drop the index rows of ``path`` and everything under it."""
        conn.execute(f"DELETE FROM entries WHERE id IN ({_SUBTREE})", _subtree(client, path))  # noqa: S608 - a constant fragment

    def record_dir(
        self, client: str, path: str, mode: int, mtime_ns: int | None, created: bool
    ) -> None:
        """A folder made or changed (its mtime kept when ``mtime_ns`` is None)."""
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
                self.event(conn, client, "mkdir" if created else "meta", path)
            self.touch_client(conn, client)

    def record_meta(self, client: str, files: list[tuple[str, int, int, int, int]]) -> None:
        """New (path, size, mode, mtime_ns, entry id) of files whose content stayed."""
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE entries SET mode = ?, mtime_ns = ? WHERE id = ?",
                [(mode, mtime_ns, entry_id) for _, _, mode, mtime_ns, entry_id in files],
            )
            for path, size, _, _, _ in files:
                self.event(conn, client, "meta", path, size=size, via="local")
            self.touch_client(conn, client)

    def record_dir_times(self, client: str, times: list[tuple[int, int]]) -> None:
        """New (mtime_ns, entry id) of folders otherwise unchanged."""
        with self.db.transaction() as conn:
            conn.executemany("UPDATE entries SET mtime_ns = ? WHERE id = ?", times)
            self.touch_client(conn, client)

    def record_link(self, client: str, path: str, link_target: str, mtime_ns: int) -> None:
        with self.db.transaction() as conn:
            self.forget(conn, client, path)
            conn.execute(
                "INSERT INTO entries (client, path, kind, mtime_ns, target)"
                " VALUES (?, ?, 'link', ?, ?)",
                (client, path, mtime_ns, link_target),
            )
            self.event(conn, client, "link", path)
            self.touch_client(conn, client)

    def record_delete(self, client: str, path: str) -> None:
        with self.db.transaction() as conn:
            self.forget(conn, client, path)
            self.event(conn, client, "delete", path)
            self.touch_client(conn, client)

    def record_rename(self, client: str, path: str, dest: str, size: int) -> None:
        with self.db.transaction() as conn:
            self.forget(conn, client, dest)
            conn.execute(
                f"UPDATE entries SET path = ? || substr(path, ?) WHERE id IN ({_SUBTREE})",  # noqa: S608 - a constant fragment
                (dest, len(path) + 1, *_subtree(client, path)),
            )
            self.event(conn, client, "rename", path, dest=dest, size=size)
            self.touch_client(conn, client)

    @classmethod
    def record_file(
        cls,
        conn: sqlite3.Connection,
        client: str,
        row: tuple[str, int, int, int, str],
        placed: Iterable[tuple[str, int, int]],
        copy_of: int | None,
    ) -> None:
        """A file placed: its (path, size, mtime_ns, mode, hash) and its chunk rows, or those
        of ``copy_of``, the entry it is a copy of."""
        path, _, _, _, file_hash = row
        cls.forget(conn, client, path)
        cur = conn.execute(
            "INSERT INTO entries (client, path, kind, size, mtime_ns, mode, hash)"
            " VALUES (?, ?, 'file', ?, ?, ?, ?)",
            (client, *row),
        )
        entry_id = cur.lastrowid
        conn.executemany(
            "INSERT INTO chunks (hash, entry_id, offset, length) VALUES (?, ?, ?, ?)",
            ((h, entry_id, o, n) for h, o, n in placed),
        )
        if copy_of is not None:  # the same bytes: the source's rows hold for the copy
            conn.execute(
                "INSERT INTO chunks (hash, entry_id, offset, length)"
                " SELECT c.hash, ?, c.offset, c.length FROM chunks c"
                " JOIN entries e ON e.id = c.entry_id WHERE e.id = ? AND e.hash = ?",
                (entry_id, copy_of, file_hash),
            )

    # -- placing -------------------------------------------------------------------------

    def placing(self, client: str, paths: list[str]) -> None:
        """Note files about to be renamed into place before their rows are written."""
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO placing (client, path) VALUES (?, ?)", [(client, p) for p in paths]
            )

    @staticmethod
    def placed(conn: sqlite3.Connection, client: str, paths: list[str]) -> None:
        conn.executemany(
            "DELETE FROM placing WHERE client = ? AND path = ?", [(client, p) for p in paths]
        )

    def forget_placing(self, client: str | None = None) -> int:
        """Drop the rows of files left half placed (of ``client``, or all); return how many.

        Paths in ``placing`` may hold new content under rows that describe the old.
        """
        where, args = ("WHERE client = ?", (client,)) if client else ("", ())
        with self.db.transaction() as conn:
            rows = conn.execute(f"SELECT client, path FROM placing {where}", args).fetchall()  # noqa: S608 - a constant fragment
            for owner, path in rows:
                self.forget(conn, owner, path)
            for owner in {row[0] for row in rows}:
                self.touch_client(conn, owner)  # a new generation: clients take the manifest
            conn.execute(f"DELETE FROM placing {where}", args)  # noqa: S608 - a constant fragment
        return len(rows)
