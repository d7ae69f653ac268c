"""The client's real address and scheme behind reverse proxies, believed only from those trusted.

A request's peer is whoever opened the TCP connection. Behind nginx or Caddy that is
the proxy, which says who its client was in ``Forwarded`` or ``X-Forwarded-For``. Anyone
can write those headers, so they count only when the peer is one of
``[web] trusted_proxies``: then the list is read from the right, hop by hop, while the
hop is itself a trusted proxy; the first untrusted address is the client. Everything
downstream (``request.client``, the first-run check, login backoff, the images rate
limit) sees that address. uvicorn's own proxy handling is off (``core/server.py``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FOR_RE = re.compile(r'for="?\[?([^\]";,]+)', re.IGNORECASE)
_PROTO_RE = re.compile(r'proto="?(https?)"?', re.IGNORECASE)
MAX_HOPS = 32  # entries read from a forwarded header; a longer list is cut, not parsed whole
MAX_HEADER = 4096


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Parse the configured proxies (checked already by the config section)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address in ``text`` (an IPv4-mapped IPv6 address as its IPv4), or None."""
    text = text.strip()
    if text.count(":") == 1:  # an IPv4 address with its port
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def is_loopback(text: str) -> bool:
    """True if ``text`` is a loopback address (127.0.0.0/8, ::1)."""
    found = address(text)
    return found is not None and found.is_loopback


def _trusted(text: str, proxies: Sequence[Network]) -> bool:
    found = address(text)
    return found is not None and any(found in net for net in proxies)


Headers = Sequence[tuple[bytes, bytes]]


def _joined(headers: Headers, name: bytes) -> str | None:
    """Every value of a header, in order, joined by commas (as repeated headers mean)."""
    values = [v.decode("latin-1") for k, v in headers if k == name]
    return ",".join(values)[-MAX_HEADER:] if values else None


def _hops(headers: Headers) -> tuple[list[str], str | None]:
    """The forwarded-for addresses (nearest last) and the protocol the proxy saw."""
    text = _joined(headers, b"forwarded")
    if text is not None:
        elements = text.split(",")[-MAX_HOPS:]
        hops = [m[1] for e in elements if (m := _FOR_RE.search(e))]
        protos = [m[1].lower() for e in elements if (m := _PROTO_RE.search(e))]
        return hops, protos[-1] if protos else None
    xff = _joined(headers, b"x-forwarded-for")
    hops = [h.strip() for h in xff.split(",")[-MAX_HOPS:]] if xff is not None else []
    proto = _joined(headers, b"x-forwarded-proto")
    scheme = proto.split(",")[-1].strip().lower() if proto else None
    return hops, scheme if scheme in ("http", "https") else None


def client_of(peer: str, headers: Headers, proxies: Sequence[Network]) -> str:
    """The client's address: the peer, or from a trusted peer the first untrusted hop."""
    if not _trusted(peer, proxies):
        return peer
    client = peer
    for hop in reversed(_hops(headers)[0]):
        found = address(hop)
        if found is None:
            break  # an obfuscated or broken entry: the last address we could read stands
        client = str(found)
        if not any(found in net for net in proxies):
            break
    return client


class ForwardedClients:
    """Rewrite ``scope["client"]`` and the scheme from forwarded headers of trusted proxies."""

    def __init__(self, app: ASGIApp, proxies: Sequence[Network]) -> None:
        self.app = app
        self.proxies = tuple(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.proxies and scope.get("client"):
            peer = scope["client"][0]
            if _trusted(peer, self.proxies):
                headers = scope["headers"]
                scope = dict(scope)
                scope["client"] = (client_of(peer, headers, self.proxies), 0)
                proto = _hops(headers)[1]
                if proto is not None:
                    secure = proto == "https"
                    if scope["type"] == "websocket":
                        scope["scheme"] = "wss" if secure else "ws"
                    else:
                        scope["scheme"] = proto
        await self.app(scope, receive, send)
