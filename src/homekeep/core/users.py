"""People who log in: names, argon2id password hashes, a role, and the areas granted.

Two roles: an admin may use every area and manage users; a user only the areas granted.
The tables live in the core database under their own migration list ("accounts"),
beside the tokens; the sessions table (``core/sessions.py``) is created here too, since
a session belongs to a user and goes with them.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from homekeep.core import passwords
from homekeep.core.db import Database, utcnow
from homekeep.core.errors import Conflict, InvalidInput, NotFound

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")

MIGRATIONS = (
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a removed user's id stays dead
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL,
        disabled_at TEXT,
        last_login_at TEXT
    );
    CREATE TABLE user_areas (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        area TEXT NOT NULL,
        PRIMARY KEY (user_id, area)
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        secret_hash TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        address TEXT NOT NULL,
        user_agent TEXT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id, created_at);
    """,
)


@dataclass(frozen=True)
class User:
    """A user's record, never their password hash."""

    id: int
    name: str
    admin: bool
    areas: tuple[str, ...]
    created_at: str
    disabled_at: str | None
    last_login_at: str | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    @property
    def role(self) -> str:
        return "admin" if self.admin else "user"

    def may_use(self, area: str) -> bool:
        """True if this user may use ``area``."""
        return self.admin or area in self.areas

    def to_json(self) -> dict[str, object]:
        """The record as the CLI's ``--json`` and the API show it."""
        return {
            "name": self.name,
            "role": self.role,
            "areas": list(self.areas),
            "enabled": self.enabled,
            "created_at": self.created_at,
            "disabled_at": self.disabled_at,
            "last_login_at": self.last_login_at,
        }


def check_name(name: str) -> str:
    """Return ``name`` if it is an acceptable user name, else raise InvalidInput."""
    if not NAME_RE.match(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise InvalidInput(
            f"invalid user name {shown!r}: use 1-32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_areas(areas: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """Return the areas without repeats, or raise InvalidInput naming an unknown one."""
    wanted = tuple(dict.fromkeys(areas))
    allowed = set(known)
    for area in wanted:
        if area not in allowed:
            shown = area if len(area) <= 40 else area[:40] + "..."
            raise InvalidInput(
                f"unknown area {shown!r}; choose from: {', '.join(sorted(allowed)) or 'none'}"
            )
    return wanted


class UserStore:
    """The users and their areas, in the core database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def count(self) -> int:
        """How many users exist, enabled or not."""
        row = self.db.query_one("SELECT COUNT(*) AS n FROM users")
        return int(row["n"]) if row else 0

    def add(
        self,
        name: str,
        password: str,
        *,
        admin: bool = False,
        areas: Iterable[str] = (),
        known_areas: Iterable[str] = (),
        only_if_first: bool = False,
    ) -> User:
        """Create a user; ``only_if_first`` refuses (409) once any user exists."""
        check_name(name)
        granted = check_areas(areas, known_areas)
        digest = passwords.hash_password(password)  # slow: outside the transaction
        now = utcnow()
        with self.db.transaction() as conn:
            if only_if_first and conn.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                raise Conflict("the first admin exists already; log in instead")
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"a user named {name!r} exists already; pick another name")
            cur = conn.execute(
                "INSERT INTO users (name, password_hash, admin, created_at, password_changed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, digest, int(admin), now, now),
            )
            conn.executemany(
                "INSERT INTO user_areas (user_id, area) VALUES (?, ?)",
                [(cur.lastrowid, area) for area in granted],
            )
        return self.get(name)

    def get(self, name: str) -> User:
        """The user called ``name`` (any case), or 404."""
        row = self.db.query_one("SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no user named {name[:40]!r}; see 'homekeep user list'")
        return self._user(row)

    def by_id(self, user_id: int) -> User | None:
        """The user with this id, or None once removed."""
        row = self.db.query_one("SELECT * FROM users WHERE id = ?", (user_id,))
        return self._user(row) if row is not None else None

    def list(self) -> list[User]:
        """Every user, by name."""
        return [self._user(row) for row in self.db.query("SELECT * FROM users ORDER BY name")]

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; None otherwise, in the same time either way."""
        row = (
            self.db.query_one("SELECT * FROM users WHERE name = ?", (name,))
            if NAME_RE.match(name)
            else None
        )
        ok = passwords.verify(row["password_hash"] if row is not None else None, password)
        return self._user(row) if ok and row is not None else None

    def set_password(self, name: str, password: str) -> User:
        """Give a user a new password."""
        user = self.get(name)
        digest = passwords.hash_password(password)
        self.db.execute(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
            (digest, utcnow(), user.id),
        )
        return user

    def set_access(
        self, name: str, *, admin: bool, areas: Iterable[str], known_areas: Iterable[str]
    ) -> User:
        """Set a user's role and areas; the last enabled admin stays an admin."""
        granted = check_areas(areas, known_areas)
        with self.db.transaction() as conn:
            user = self.get(name)
            if user.admin and not admin:
                self._keep_an_admin(conn, user, "take the admin role from")
            conn.execute("UPDATE users SET admin = ? WHERE id = ?", (int(admin), user.id))
            conn.execute("DELETE FROM user_areas WHERE user_id = ?", (user.id,))
            conn.executemany(
                "INSERT INTO user_areas (user_id, area) VALUES (?, ?)",
                [(user.id, area) for area in granted],
            )
        return self.get(name)

    def disable(self, name: str) -> User:
        """Disable a user: they cannot log in, their sessions end, their tokens stop working."""
        with self.db.transaction() as conn:
            user = self.get(name)
            if user.admin:
                self._keep_an_admin(conn, user, "disable")
            conn.execute(
                "UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?",
                (utcnow(), user.id),
            )
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
        return self.get(name)

    def enable(self, name: str) -> User:
        """Let a disabled user log in again."""
        user = self.get(name)
        self.db.execute("UPDATE users SET disabled_at = NULL WHERE id = ?", (user.id,))
        return self.get(name)

    def remove(self, name: str) -> User:
        """Remove a user with their areas and sessions (their tokens are the caller's part)."""
        with self.db.transaction() as conn:
            user = self.get(name)
            if user.admin:
                self._keep_an_admin(conn, user, "remove")
            conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
        return user

    def touch_login(self, user_id: int) -> None:
        """Record a successful login."""
        self.db.execute("UPDATE users SET last_login_at = ? WHERE id = ?", (utcnow(), user_id))

    @staticmethod
    def _keep_an_admin(conn: sqlite3.Connection, user: User, verb: str) -> None:
        others = conn.execute(
            "SELECT COUNT(*) FROM users WHERE admin = 1 AND disabled_at IS NULL AND id != ?",
            (user.id,),
        ).fetchone()[0]
        if user.enabled and others == 0:
            raise Conflict(
                f"cannot {verb} {user.name!r}: it is the last enabled admin; make another "
                "user an admin first"
            )

    def _user(self, row: sqlite3.Row) -> User:
        areas = self.db.query(
            "SELECT area FROM user_areas WHERE user_id = ? ORDER BY area", (row["id"],)
        )
        return User(
            id=row["id"],
            name=row["name"],
            admin=bool(row["admin"]),
            areas=tuple(r["area"] for r in areas),
            created_at=row["created_at"],
            disabled_at=row["disabled_at"],
            last_login_at=row["last_login_at"],
        )
