"""Who may use the backup daemon: the handshake checks, and the one check every request passes.

Loopback is no boundary: any page the user opens can connect to ``ws://localhost:1800``.
So a browser page from another origin is refused at the handshake, a token never rides
in the URL (URLs end up in logs), and every request needs a token with the ``backup``
scope, sent in the ``Authorization`` header or, by a browser that cannot set headers,
as the first message ``{"request": "Auth", "Token": "hk_..."}``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from homekeep.core.auth import parse_bearer
from homekeep.core.errors import AuthError, Forbidden
from homekeep.core.origin import origin_allowed
from homekeep.core.tokens import Token, TokenStore

AREA = "backup"
HOW_TO = (
    "send 'Authorization: Bearer <token>' in the handshake, or the first message "
    '{"request": "Auth", "Token": "<token>"}; create a token with '
    "'homekeep token create NAME --scope backup'"
)
URL_TOKEN_NAMES = {"token", "access_token", "auth", "authorization"}


@dataclass(frozen=True)
class Credentials:
    """What a client presented: a token today; a session once accounts exist."""

    token: str | None


class Gate:
    """The daemon's door: handshake checks, and ``authorize`` for every request."""

    def __init__(self, tokens: TokenStore, origins: Collection[str]) -> None:
        self.tokens = tokens
        self.origins = set(origins)

    def authorize(self, credentials: Credentials) -> Token:
        """The one check: a valid, unrevoked token with the backup scope (blocking: SQLite).

        Raises AuthError (no or bad token) or Forbidden (a token of another area).
        """
        if not credentials.token:
            raise AuthError(f"missing token: {HOW_TO}")
        record = self.tokens.verify(credentials.token)
        if not record.allows(AREA):
            raise Forbidden(f"token {record.name!r} has no access to backup")
        return record

    def refusal(self, conn: ServerConnection, request: Request) -> Response | None:
        """A response refusing the handshake for its URL or Origin, or None to go on."""
        query = urlsplit(request.path).query
        if any(key.lower() in URL_TOKEN_NAMES for key, _ in parse_qsl(query)):
            return conn.respond(
                400,
                f"a token in the URL is refused (URLs end up in logs and histories); {HOW_TO}\n",
            )
        origins = request.headers.get_all("Origin")
        if len(origins) > 1 or not origin_allowed(origins[0] if origins else None, self.origins):
            return conn.respond(
                403,
                f"origin {', '.join(origins)} may not use the backup daemon; a page of "
                "your own is let in when listed in [backup] daemon_origins\n",
            )
        return None

    def header_credentials(self, request: Request) -> Credentials | None:
        """The credentials of the handshake's Authorization header, or None without one."""
        token = parse_bearer(request.headers.get("Authorization"))
        return None if token is None else Credentials(token)
