"""What each user does with the library: stars, play counts, and the saved play queue.

Users are core's (``user_id`` is ``core.users.User.id``); the rows live in the music
database, so the library and its use by people are backed up together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from homekeep.core.db import Database, utcnow

Kind = Literal["track", "album", "artist"]
MAX_QUEUE = 5_000


class UserData:
    """Reads and writes of the stars, plays and play_queues tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- stars ---------------------------------------------------------------------------

    def star(self, user_id: int, kind: Kind, ids: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO stars (user_id, kind, item_id, starred_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(user_id, kind, i, utcnow()) for i in ids],
            )

    def unstar(self, user_id: int, kind: Kind, ids: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "DELETE FROM stars WHERE user_id = ? AND kind = ? AND item_id = ?",
                [(user_id, kind, i) for i in ids],
            )

    def stars(self, user_id: int, kind: Kind, ids: Sequence[str] | None = None) -> dict[str, str]:
        """When the user starred each item of ``kind`` (all of them, or those of ``ids``)."""
        sql = "SELECT item_id, starred_at FROM stars WHERE user_id = ? AND kind = ?"
        if ids is None:
            return {r[0]: r[1] for r in self.db.query(sql + " ORDER BY starred_at DESC",
                                                      (user_id, kind))}  # fmt: skip
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = self.db.query(f"{sql} AND item_id IN ({marks})", (user_id, kind, *chunk))
            out.update({r[0]: r[1] for r in rows})
        return out

    # -- plays ---------------------------------------------------------------------------

    def played(self, user_id: int, file_ids: Sequence[int], when: Sequence[str]) -> None:
        """Count one play of each track, at the time given for it."""
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO plays (user_id, file_id, count, last_played) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (user_id, file_id) DO UPDATE SET count = count + 1,"
                " last_played = MAX(last_played, excluded.last_played)",
                [(user_id, f, w) for f, w in zip(file_ids, when, strict=True)],
            )

    def plays(self, user_id: int, file_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        """Play count and last play of each of the tracks the user played."""
        out: dict[int, tuple[int, str]] = {}
        for start in range(0, len(file_ids), 500):
            chunk = list(file_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = self.db.query(
                f"SELECT file_id, count, last_played FROM plays"  # noqa: S608
                f" WHERE user_id = ? AND file_id IN ({marks})",
                (user_id, *chunk),
            )
            out.update({int(r[0]): (int(r[1]), r[2]) for r in rows})
        return out

    def recently_played(self, user_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
        """The user's plays, newest first: file id, count, last played."""
        rows = self.db.query(
            "SELECT file_id, count, last_played FROM plays WHERE user_id = ?"
            " ORDER BY last_played DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [dict(r) for r in rows]

    # -- the play queue ------------------------------------------------------------------

    def save_queue(
        self, user_id: int, ids: Sequence[int], current: int | None, position_ms: int, by: str
    ) -> None:
        """Keep the user's queue (an empty one clears it)."""
        with self.db.transaction() as conn:
            if not ids:
                conn.execute("DELETE FROM play_queues WHERE user_id = ?", (user_id,))
                return
            conn.execute(
                "INSERT OR REPLACE INTO play_queues (user_id, track_ids, current, position_ms,"
                " changed_at, changed_by) VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, json.dumps(list(ids)), current, position_ms, utcnow(), by[:100]),
            )

    def queue(self, user_id: int) -> dict[str, Any] | None:
        row = self.db.query_one("SELECT * FROM play_queues WHERE user_id = ?", (user_id,))
        if row is None:
            return None
        return {**dict(row), "track_ids": [int(i) for i in json.loads(row["track_ids"])]}
