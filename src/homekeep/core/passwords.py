"""Passwords: checked for length, hashed with argon2id, verified in constant time.

argon2-cffi loads on first use, so commands that never touch a password start without it.
Each hash takes 64 MiB and ~50 ms of one core; at most two run at once, so a flood of
logins queues instead of exhausting memory.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING

from homekeep.core.errors import InvalidInput

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a bound keeps a hostile form cheap
_HASHING = threading.BoundedSemaphore(2)  # guards the costly part; shared by every thread


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the RFC 9106 low-memory parameters


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist: the same work, the same time."""
    with _HASHING:
        return _hasher().hash("not anybody's password")


def check_text(password: str) -> str:
    """Return ``password`` if it is an acceptable new password, else raise InvalidInput."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"the password is too short: use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"the password is too long: use at most {MAX_LENGTH} characters")
    if "\x00" in password:
        raise InvalidInput("the password holds a NUL character; type it without one")
    return password


def hash_password(password: str) -> str:
    """Return the argon2id hash of an acceptable password."""
    check_text(password)
    with _HASHING:
        return _hasher().hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; None (no such user) costs the same and fails."""
    from argon2.exceptions import InvalidHashError, VerificationError

    # A guess no password can equal still costs one hash of a bounded text: same time.
    possible = stored is not None and len(password) <= MAX_LENGTH
    target = stored if stored is not None and possible else _dummy_hash()
    with _HASHING:
        ok: bool
        try:
            ok = _hasher().verify(target, password[:MAX_LENGTH])
        except (VerificationError, InvalidHashError):
            ok = False
    return ok and possible
