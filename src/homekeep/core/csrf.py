"""Cross-site request forgery: what a state-changing request from a page must show.

A browser sends the session cookie with every request to this server, also one another
site's page makes it send. SameSite=Lax stops most of those, but not a page on the same
site (another port of the same machine, a sibling host of the LAN domain). So every
state-changing request authenticated by the cookie must pass two checks:

1. Where it comes from: ``Sec-Fetch-Site`` must not be ``cross-site`` nor ``same-site``,
   and ``Origin``, when sent, must be this server's own origin (the scheme and Host of
   the request, or ``[server] public_url``). Browsers send these and pages cannot forge
   them.
2. A secret only our pages know: the session's CSRF token, in the ``X-CSRF-Token``
   header (fetch calls) or the ``csrf_token`` field of an url-encoded form.

A WebSocket handshake (a GET the browser makes with the cookie and no custom header)
must show its own Origin. Bearer-token requests need neither check: no browser adds
that header by itself. The login and set-up forms, before any session, use the same
checks with a token from a short-lived cookie (a double-submit cookie).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request

from homekeep.core.errors import Forbidden

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
FORM_COOKIE = "homekeep_form"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 64 * 1024  # a form bigger than this is not one of ours: no token is read
_FORM_TYPE = "application/x-www-form-urlencoded"


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def own_origins(conn: HTTPConnection) -> set[str]:
    """The origins this server answers as: the request's own, and the public URL's."""
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    found = set()
    host = conn.headers.get("host")
    if host:
        found.add(f"{scheme}://{host.lower()}")
    settings = getattr(conn.app.state, "settings", None)
    public = settings.server.public_url if settings is not None else ""
    if public:
        parts = urlsplit(public)
        found.add(f"{parts.scheme}://{parts.netloc}".lower())
    return found


def check_origin(conn: HTTPConnection, *, require: bool = False) -> None:
    """403 unless the request comes from one of this server's own pages (see above)."""
    site = conn.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        raise Forbidden("cross-site request refused: use this server's own pages")
    origin = conn.headers.get("origin")
    if origin is None:
        if require:
            raise Forbidden("request without an Origin refused")
        return
    if origin.lower() not in own_origins(conn):
        raise Forbidden(f"request from another origin ({origin[:100]}) refused")


async def supplied_token(conn: HTTPConnection) -> str | None:
    """The CSRF token the request carries: its header, or the field of a small url-encoded form."""
    header = conn.headers.get(CSRF_HEADER)
    if header:
        return header
    if not isinstance(conn, Request):
        return None
    if conn.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM_TYPE:
        return None
    try:
        length = int(conn.headers.get("content-length", ""))
    except ValueError:
        return None
    if length > MAX_FORM_BYTES:
        return None
    form = await conn.form(max_fields=64)  # cached: the route reads the same form again
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def check(conn: HTTPConnection, expected: str) -> None:
    """Both checks for a request authenticated by a cookie whose CSRF token is ``expected``."""
    if conn.scope["type"] == "websocket":
        check_origin(conn, require=True)
        return
    if conn.scope.get("method", "GET") in SAFE_METHODS:
        return
    check_origin(conn)
    supplied = await supplied_token(conn)
    if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
