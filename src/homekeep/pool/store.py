"""The pool's history: servers started, stopped, failed and restarted, in SQLite."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from homekeep.core.db import Database, utcnow

MIGRATIONS = (
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        server TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    """,
)
KEEP_EVENTS = 10_000


@dataclass(frozen=True)
class Event:
    """One thing that happened to a server."""

    id: int
    at: str
    kind: str
    server: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EventStore:
    """Events of the pool, newest kept, oldest dropped past ``KEEP_EVENTS``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, kind: str, server: str, detail: str) -> None:
        """Add one event (and drop the oldest past the bound)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO events (at, kind, server, detail) VALUES (?, ?, ?, ?)",
                (utcnow(), kind, server, detail[:1000]),
            )
            newest = cursor.lastrowid or 0
            if newest % 100 == 0:
                conn.execute("DELETE FROM events WHERE id <= ?", (newest - KEEP_EVENTS,))

    async def record_async(self, kind: str, server: str, detail: str) -> None:
        """``record`` off the event loop."""
        await self.db.run(self.record, kind, server, detail)

    def recent(self, limit: int = 100) -> list[Event]:
        """The newest ``limit`` events, newest first."""
        rows = self.db.query(
            "SELECT id, at, kind, server, detail FROM events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [Event(**dict(row)) for row in rows]
