"""Login sessions: a random secret in a cookie, only its SHA-256 kept, expiring two ways.

The cookie holds 256 random bits; the database holds their SHA-256, so a copy of the
database lets no one log in. A session ends after ``idle`` without a request, and after
``lifetime`` from its login however busy. Each session has its own CSRF token, which the
pages put in their forms and fetch calls (``core/auth.py`` checks it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from homekeep.core.db import Database

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
TOUCH_EVERY = timedelta(seconds=60)  # last_seen is written at most this often: no write per hit
MAX_PER_USER = 50  # older sessions of a user past this are dropped at each login


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A session's record, never its secret."""

    id: int
    user_id: int
    csrf_token: str
    created_at: str
    last_seen_at: str
    expires_at: str
    address: str
    user_agent: str


class SessionStore:
    """The sessions table of the core database."""

    def __init__(self, db: Database, *, idle: timedelta, lifetime: timedelta) -> None:
        self.db = db
        self.idle = idle
        self.lifetime = lifetime

    def create(self, user_id: int, address: str, user_agent: str) -> tuple[str, Session]:
        """Start a session for a user; return the cookie's secret and the record."""
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.db.transaction() as conn:
            self._purge(conn, now)
            cur = conn.execute(
                "INSERT INTO sessions (secret_hash, user_id, csrf_token, created_at,"
                " last_seen_at, expires_at, address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _digest(secret),
                    user_id,
                    secrets.token_urlsafe(32),
                    _stamp(now),
                    _stamp(now),
                    _stamp(now + self.lifetime),
                    address[:64],
                    user_agent[:200],
                ),
            )
            conn.execute(
                "DELETE FROM sessions WHERE user_id = ? AND id NOT IN"
                " (SELECT id FROM sessions WHERE user_id = ? ORDER BY id DESC LIMIT ?)",
                (user_id, user_id, MAX_PER_USER),
            )
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (cur.lastrowid,)).fetchone()
        return secret, _session(row)

    def find(self, secret: str) -> Session | None:
        """The live session whose cookie holds ``secret``, or None; an expired one is deleted."""
        if not _SECRET_RE.match(secret):
            return None
        row = self.db.query_one("SELECT * FROM sessions WHERE secret_hash = ?", (_digest(secret),))
        if row is None:
            return None
        now = datetime.now(UTC)
        last_seen = datetime.fromisoformat(row["last_seen_at"])
        if now >= datetime.fromisoformat(row["expires_at"]) or now - last_seen >= self.idle:
            self.db.execute("DELETE FROM sessions WHERE id = ?", (row["id"],))
            return None
        if now - last_seen >= TOUCH_EVERY:
            self.db.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE id = ?", (_stamp(now), row["id"])
            )
        return _session(row)

    def list(self, user_id: int) -> list[Session]:
        """A user's live sessions, newest first."""
        with self.db.transaction() as conn:
            self._purge(conn, datetime.now(UTC))
        rows = self.db.query(
            "SELECT * FROM sessions WHERE user_id = ? ORDER BY id DESC", (user_id,)
        )
        return [_session(row) for row in rows]

    def revoke(self, user_id: int, session_id: int) -> bool:
        """End one of a user's sessions; False if they have none with that id."""
        cur = self.db.execute(
            "DELETE FROM sessions WHERE id = ? AND user_id = ?", (session_id, user_id)
        )
        return cur.rowcount > 0

    def revoke_all(self, user_id: int, *, keep: int | None = None) -> int:
        """End every session of a user but ``keep``; return how many ended."""
        cur = self.db.execute(
            "DELETE FROM sessions WHERE user_id = ? AND id != ?", (user_id, keep or -1)
        )
        return cur.rowcount

    def _purge(self, conn: sqlite3.Connection, now: datetime) -> None:
        conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
            (_stamp(now), _stamp(now - self.idle)),
        )


def _session(row: sqlite3.Row) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        csrf_token=row["csrf_token"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        address=row["address"],
        user_agent=row["user_agent"],
    )
