"""Who calls the Subsonic API: ``u`` + ``t`` + ``s`` (salted MD5), ``u`` + ``p`` (plain or
``enc:`` hex) against the user's Subsonic password, or an OpenSubsonic ``apiKey`` (a
personal homekeep token with the music scope).

Every wrong password counts in the login backoff of ``core`` (per name and per address),
so the API is no side door for guessing the web login's neighbours.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math

from homekeep.core.accounts import Accounts
from homekeep.core.errors import HomekeepError, NotFound
from homekeep.core.users import User
from homekeep.music.subsonic.params import Params
from homekeep.music.subsonic.passwords import SubsonicPasswords
from homekeep.music.subsonic.responses import (
    BAD_API_KEY,
    CONFLICTING_AUTH,
    MISSING,
    NOT_AUTHORISED,
    WRONG_CREDENTIALS,
    SubsonicError,
)

log = logging.getLogger(__name__)
_WRONG = "wrong username or password"


def _plain(p: str) -> str:
    """The password of a ``p`` parameter: as it is, or hex-decoded after ``enc:``."""
    if not p.startswith("enc:"):
        return p
    try:
        return bytes.fromhex(p[4:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SubsonicError(WRONG_CREDENTIALS, "p=enc: must be followed by hex") from exc


def _allowed(user: User) -> User:
    if not user.enabled:
        raise SubsonicError(NOT_AUTHORISED, f"the user {user.name!r} is disabled")
    if not user.may_use("music"):
        raise SubsonicError(NOT_AUTHORISED, f"the user {user.name!r} may not use music")
    return user


def _by_api_key(accounts: Accounts, key: str) -> User:
    try:
        caller = accounts.token_caller(key)
    except HomekeepError as exc:
        raise SubsonicError(BAD_API_KEY, f"invalid API key: {exc.message}") from exc
    if caller.user is None:
        raise SubsonicError(
            BAD_API_KEY, "the API key must be a personal token (made on the account page)"
        )
    if not caller.allows("music"):
        raise SubsonicError(NOT_AUTHORISED, "the API key has no music scope")
    return _allowed(caller.user)


def authenticate(
    params: Params, accounts: Accounts, passwords: SubsonicPasswords, address: str
) -> User:
    """The user making the call, or a Subsonic error (10, 40, 43, 44, 50)."""
    key, name = params.get("apiKey"), params.get("u")
    p, t = params.get("p"), params.get("t")
    if key is not None:
        if name is not None or p is not None or t is not None:
            raise SubsonicError(CONFLICTING_AUTH, "send apiKey alone, without u, p or t")
        return _by_api_key(accounts, key)
    if not name:
        raise SubsonicError(MISSING, "required parameter 'u' is missing")
    if p is not None and t is not None:
        raise SubsonicError(CONFLICTING_AUTH, "send either p or t and s, not both")
    if p is None and t is None:
        raise SubsonicError(MISSING, "send p, or t and s, or apiKey")
    salt = params.get("s")
    if t is not None and not salt:
        raise SubsonicError(MISSING, "required parameter 's' (the salt) is missing")
    wait = accounts.throttle.wait(name, address)
    if wait > 0:
        accounts.throttle.failed(name, address)
        raise SubsonicError(
            WRONG_CREDENTIALS, f"too many failed logins; try again in {math.ceil(wait)} s"
        )
    try:
        user: User | None = accounts.users.get(name)
    except NotFound:
        user = None
    secret = passwords.get(user.id) if user is not None else None
    known = secret or "\x00no password\x00"  # the same work for an unknown name
    if p is not None:
        good = hmac.compare_digest(_plain(p).encode(), known.encode())
    else:
        assert t is not None
        assert salt is not None
        expected = hashlib.md5((known + salt).encode(), usedforsecurity=False).hexdigest()
        good = hmac.compare_digest(t.lower().encode(), expected.encode())
    if user is None or secret is None or not good:
        count = accounts.throttle.failed(name, address)
        log.warning("failed Subsonic login as %r from %s (%d in a row)", name[:64], address, count)
        raise SubsonicError(WRONG_CREDENTIALS, _WRONG)
    accounts.throttle.succeeded(name)
    return _allowed(user)
