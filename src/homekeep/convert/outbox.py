"""The client's own item database and outbox (seed 001's client database, 0.0.7's retries).

Items wait in the outbox until a server that converts their media type answers; they
then go to the least loaded one, ``upload_concurrency`` at a time. A silent server is
tried again after a back-off that doubles up to ``backoff_max_seconds``. An upload cut
halfway resumes on the same server.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homekeep.convert.client import Offline, ServerClient, sha512_file
from homekeep.convert.config import ConvertConfig
from homekeep.convert.profiles import CONVERSIONS
from homekeep.core.db import Database, utcnow
from homekeep.core.errors import HomekeepError, NotFound, UsageError

log = logging.getLogger("homekeep.convert.client")
OUTBOX = "outbox"
REFUSED = "refused"
DELETED = "deleted"
SERVER_FINAL = ("finished_successful", "finished_with_errors", "cancelled")

MIGRATIONS = (
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        file_path TEXT NOT NULL,
        conversion TEXT NOT NULL,
        media_type TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha512 TEXT NOT NULL,
        server_id TEXT,
        upload_id TEXT,
        item_id TEXT,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,
        last_checked_at TEXT,
        version INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]',
        progress TEXT,
        output_sha512 TEXT,
        output_path TEXT,
        fetched_at TEXT
    );
    CREATE INDEX items_status ON items(status);
    CREATE INDEX items_file ON items(file_path, conversion);
    CREATE TABLE servers (
        server_id TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        next_try_at REAL NOT NULL DEFAULT 0,
        last_ok_at TEXT,
        last_error TEXT
    );
    """,
)


def default_client_id() -> str:
    """This machine's name, in the characters a client id may hold."""
    name = re.sub(r"[^A-Za-z0-9._@-]", "-", socket.gethostname()).strip("-._@")
    return (name or "client")[:64]


@dataclass(frozen=True)
class Target:
    """A server the client may send to."""

    server_id: str
    token: str
    media_types: tuple[str, ...]


class _Clients:
    """A ServerClient per thread and server: an httpx client stays in the thread that made it."""

    def __init__(self, make: Callable[[str], ServerClient]) -> None:
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _all
        self._all: list[ServerClient] = []

    def get(self, server_id: str) -> ServerClient:
        mine: dict[str, ServerClient] = self._local.__dict__.setdefault("clients", {})
        client = mine.get(server_id)
        if client is None:
            client = mine[server_id] = self._make(server_id)
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        """Close every client; only once no thread uses them any more."""
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()
        self._local = threading.local()


def targets(config: ConvertConfig, server: str | None, token: str | None) -> list[Target]:
    """The servers to use: ``--server`` (all media types), else ``[convert] servers``."""
    if server:
        return [Target(server.rstrip("/"), token or "", ("audio", "image", "video"))]
    found = [
        Target(s.url, token or s.token.get_secret_value(), tuple(s.media_types))
        for s in config.servers
    ]
    if not found:
        raise UsageError(
            "no server to send to: pass --server URL, or list them in [convert] servers"
        )
    return found


class Outbox:
    """The client database and its uploads.

    One thread (the CLI's, or the watch loop's) uses the database; the upload threads of
    ``send_all`` only stream bytes, each through HTTP clients of its own.
    """

    def __init__(self, path: Path, config: ConvertConfig, servers: Sequence[Target]) -> None:
        self.db = Database(path, area="convert_client", migrations=MIGRATIONS)
        self.config = config
        self.servers = {s.server_id: s for s in servers}
        self.client_id = config.client_id or default_client_id()
        self._clients = _Clients(self._client)
        self._pool: ThreadPoolExecutor | None = None  # made by the first send_all
        self._halt = threading.Event()  # set: the uploads in flight stop

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._clients.close()  # the upload threads have ended: their clients are free
        self.db.close()

    # the items

    def add(self, path: Path, conversion: str) -> tuple[dict[str, Any], bool]:
        """Put a file in the outbox; False when it is already there or sent."""
        if conversion not in CONVERSIONS:
            raise UsageError(
                f"unknown conversion {conversion!r}; choose from: {', '.join(CONVERSIONS)}"
            )
        path = path.resolve()
        try:
            stat = path.stat()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        if not path.is_file():
            raise UsageError(f"{path} is not a file")
        known = self.db.query_one(
            "SELECT * FROM items WHERE file_path = ? AND conversion = ? AND file_size = ?"
            " AND mtime_ns = ? AND status NOT IN (?, ?, 'cancelled')",
            (str(path), conversion, stat.st_size, stat.st_mtime_ns, REFUSED, DELETED),
        )
        if known is not None:
            return self._row(known), False
        sha = sha512_file(path)
        cur = self.db.execute(
            "INSERT INTO items (file_path, conversion, media_type, file_size, mtime_ns, sha512,"
            " created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(path),
                conversion,
                CONVERSIONS[conversion].media_type,
                stat.st_size,
                stat.st_mtime_ns,
                sha,
                utcnow(),
                OUTBOX,
            ),
        )
        return self.get(int(cur.lastrowid or 0)), True

    def get(self, local_id: int) -> dict[str, Any]:
        row = self.db.query_one("SELECT * FROM items WHERE id = ?", (local_id,))
        if row is None:
            raise NotFound(f"no item {local_id} in the client database")
        return self._row(row)

    def find(self, ref: str) -> dict[str, Any]:
        """An item by its local number or its server item id (or a prefix of 8+)."""
        if ref.isdigit():
            return self.get(int(ref))
        if len(ref) < 8:
            raise UsageError("give an item's local number or at least 8 characters of its id")
        rows = self.db.query(
            "SELECT * FROM items WHERE item_id LIKE ?",
            (ref.replace("%", "").replace("_", "") + "%",),
        )
        if len(rows) != 1:
            raise NotFound(f"{'no' if not rows else 'more than one'} item matches {ref!r}")
        return self._row(rows[0])

    def all(self) -> list[dict[str, Any]]:
        return [self._row(r) for r in self.db.query("SELECT * FROM items ORDER BY id")]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        data = dict(row)
        data["errors"] = json.loads(data["errors"])
        data["progress"] = json.loads(data["progress"]) if data["progress"] else None
        return data

    def _set(self, local_id: int, **values: Any) -> None:
        if "errors" in values:
            values["errors"] = json.dumps(values["errors"])
        if "progress" in values and values["progress"] is not None:
            values["progress"] = json.dumps(values["progress"])
        sets = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(
            f"UPDATE items SET {sets} WHERE id = ?",  # noqa: S608 (keys are ours)
            (*values.values(), local_id),
        )

    # the servers, with back-off

    def _due(self, server_id: str) -> bool:
        row = self.db.query_one("SELECT next_try_at FROM servers WHERE server_id = ?", (server_id,))
        return row is None or row["next_try_at"] <= time.time()

    def _ok(self, server_id: str) -> None:
        self.db.execute(
            "INSERT INTO servers (server_id, failures, next_try_at, last_ok_at) VALUES (?, 0, 0, ?)"
            " ON CONFLICT (server_id) DO UPDATE SET failures = 0, next_try_at = 0,"
            " last_ok_at = excluded.last_ok_at, last_error = NULL",
            (server_id, utcnow()),
        )

    def _failed(self, server_id: str, error: str) -> None:
        row = self.db.query_one("SELECT failures FROM servers WHERE server_id = ?", (server_id,))
        failures = (row["failures"] if row else 0) + 1
        wait = min(self.config.backoff_max_seconds, 2.0 ** (failures - 1))
        self.db.execute(
            "INSERT INTO servers (server_id, failures, next_try_at, last_error) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (server_id) DO UPDATE SET failures = excluded.failures,"
            " next_try_at = excluded.next_try_at, last_error = excluded.last_error",
            (server_id, failures, time.time() + wait, error[:500]),
        )
        log.info("%s is silent (%s); next try in %.0f s", server_id, error, wait)

    def server_states(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM servers ORDER BY server_id")]

    def _client(self, server_id: str) -> ServerClient:
        target = self.servers[server_id]
        return ServerClient(server_id, target.token, chunk_bytes=self.config.upload_chunk_bytes)

    def _loads(self, force: bool) -> dict[str, int]:
        """The servers that answer now, with their load."""
        loads: dict[str, int] = {}
        for server_id in self.servers:
            if not force and not self._due(server_id):
                continue
            try:
                with self._client(server_id) as client:
                    loads[server_id] = int(client.status().get("load", 0))
                self._ok(server_id)
            except Offline as exc:
                self._failed(server_id, exc.message)
        return loads

    # sending, checking, fetching

    def send_all(
        self, *, force: bool = True, on_item: Callable[[dict[str, Any]], None] = lambda _: None
    ) -> int:
        """Send what waits in the outbox to servers that answer; return how many went.

        Up to ``upload_concurrency`` uploads stream at once, so a server checks one (its
        SHA-512, its ffprobe) while the next arrives. This thread alone chooses servers
        and writes the database; the upload threads only stream bytes.
        """
        waiting = [
            self._row(r) for r in self.db.query("SELECT * FROM items WHERE status = ?", (OUTBOX,))
        ]
        if not waiting:
            return 0
        loads = self._loads(force)
        limit = self.config.upload_concurrency
        if self._pool is None:
            self._pool = ThreadPoolExecutor(limit, thread_name_prefix="convert-upload")
        flying: dict[Future[dict[str, Any]], tuple[int, str]] = {}
        sent = 0

        def settle() -> None:
            nonlocal sent
            done, _ = wait(flying, return_when=FIRST_COMPLETED)
            for future in done:
                local_id, server_id = flying.pop(future)
                try:
                    answer = future.result()
                except HomekeepError as exc:
                    sent += self._failure(local_id, server_id, exc, loads, on_item)
                    continue
                self._accepted(local_id, server_id, answer)
                sent += 1
                on_item(self.get(local_id))

        try:
            for item in waiting:
                while len(flying) >= limit:
                    settle()
                server_id = self._choose(item, loads)
                if server_id is None:
                    continue
                loads[server_id] += 1  # counted now, so the next item sees where this went
                try:
                    start = self._start(item, server_id)
                except HomekeepError as exc:
                    sent += self._failure(item["id"], server_id, exc, loads, on_item)
                    continue
                if start is None:  # the server had it already
                    sent += 1
                    on_item(self.get(item["id"]))
                    continue
                upload = self._pool.submit(
                    self._upload, server_id, *start, Path(item["file_path"]), item["file_size"]
                )
                flying[upload] = (item["id"], server_id)
            while flying:
                settle()
        except BaseException:
            self._halt.set()  # uploads in flight stop within a MiB (and resume another time)
            raise
        finally:
            wait(flying)  # no upload goes on behind the caller's back
            self._halt.clear()
        return sent

    def _choose(self, item: dict[str, Any], loads: dict[str, int]) -> str | None:
        """The server for ``item``: the one its upload began on, else the least loaded able."""
        if item["upload_id"] and item["server_id"] in self.servers:
            # A started upload resumes on its own server once that answers.
            return item["server_id"] if item["server_id"] in loads else None
        able = [s for s in loads if item["media_type"] in self.servers[s].media_types]
        return min(able, key=lambda s: loads[s]) if able else None

    def _failure(
        self,
        local_id: int,
        server_id: str,
        exc: HomekeepError,
        loads: dict[str, int],
        on_item: Callable[[dict[str, Any]], None],
    ) -> int:
        """Record why an item did not go: 1 if final (the server said no), 0 if it waits."""
        if isinstance(exc, Offline):
            if loads.pop(server_id, None) is not None:  # one failure per server, not per upload
                self._failed(server_id, exc.message)
            return 0
        self._set(local_id, status=REFUSED, errors=[exc.message], last_checked_at=utcnow())
        on_item(self.get(local_id))
        return 1

    def _start(self, item: dict[str, Any], server_id: str) -> tuple[str, int] | None:
        """Where ``item``'s bytes go on ``server_id``: its upload id and the offset to send
        from, or None when the server accepted it already (then recorded here)."""
        path = Path(item["file_path"])
        client = self._clients.get(server_id)
        # An upload begun on another server (no longer configured) starts afresh here.
        upload_id = item["upload_id"] if item["server_id"] == server_id else None
        offset = 0
        if upload_id:
            try:
                state = client.upload_state(upload_id)
                if state["state"] == "done":
                    self._accepted(item["id"], server_id, client.item(state["item_id"]))
                    return None
                offset = int(state["offset"]) if state["state"] == "open" else 0
                if state["state"] != "open":
                    upload_id = None
            except NotFound:
                upload_id = None  # expired on the server: start again
        if not path.is_file() or path.stat().st_size != item["file_size"]:
            raise UsageError(f"{path} changed or vanished before it was sent; add it again")
        if not upload_id:
            created = client.create_upload(
                path.name, item["file_size"], item["sha512"], item["conversion"], self.client_id
            )
            upload_id = created["upload_id"]
            self._set(item["id"], server_id=server_id, upload_id=upload_id)
        return upload_id, offset

    def _upload(
        self, server_id: str, upload_id: str, offset: int, path: Path, size: int
    ) -> dict[str, Any]:
        """Stream one upload from ``offset`` to its end (on an upload thread: no database)."""

        def halt(_: int) -> None:
            if self._halt.is_set():
                raise Offline(f"{server_id}: the upload was stopped; it resumes from here")

        return self._clients.get(server_id).send(upload_id, path, offset, size, on_bytes=halt)

    def _accepted(self, local_id: int, server_id: str, answer: dict[str, Any]) -> None:
        self._set(
            local_id,
            server_id=server_id,
            item_id=answer["item_id"],
            status=answer["status"],
            version=answer["version"],
            last_checked_at=utcnow(),
            errors=answer.get("errors") or [],
            progress=answer.get("progress"),
            output_sha512=answer.get("output_sha512_checksum"),
        )

    def refresh(self, *, force: bool = True) -> int:
        """Ask the servers for news of every sent item not yet final; return how many changed."""
        rows = self.db.query(
            "SELECT * FROM items WHERE item_id IS NOT NULL AND status NOT IN (?, ?, ?, ?)",
            (*SERVER_FINAL, DELETED),
        )
        by_server: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_server.setdefault(row["server_id"], []).append(self._row(row))
        changed = 0
        for server_id, items in by_server.items():
            if server_id not in self.servers or (not force and not self._due(server_id)):
                continue
            try:
                with self._client(server_id) as client:
                    answers = {a["item_id"]: a for a in client.items(self.client_id)}
                self._ok(server_id)
            except Offline as exc:
                self._failed(server_id, exc.message)
                continue
            for item in items:
                answer = answers.get(item["item_id"])
                if answer is None:
                    self._set(item["id"], status=DELETED, last_checked_at=utcnow())
                    changed += 1
                    continue
                changed += answer["version"] != item["version"]
                self._accepted(item["id"], server_id, answer)
        return changed

    def fetch(self, out: Path | None, refs: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Download finished outputs not fetched yet (beside their source, or into ``out``)."""
        if refs:
            chosen = [self.find(r) for r in refs]
        else:
            chosen = [
                self._row(r)
                for r in self.db.query(
                    "SELECT * FROM items WHERE status = 'finished_successful'"
                    " AND fetched_at IS NULL"
                )
            ]
        done = []
        for item in chosen:
            if item["status"] != "finished_successful":
                raise UsageError(f"item {item['id']} is {item['status']}: nothing to fetch yet")
            if item["server_id"] not in self.servers:
                continue
            source = Path(item["file_path"])
            folder = out or source.parent
            folder.mkdir(parents=True, exist_ok=True)
            target = _free_name(
                folder, f"{source.stem}.{CONVERSIONS[item['conversion']].extension}"
            )
            try:
                with self._client(item["server_id"]) as client:
                    client.download(item["item_id"], target, item["output_sha512"])
            except Offline as exc:
                self._failed(item["server_id"], exc.message)
                # Said, not only logged: "nothing to fetch" would hide a damaged download.
                log.warning("%s not fetched: %s", source.name, exc.message)
                continue
            self._set(item["id"], output_path=str(target), fetched_at=utcnow())
            done.append(self.get(item["id"]))
        return done

    def act(self, ref: str, action: str) -> dict[str, Any]:
        """cancel, retry or delete an item on its server (an outbox item is just dropped)."""
        item = self.find(ref)
        if item["item_id"] is None:
            if action in ("cancel", "delete"):
                self._set(item["id"], status=DELETED if action == "delete" else "cancelled")
                return self.get(item["id"])
            raise UsageError(f"item {item['id']} has not reached a server yet")
        if item["server_id"] not in self.servers:
            raise UsageError(
                f"item {item['id']} is on {item['server_id']}, not a configured server"
            )
        with self._client(item["server_id"]) as client:
            answer = client.act(item["item_id"], action)
        if action == "delete":
            self._set(item["id"], status=DELETED, last_checked_at=utcnow())
        else:
            self._accepted(item["id"], item["server_id"], answer)
        return self.get(item["id"])


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``stem (2).ext`` and so on when it is taken."""
    candidate = folder / name
    stem, dot, ext = name.rpartition(".")
    for n in range(2, 10_000):
        if not candidate.exists():  # a .part beside it is an earlier try: it resumes
            return candidate
        candidate = folder / f"{stem} ({n}){dot}{ext}"
    raise UsageError(f"{folder} holds too many files called {name}")
