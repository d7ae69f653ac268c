"""The server's truth in SQLite: items (seed's states), uploads, and workers with their leases."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import Conflict, NotFound

TO_DO = "to_do"
IN_PROGRESS = "in_progress"
SUCCESS = "finished_successful"
FAILED = "finished_with_errors"
CANCELLED = "cancelled"
STATUSES = (TO_DO, IN_PROGRESS, SUCCESS, FAILED, CANCELLED)
FINAL = (SUCCESS, FAILED, CANCELLED)

MIGRATIONS = (
    """
    CREATE TABLE items (
        item_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        client_id TEXT NOT NULL,
        owner TEXT,
        file_name TEXT NOT NULL,
        conversion TEXT NOT NULL,
        media_type TEXT NOT NULL,
        sha512 TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        probe TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN
            ('to_do', 'in_progress', 'finished_successful', 'finished_with_errors', 'cancelled')),
        version INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT,
        lease_token TEXT,
        lease_expires_at REAL,
        started_at TEXT,
        finished_at TEXT,
        progress TEXT,
        errors TEXT NOT NULL DEFAULT '[]',
        output_size INTEGER,
        output_sha512 TEXT
    );
    CREATE INDEX items_status ON items(status, created_at);
    CREATE INDEX items_client ON items(client_id, created_at);
    CREATE TABLE uploads (
        upload_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        expires_at REAL NOT NULL,
        client_id TEXT NOT NULL,
        owner TEXT,
        file_name TEXT NOT NULL,
        conversion TEXT NOT NULL,
        sha512 TEXT,
        file_size INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'done', 'refused')),
        item_id TEXT,
        error_code TEXT,
        error TEXT
    );
    CREATE INDEX uploads_state ON uploads(state, expires_at);
    CREATE TABLE workers (
        worker_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        remote INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        last_seen_at REAL NOT NULL,
        item_id TEXT,
        version INTEGER NOT NULL DEFAULT 1
    );
    """,
)


@dataclass(frozen=True)
class Item:
    """One item of the queue, as stored."""

    item_id: str
    created_at: str
    updated_at: str
    client_id: str
    owner: str | None
    file_name: str
    conversion: str
    media_type: str
    sha512: str
    file_size: int
    probe: dict[str, Any]
    status: str
    version: int
    attempts: int
    worker_id: str | None
    lease_token: str | None
    lease_expires_at: float | None
    started_at: str | None
    finished_at: str | None
    progress: dict[str, Any] | None
    errors: list[str]
    output_size: int | None
    output_sha512: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Item:
        data = dict(row)
        data["probe"] = json.loads(data["probe"])
        data["progress"] = json.loads(data["progress"]) if data["progress"] else None
        data["errors"] = json.loads(data["errors"])
        return cls(**data)

    def to_json(self, max_attempts: int) -> dict[str, Any]:
        """The answer's shape: the seed's fields first, then the queue's."""
        return {
            "item_id": self.item_id,
            "created_at": self.created_at,
            "client_id": self.client_id,
            "file_name": self.file_name,
            "sha512_checksum": self.sha512,
            "file_size": self.file_size,
            "status": self.status,
            "version": self.version,
            "conversion": self.conversion,
            "media_type": self.media_type,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "max_attempts": max_attempts,
            "worker": self.worker_id if self.status == IN_PROGRESS else None,
            "progress": self.progress if self.status == IN_PROGRESS else None,
            "errors": self.errors,
            "output_size": self.output_size,
            "output_sha512_checksum": self.output_sha512,
        }


@dataclass(frozen=True)
class Upload:
    """A resumable upload, open until its last byte arrives and checks out."""

    upload_id: str
    created_at: str
    expires_at: float
    client_id: str
    owner: str | None
    file_name: str
    conversion: str
    sha512: str | None
    file_size: int
    state: str
    item_id: str | None
    error_code: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Upload:
        return cls(**dict(row))


class Store:
    """SQL over the area's database; every method is one transaction or one read."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # items

    def add_item(self, item: dict[str, Any]) -> None:
        now = utcnow()
        row = {
            **item,
            "created_at": now,
            "updated_at": now,
            "probe": json.dumps(item["probe"]),
            "status": TO_DO,
        }
        keys = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        self.db.execute(f"INSERT INTO items ({keys}) VALUES ({marks})", row)  # noqa: S608

    def item(self, item_id: str) -> Item:
        row = self.db.query_one("SELECT * FROM items WHERE item_id = ?", (item_id,))
        if row is None:
            raise NotFound(f"no item {item_id!r}")
        return Item.from_row(row)

    def items(
        self,
        *,
        client_id: str | None = None,
        statuses: Sequence[str] = (),
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Item]:
        where, params = ["1 = 1"], []
        if client_id is not None:
            where.append("client_id = ?")
            params.append(client_id)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        sql = (
            f"SELECT * FROM items WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        )
        return [Item.from_row(r) for r in self.db.query(sql, [*params, limit, offset])]

    def counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT status, COUNT(*) AS n FROM items GROUP BY status")
        return dict.fromkeys(STATUSES, 0) | {r["status"]: r["n"] for r in rows}

    def to_do_ids(self) -> list[str]:
        rows = self.db.query("SELECT item_id FROM items WHERE status = ? ORDER BY rowid", (TO_DO,))
        return [r["item_id"] for r in rows]

    def claim(self, item_id: str, worker_id: str, lease_token: str, lease_seconds: float) -> bool:
        """Take a waiting item for a worker; False when it is not waiting (any more)."""
        cur = self.db.execute(
            "UPDATE items SET status = ?, worker_id = ?, lease_token = ?, lease_expires_at = ?,"
            " attempts = attempts + 1, started_at = ?, updated_at = ?, progress = NULL,"
            " version = version + 1 WHERE item_id = ? AND status = ?",
            (
                IN_PROGRESS,
                worker_id,
                lease_token,
                time.time() + lease_seconds,
                utcnow(),
                utcnow(),
                item_id,
                TO_DO,
            ),
        )
        return cur.rowcount == 1

    def holder(self, item_id: str, lease_token: str) -> Item | None:
        """The item if ``lease_token`` still holds it, else None (cancelled, lost, gone)."""
        row = self.db.query_one(
            "SELECT * FROM items WHERE item_id = ? AND lease_token = ? AND status = ?",
            (item_id, lease_token, IN_PROGRESS),
        )
        return Item.from_row(row) if row is not None else None

    def heartbeat(
        self, item_id: str, lease_token: str, lease_seconds: float, progress: dict[str, Any]
    ) -> bool:
        cur = self.db.execute(
            "UPDATE items SET lease_expires_at = ?, progress = ?, updated_at = ?,"
            " version = version + 1 WHERE item_id = ? AND lease_token = ? AND status = ?",
            (
                time.time() + lease_seconds,
                json.dumps(progress),
                utcnow(),
                item_id,
                lease_token,
                IN_PROGRESS,
            ),
        )
        return cur.rowcount == 1

    def finish(
        self,
        item_id: str,
        lease_token: str,
        status: str,
        *,
        errors: Sequence[str] = (),
        output_size: int | None = None,
        output_sha512: str | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """End a held job: finished either way, or back to to_do (``status`` TO_DO)."""
        final = status != TO_DO
        self.db.execute("UPDATE workers SET item_id = NULL WHERE item_id = ?", (item_id,))
        cur = self.db.execute(
            "UPDATE items SET status = ?, worker_id = NULL, lease_token = NULL,"
            " lease_expires_at = NULL, progress = NULL, errors = ?, output_size = ?,"
            " output_sha512 = ?, finished_at = ?, updated_at = ?, version = version + 1,"
            " attempts = attempts - ? WHERE item_id = ? AND lease_token = ? AND status = ?",
            (
                status,
                json.dumps(list(errors)),
                output_size,
                output_sha512,
                utcnow() if final else None,
                utcnow(),
                0 if count_attempt else 1,
                item_id,
                lease_token,
                IN_PROGRESS,
            ),
        )
        return cur.rowcount == 1

    def set_status(self, item_id: str, status: str, *, allowed_from: Sequence[str]) -> Item:
        """Move an item to ``status`` (cancel, retry) if it is in one of ``allowed_from``."""
        with self.db.transaction() as conn:
            item = self.item(item_id)
            if item.status not in allowed_from:
                raise Conflict(
                    f"item {item_id} is {item.status}; this needs it {' or '.join(allowed_from)}"
                )
            retry = status == TO_DO
            conn.execute(
                "UPDATE items SET status = ?, worker_id = NULL, lease_token = NULL,"
                " lease_expires_at = NULL, progress = NULL, updated_at = ?,"
                " version = version + 1, finished_at = ?,"
                " attempts = CASE WHEN ? THEN 0 ELSE attempts END,"
                " errors = CASE WHEN ? THEN '[]' ELSE errors END WHERE item_id = ?",
                (status, utcnow(), None if retry else utcnow(), retry, retry, item_id),
            )
        return self.item(item_id)

    def delete_item(self, item_id: str) -> Item:
        with self.db.transaction() as conn:
            item = self.item(item_id)
            conn.execute("DELETE FROM items WHERE item_id = ?", (item_id,))
        return item

    def expired_leases(self, now: float) -> list[Item]:
        rows = self.db.query(
            "SELECT * FROM items WHERE status = ? AND lease_expires_at < ?", (IN_PROGRESS, now)
        )
        return [Item.from_row(r) for r in rows]

    def held_by(self, worker_ids: Sequence[str]) -> list[Item]:
        if not worker_ids:
            return []
        marks = ", ".join("?" * len(worker_ids))
        rows = self.db.query(
            f"SELECT * FROM items WHERE status = ? AND worker_id IN ({marks})",  # noqa: S608
            (IN_PROGRESS, *worker_ids),
        )
        return [Item.from_row(r) for r in rows]

    def live_item_ids(self) -> set[str]:
        return {r["item_id"] for r in self.db.query("SELECT item_id FROM items")}

    # uploads

    def add_upload(self, upload: dict[str, Any]) -> None:
        keys = ", ".join(upload)
        marks = ", ".join(f":{k}" for k in upload)
        self.db.execute(f"INSERT INTO uploads ({keys}) VALUES ({marks})", upload)  # noqa: S608

    def upload(self, upload_id: str) -> Upload:
        row = self.db.query_one("SELECT * FROM uploads WHERE upload_id = ?", (upload_id,))
        if row is None:
            raise NotFound(f"no upload {upload_id!r} (it may have expired); start a new one")
        return Upload.from_row(row)

    def open_upload_bytes(self) -> int:
        row = self.db.query_one(
            "SELECT COALESCE(SUM(file_size), 0) AS n FROM uploads WHERE state = 'open'"
        )
        return int(row["n"]) if row else 0

    def end_upload(
        self,
        upload_id: str,
        state: str,
        *,
        item_id: str | None = None,
        code: str = "",
        error: str = "",
    ) -> None:
        self.db.execute(
            "UPDATE uploads SET state = ?, item_id = ?, error_code = ?, error = ?"
            " WHERE upload_id = ? AND state = 'open'",
            (state, item_id, code or None, error or None, upload_id),
        )

    def expired_uploads(self, now: float) -> list[str]:
        rows = self.db.query("SELECT upload_id FROM uploads WHERE expires_at < ?", (now,))
        return [r["upload_id"] for r in rows]

    def drop_uploads(self, upload_ids: Sequence[str]) -> None:
        for upload_id in upload_ids:
            self.db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def open_upload_ids(self) -> set[str]:
        rows = self.db.query("SELECT upload_id FROM uploads WHERE state = 'open'")
        return {r["upload_id"] for r in rows}

    # workers (seed: the broker's thread index)

    def seen_worker(
        self, worker_id: str, host: str, pid: int, *, remote: bool, item_id: str | None
    ) -> None:
        self.db.execute(
            "INSERT INTO workers (worker_id, host, pid, remote, started_at, last_seen_at, item_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET"
            " last_seen_at = excluded.last_seen_at, item_id = excluded.item_id,"
            " version = version + 1",
            (worker_id, host, pid, int(remote), utcnow(), time.time(), item_id),
        )

    def gone_worker(self, worker_id: str) -> None:
        self.db.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))

    def workers(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM workers ORDER BY started_at")]

    def forget_workers(self, before: float) -> None:
        self.db.execute("DELETE FROM workers WHERE last_seen_at < ?", (before,))
