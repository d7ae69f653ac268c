"""The SQLite helper: pragmas, migrations tracked per area, threads and async."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from homekeep.core.db import Database, DatabaseError

MIGRATIONS = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
    "CREATE TABLE child (id INTEGER PRIMARY KEY,"
    " parent_id INTEGER NOT NULL REFERENCES parent(id));",
)


def test_pragmas_and_migrations(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.sqlite", area="demo", migrations=MIGRATIONS)
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
    assert db.query_one("PRAGMA foreign_keys")[0] == 1  # type: ignore[index]
    assert db.query_one("PRAGMA busy_timeout")[0] >= 5000  # type: ignore[index]
    assert db.schema_version == 2
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO child (parent_id) VALUES (42)")
    db.close()
    # Reopening applies nothing twice; a new migration is applied once.
    more = (*MIGRATIONS, "ALTER TABLE parent ADD COLUMN note TEXT;")
    db = Database(tmp_path / "a.sqlite", area="demo", migrations=more)
    assert db.schema_version == 3
    rows = db.query("SELECT area, version FROM schema_migrations ORDER BY version")
    assert [tuple(r) for r in rows] == [("demo", 1), ("demo", 2), ("demo", 3)]
    db.close()


def test_two_areas_track_their_own_versions(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    Database(path, area="one", migrations=MIGRATIONS[:1]).close()
    other = Database(path, area="two", migrations=("CREATE TABLE t2 (x INTEGER);",))
    assert other.schema_version == 1
    other.close()


def test_failed_migration_rolls_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    bad = (*MIGRATIONS, "CREATE TABLE ok_table (x INTEGER); CREATE TABLE parent (x);")
    with pytest.raises(DatabaseError, match="migration demo #3 failed"):
        Database(path, area="demo", migrations=bad)
    db = Database(path, area="demo", migrations=MIGRATIONS)
    assert db.schema_version == 2
    assert db.query_one("SELECT name FROM sqlite_master WHERE name = 'ok_table'") is None
    db.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Database(path, area="demo", migrations=MIGRATIONS).close()
    with pytest.raises(DatabaseError, match="upgrade homekeep"):
        Database(path, area="demo", migrations=MIGRATIONS[:1])


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(DatabaseError, match="move it aside"):
        Database(path, area="demo", migrations=MIGRATIONS)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database(tmp_path / "e.sqlite", area="demo", migrations=MIGRATIONS)

    def insert_then_fail() -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO parent (name) VALUES ('a')")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    assert db.query("SELECT * FROM parent") == []
    db.close()


def test_threads_each_get_a_connection_and_all_writes_land(tmp_path: Path) -> None:
    db = Database(tmp_path / "f.sqlite", area="demo", migrations=MIGRATIONS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                with db.transaction() as conn:
                    conn.execute("INSERT INTO parent (name) VALUES (?)", (f"{n}-{i}",))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert db.query_one("SELECT COUNT(*) FROM parent")[0] == 400  # type: ignore[index]
    db.close()


def test_async_run_uses_a_worker_thread(tmp_path: Path) -> None:
    db = Database(tmp_path / "g.sqlite", area="demo", migrations=MIGRATIONS)

    def insert_and_count(name: str) -> tuple[int, str]:
        db.execute("INSERT INTO parent (name) VALUES (?)", (name,))
        count = db.query_one("SELECT COUNT(*) FROM parent")[0]  # type: ignore[index]
        return count, threading.current_thread().name

    async def main() -> list[tuple[int, str]]:
        results: list[tuple[int, str]] = []
        async with anyio.create_task_group() as tg:
            for i in range(20):

                async def one(i: int = i) -> None:
                    results.append(await db.run(insert_and_count, f"n{i}"))

                tg.start_soon(one)
        return results

    results = anyio.run(main)
    assert sorted(count for count, _ in results)[-1] == 20
    assert all(name != threading.main_thread().name for _, name in results)
    db.close()
