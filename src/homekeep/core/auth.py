"""Token checks for HTTP requests: the bearer header, 401 and 403, a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection

from homekeep.core.errors import AuthError, Forbidden
from homekeep.core.tokens import ALL_SCOPES, Token, TokenStore

__all__ = [
    "ALL_SCOPES",
    "Token",
    "TokenStore",
    "authenticate",
    "bearer_token",
    "parse_bearer",
    "require_scope",
]


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


async def authenticate(
    conn: HTTPConnection, area: str | None, *, required: bool = True
) -> Token | None:
    """Check the request's bearer token for ``area``: 401 if missing or bad, 403 if out of scope.

    ``area`` None accepts a valid token of any scope. With ``required=False`` a request
    without a token is let through as anonymous (None).
    """
    store: TokenStore = conn.app.state.tokens
    token = bearer_token(conn)
    if token is None:
        if required:
            raise AuthError("missing token: send 'Authorization: Bearer <token>'")
        return None
    record = await store.db.run(store.verify, token)
    if area is not None and not record.allows(area):
        raise Forbidden(f"token {record.name!r} has no access to {area}")
    return record


def require_scope(area: str) -> Callable[[HTTPConnection], Awaitable[Token]]:
    """A FastAPI dependency that admits only tokens scoped for ``area``."""

    async def dependency(conn: HTTPConnection) -> Token:
        record = await authenticate(conn, area)
        assert record is not None
        return record

    return dependency
