"""SQLite, the embedded store: one file per area, WAL, migrations tracked per area.

A ``Database`` hands each thread its own connection, so it is safe to use from
worker threads; async code calls ``await db.run(fn, ...)``, which runs ``fn`` with a
connection on a worker thread and never blocks the event loop.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from homekeep.core.errors import HomekeepError

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TIMEOUT_MS = 15_000
_AREA_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class DatabaseError(HomekeepError):
    """A database file is unreadable, corrupt, or from a newer homekeep."""


def utcnow() -> str:
    """Return the current UTC time as ISO 8601 with seconds, the format stored everywhere."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """One SQLite file, its schema migrations, and a connection per thread."""

    def __init__(self, path: Path, *, area: str, migrations: Sequence[str]) -> None:
        if not _AREA_RE.match(area):
            raise ValueError(f"area name {area!r} must be a lowercase identifier")
        self.path = path
        self.area = area
        self._migrations = tuple(migrations)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=15
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(
                f"cannot open database {self.path}: {exc}; "
                "move it aside to start afresh, or restore it from a backup"
            ) from exc
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one write transaction (BEGIN IMMEDIATE), rolled back on error."""
        conn = self.connection()
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement on this thread's connection."""
        return self.connection().execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Return every row of a query."""
        return self.connection().execute(sql, params).fetchall()

    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> sqlite3.Row | None:
        """Return the first row of a query, or None."""
        row: sqlite3.Row | None = self.connection().execute(sql, params).fetchone()
        return row

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking function that uses this database on a worker thread."""
        import anyio.to_thread  # only async code calls this

        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    def close(self) -> None:
        """Close every connection this database opened, in any thread."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    @property
    def schema_version(self) -> int:
        row = self.query_one(
            "SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations WHERE area = ?",
            (self.area,),
        )
        return int(row["v"]) if row else 0

    def _migrate(self) -> None:
        conn = self.connection()
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " area TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
                " PRIMARY KEY (area, version))"
            )
            current = self.schema_version
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(
                f"database {self.path} is not a usable SQLite file: {exc}; "
                "move it aside to start afresh, or restore it from a backup"
            ) from exc
        if current > len(self._migrations):
            raise DatabaseError(
                f"database {self.path} has schema version {current} but this homekeep knows "
                f"only {len(self._migrations)}; upgrade homekeep"
            )
        for version, script in enumerate(self._migrations[current:], start=current + 1):
            # executescript takes no parameters; area matches _AREA_RE and the stamp
            # is our own ISO time, so the values spliced in are safe.
            record = (
                "INSERT INTO schema_migrations (area, version, applied_at)"  # noqa: S608
                f" VALUES ('{self.area}', {version}, '{utcnow()}')"
            )
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{script}\n;{record};\nCOMMIT;")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise DatabaseError(
                    f"database {self.path}: migration {self.area} #{version} failed: {exc}"
                ) from exc
