"""API tokens: created by the CLI, stored hashed, scoped per area, checked in constant time.

A token reads ``hk_<id>_<secret>``. The id finds the row; the SHA-256 of the whole token
is compared with ``hmac.compare_digest``. The secret has 256 bits of entropy, so a fast
hash is enough (there is nothing to brute-force as with a password).

A token may also be bound to clients: the names it may act as inside its areas (a sync
client's folder, say), which an area checks with ``Token.acts_for``. A token bound to
none acts only as the client of its own name; ``*`` binds it to any.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import AuthError, Conflict, NotFound, UsageError

ALL_SCOPES = "all"
ANY_CLIENT = "*"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOKEN_RE = re.compile(r"^hk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()

MIGRATIONS = (
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        last_used_at TEXT
    );
    CREATE UNIQUE INDEX tokens_active_name ON tokens(name) WHERE revoked_at IS NULL;
    """,
    # the clients a token may act as (JSON list); [] for the tokens made before: their own name
    "ALTER TABLE tokens ADD COLUMN clients TEXT NOT NULL DEFAULT '[]';",
    # personal tokens: made by a user on their account page, names unique per user
    """
    ALTER TABLE tokens ADD COLUMN user_id INTEGER;
    DROP INDEX tokens_active_name;
    CREATE UNIQUE INDEX tokens_active_name ON tokens(name)
        WHERE revoked_at IS NULL AND user_id IS NULL;
    CREATE UNIQUE INDEX tokens_active_user_name ON tokens(user_id, name)
        WHERE revoked_at IS NULL AND user_id IS NOT NULL;
    """,
)


@dataclass(frozen=True)
class Token:
    """A token's record, never its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None
    last_used_at: str | None
    clients: tuple[str, ...] = ()
    user_id: int | None = None  # a personal token: it acts for this user, within their areas

    def allows(self, area: str) -> bool:
        """Return True if this token may act on ``area``."""
        return ALL_SCOPES in self.scopes or area in self.scopes

    def acts_for(self, client: str) -> bool:
        """Return True if this token may act as ``client``: one it is bound to, any with
        ``*``, and without a binding only the client named like the token itself."""
        if not self.clients:
            return client == self.name
        return ANY_CLIENT in self.clients or client in self.clients


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens table in the core database."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path, area="core", migrations=MIGRATIONS)

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        known_areas: Iterable[str],
        clients: Iterable[str] = (),
        *,
        user_id: int | None = None,
    ) -> str:
        """Create a token (a user's own with ``user_id``) and return its secret, shown once."""
        if not _NAME_RE.match(name):
            raise UsageError(
                f"invalid token name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
            )
        bound = tuple(dict.fromkeys(clients))
        for client in bound:
            if client != ANY_CLIENT and not _NAME_RE.match(client):
                raise UsageError(
                    f"invalid --client {client!r}: use 1-64 letters, digits, '.', '_' or '-' "
                    f"(not starting with '.', '_' or '-'), or '{ANY_CLIENT}' for any client"
                )
        wanted = tuple(dict.fromkeys(scopes))
        if not wanted:
            raise UsageError("give at least one --scope AREA, or --scope all")
        allowed = {*known_areas, ALL_SCOPES}
        for scope in wanted:
            if scope not in allowed:
                raise UsageError(
                    f"unknown scope {scope!r}; choose from: {', '.join(sorted(allowed))}"
                )
        token_id = secrets.token_hex(6)
        token = f"hk_{token_id}_{secrets.token_urlsafe(32)}"
        with self.db.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM tokens WHERE name = ? AND user_id IS ? AND revoked_at IS NULL",
                (name, user_id),
            ).fetchone():
                raise Conflict(f"a token named {name!r} exists; revoke it first or pick a name")
            conn.execute(
                "INSERT INTO tokens (id, name, hash, scopes, created_at, clients, user_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    name,
                    _digest(token),
                    json.dumps(wanted),
                    utcnow(),
                    json.dumps(bound),
                    user_id,
                ),
            )
        return token

    def list(self, *, user_id: int | None = None) -> list[Token]:
        """Return every token, active and revoked, oldest first (one user's with ``user_id``)."""
        if user_id is None:
            rows = self.db.query("SELECT * FROM tokens ORDER BY created_at, name")
        else:
            rows = self.db.query(
                "SELECT * FROM tokens WHERE user_id = ? ORDER BY created_at, name", (user_id,)
            )
        return [self._token(row) for row in rows]

    def revoke(self, name: str) -> None:
        """Revoke the active token called ``name`` (not a user's own: see revoke_id)."""
        cur = self.db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE name = ? AND user_id IS NULL"
            " AND revoked_at IS NULL",
            (utcnow(), name),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no active token named {name!r}; see 'homekeep token list'")

    def revoke_id(self, token_id: str, user_id: int) -> bool:
        """Revoke one of a user's own tokens by id; False if they have no such active token."""
        cur = self.db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            (utcnow(), token_id, user_id),
        )
        return cur.rowcount > 0

    def revoke_user(self, user_id: int) -> int:
        """Revoke every active token of a user (removed); return how many."""
        cur = self.db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            (utcnow(), user_id),
        )
        return cur.rowcount

    def verify(self, token: str) -> Token:
        """Return the token's record if ``token`` is valid and not revoked, else raise 401."""
        match = _TOKEN_RE.match(token)
        row = self.db.query_one("SELECT * FROM tokens WHERE id = ?", (match[1],)) if match else None
        stored = row["hash"] if row is not None else _DUMMY_HASH
        if not hmac.compare_digest(stored, _digest(token)) or row is None:
            raise AuthError("invalid token")
        if row["revoked_at"] is not None:
            raise AuthError("token revoked")
        self.db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (utcnow(), row["id"]))
        return self._token(row)

    @staticmethod
    def _token(row: sqlite3.Row) -> Token:
        return Token(
            id=row["id"],
            name=row["name"],
            scopes=tuple(json.loads(row["scopes"])),
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
            clients=tuple(json.loads(row["clients"])),
            user_id=row["user_id"],
        )

    def close(self) -> None:
        self.db.close()
