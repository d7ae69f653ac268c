"""The one way every request is authorised: a session cookie or a bearer token.

``authenticate(conn, area)`` is the entry point every area calls (``require_scope`` is
its FastAPI dependency). It answers with a ``Caller``: a user with a session, or a
token, with the areas it may use. Without credentials an API call gets 401 in the one
JSON shape; a page (``require_page``) redirects to ``/login?next=...``. A request
authenticated by the cookie that changes state must also pass the CSRF checks of
``core/csrf.py``; a bearer-token request need not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from homekeep.core import csrf
from homekeep.core.accounts import Accounts, Caller, token_caller
from homekeep.core.errors import AuthError, Forbidden
from homekeep.core.tokens import ALL_SCOPES, Token, TokenStore

__all__ = [
    "ALL_SCOPES",
    "Caller",
    "LoginRequired",
    "PageForbidden",
    "Token",
    "TokenStore",
    "authenticate",
    "bearer_token",
    "parse_bearer",
    "require_admin",
    "require_page",
    "require_scope",
    "safe_next",
]

SESSION_COOKIE = "homekeep_session"
MAX_NEXT = 2048


class LoginRequired(AuthError):
    """A page was asked for without a session: the answer is a redirect to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("log in to see this page")
        self.next_url = safe_next(next_url)


class PageForbidden(Forbidden):
    """A logged-in user asked for a page of an area they may not use: a 403 page."""


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site (``/...``), else ``/``: no open redirect."""
    if not target or len(target) > MAX_NEXT or not target.startswith("/"):
        return "/"
    if target.startswith(("//", "/\\")) or any(c in target for c in "\\\r\n\t\x00"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def bearer_token(conn: HTTPConnection) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, or None."""
    return parse_bearer(conn.headers.get("authorization"))


def parse_bearer(header: str | None) -> str | None:
    """Return the token of an ``Authorization`` header value, None without one, or 401."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
    return value.strip()


def client_address(conn: HTTPConnection) -> str:
    """The client's address (a trusted proxy's client, see ``core/proxies.py``)."""
    return conn.client.host if conn.client else "unknown"


async def authenticate(
    conn: HTTPConnection, area: str | None, *, required: bool = True
) -> Caller | None:
    """Who makes this request: 401 without valid credentials, 403 if ``area`` is not theirs.

    ``area`` None accepts any caller. With ``required=False`` a request without
    credentials is let through as anonymous (None). A cookie-authenticated request that
    changes state must carry the session's CSRF token (403 otherwise).
    """
    accounts: Accounts | None = getattr(conn.app.state, "accounts", None)
    secret = bearer_token(conn)
    caller: Caller | None = None
    if secret is not None:
        caller = await _token_caller(conn, accounts, secret)
    elif accounts is not None and (cookie := conn.cookies.get(SESSION_COOKIE)):
        caller = await accounts.db.run(accounts.session_caller, cookie[:100])
        if caller is None and required:
            raise AuthError("your session has ended: log in again")
        if caller is not None and caller.session is not None:
            await csrf.check(conn, caller.session.csrf_token)
    if caller is None:
        if required:
            raise AuthError("missing token: send 'Authorization: Bearer <token>', or log in")
        return None
    if area is not None and not caller.allows(area):
        raise Forbidden(f"{caller.kind} {caller.name!r} has no access to {area}")
    conn.state.caller = caller
    return caller


async def _token_caller(conn: HTTPConnection, accounts: Accounts | None, secret: str) -> Caller:
    if accounts is not None:
        return await accounts.db.run(accounts.token_caller, secret)
    # A server without users (the standalone sync server) knows CLI tokens only.
    store: TokenStore = conn.app.state.tokens
    token = await store.db.run(store.verify, secret)
    if token.user_id is not None:
        raise AuthError("a personal token works on 'homekeep serve' only; use a CLI token here")
    return token_caller(token, None)


def require_scope(area: str) -> Callable[[HTTPConnection], Awaitable[Caller]]:
    """A FastAPI dependency that admits only callers who may use ``area``."""

    async def dependency(conn: HTTPConnection) -> Caller:
        caller = await authenticate(conn, area)
        assert caller is not None
        return caller

    return dependency


def require_page(area: str | None) -> Callable[[HTTPConnection], Awaitable[Caller]]:
    """A dependency for pages: a redirect to the login page without a session, 403 if
    ``area`` is not the user's."""

    async def dependency(conn: HTTPConnection) -> Caller:
        try:
            caller = await authenticate(conn, None, required=False)
        except Forbidden:
            raise
        except AuthError:
            caller = None
        if caller is None:
            query = f"?{conn.url.query}" if conn.url.query else ""
            raise LoginRequired(conn.url.path + query)
        if area is not None and not caller.allows(area):
            raise PageForbidden(f"{caller.name!r} may not use {area}; ask an admin for it")
        return caller

    return dependency


async def require_admin(conn: HTTPConnection) -> Caller:
    """A dependency for the user admin pages: a logged-in admin only (never a token)."""
    caller = await require_page(None)(conn)
    if not caller.admin or caller.kind != "session":
        raise PageForbidden("only an admin may manage users")
    return caller
