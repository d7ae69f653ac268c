"""Which names a request may give in its Host header, and the middleware that checks it.

A page on another site can make the browser send requests to a server on loopback or the
LAN under a name the attacker controls (DNS rebinding). Refusing Host names the server
was not told about closes that door, and keeps a forged Host out of every link the
server builds.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from homekeep.core.web import error_response

_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def local_addresses() -> set[str]:
    """Every address of this machine's network interfaces."""
    import psutil  # only a server listening on every interface needs it

    return {
        addr.address.split("%", 1)[0]
        for addrs in psutil.net_if_addrs().values()
        for addr in addrs
        if addr.family in (socket.AF_INET, socket.AF_INET6)
    }


def trusted_names(bind_host: str, public_url: str, extra: Iterable[str]) -> frozenset[str]:
    """The Host names a server bound to ``bind_host`` answers (patterns may hold ``*``)."""
    names = {name.lower().strip("[]") for name in extra}
    names.update(_LOOPBACK)
    if public_url:
        host = urlsplit(public_url).hostname
        if host:
            names.add(host.lower())
    machine = socket.gethostname().lower()
    names.update({machine, f"{machine}.local"})
    if _wildcard(bind_host):
        names.update(local_addresses())
    else:
        names.add(bind_host.lower().strip("[]"))
    return frozenset(names)


def host_of(header: str) -> str:
    """The name in a Host header, without the port and the IPv6 brackets, lowercased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        return header.partition(":")[0]
    return header


def is_trusted(host: str, names: frozenset[str]) -> bool:
    """True if ``host`` is one of ``names`` or matches one of its ``*`` patterns."""
    if "*" in names or host in names:
        return True
    return any("*" in pattern and fnmatch.fnmatchcase(host, pattern) for pattern in names)


class TrustedHosts:
    """Answer 400 in the one error shape to a request whose Host is not trusted."""

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = next((v for k, v in scope["headers"] if k == b"host"), None)
            host = host_of(header.decode("latin-1")) if header is not None else None
            if host is not None and not is_trusted(host, self.names):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                shown = host if len(host) <= 100 else host[:100] + "..."
                response = error_response(
                    400,
                    "untrusted_host",
                    f"unknown Host {shown!r}: add it to [server] trusted_hosts",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
