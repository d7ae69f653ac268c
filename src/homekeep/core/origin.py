"""Browser Origin checks: loopback is no boundary, so a page from elsewhere is refused.

Any web page the user opens can connect to a server on localhost (a WebSocket has no
same-origin rule), and the browser then says where the page came from in ``Origin``.
A server lets in its own origins and the ones its config lists; a client that is not a
browser sends no Origin and must authenticate like any other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case with a default port dropped, or None when
    ``origin`` is not an http(s) origin (``null``, ``file://``, a path, a user part)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    shown = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


def own_origins(host: str, port: int, *, schemes: Iterable[str] = ("http", "https")) -> set[str]:
    """The origins of a server listening on ``host``:``port``; every loopback name when
    ``host`` is one of them (a page may be opened as localhost or as 127.0.0.1)."""
    names = LOOPBACK_NAMES if host.lower() in LOOPBACK_NAMES else (host,)
    out = set()
    for scheme in schemes:
        for name in names:
            shown = f"[{name}]" if ":" in name else name
            if (found := normalize(f"{scheme}://{shown}:{port}")) is not None:
                out.add(found)
    return out


def origin_allowed(origin: str | None, allowed: Collection[str]) -> bool:
    """True for no Origin (not a browser) or an origin in ``allowed`` (normalized forms)."""
    if origin is None:
        return True
    found = normalize(origin)
    return found is not None and found in allowed
