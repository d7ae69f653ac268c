"""Subsonic passwords: one per user, encrypted at rest with a key file of the data dir.

The Subsonic token scheme (``t = md5(password + salt)``) needs the server to recover the
password, so it cannot be stored as a one-way hash like the login password. It is kept
apart from the login password and encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under
``subsonic.key``, a file readable by the server's user only. Whoever reads both the key
file and the database learns the Subsonic passwords, never the login passwords.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import ConfigError, InvalidInput

log = logging.getLogger(__name__)

MIN_LENGTH, MAX_LENGTH = 8, 128


def check_password(password: str) -> str:
    """A Subsonic password: 8 to 128 printable characters (apps send it in URLs)."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"a Subsonic password has {MIN_LENGTH} to {MAX_LENGTH} characters")
    if not password.isprintable():
        raise InvalidInput("a Subsonic password holds printable characters only")
    return password


class SubsonicPasswords:
    """Set, recover and remove users' Subsonic passwords."""

    def __init__(self, db: Database, key_file: Path) -> None:
        self.db = db
        self.key_file = key_file

    def _fernet(self, create: bool) -> Fernet | None:
        try:
            key = self.key_file.read_bytes().strip()
        except FileNotFoundError:
            if not create:
                return None
            key = Fernet.generate_key()
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                return self._fernet(create=False)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        try:
            return Fernet(key)
        except ValueError as exc:
            raise ConfigError(
                f"{self.key_file} is not a Subsonic key file; move it away and set the "
                "Subsonic passwords again"
            ) from exc

    def set(self, user_id: int, password: str) -> None:
        fernet = self._fernet(create=True)
        assert fernet is not None
        secret = fernet.encrypt(check_password(password).encode())
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO subsonic_passwords (user_id, secret, set_at)"
                " VALUES (?, ?, ?)",
                (user_id, secret, utcnow()),
            )

    def get(self, user_id: int) -> str | None:
        """The user's Subsonic password, or None (none set, or the key file changed)."""
        row = self.db.query_one(
            "SELECT secret FROM subsonic_passwords WHERE user_id = ?", (user_id,)
        )
        if row is None:
            return None
        fernet = self._fernet(create=False)
        try:
            if fernet is None:
                raise InvalidToken
            return fernet.decrypt(bytes(row[0])).decode()
        except InvalidToken:
            log.error("the Subsonic password of user %d cannot be decrypted with %s; set it again",
                      user_id, self.key_file)  # fmt: skip
            return None

    def remove(self, user_id: int) -> bool:
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM subsonic_passwords WHERE user_id = ?", (user_id,))
        return cur.rowcount > 0
