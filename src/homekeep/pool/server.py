"""A server process: binds its port, runs a room, and answers the dispatcher's channel.

The dispatcher starts ``run`` in a child process (multiprocessing, forkserver context)
and talks to it over one end of a socket pair, in JSON lines:

    dispatcher -> server   {"op": "ping"}  {"op": "properties", "id": N}
                           {"op": "drain", "reason": ...}
    server -> dispatcher   {"event": "ready", "port", "pid"}  {"event": "failed", "error"}
                           {"event": "pong"}  {"event": "properties", "id", "properties"}
                           {"event": "joined", "client", "ticket"}  {"event": "left", "client"}
                           {"event": "messages", "lines", "dropped"}

A server never outlives its dispatcher: the kernel kills it when its parent goes
(PR_SET_PDEATHSIG), and it exits by itself when the channel reaches end of file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import sys
from typing import Any

from homekeep.pool.lines import encode
from homekeep.pool.ports import BindError, bind_listener
from homekeep.pool.room import Connection, Room, RoomSettings

CHANNEL_LIMIT = 1 << 20
DRAIN_SECONDS = 3.0
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _release_forkserver() -> None:
    """Close this child's copy of the forkserver's liveness pipe.

    multiprocessing hands each forkserver child that pipe's write end, and the
    forkserver exits only once every copy is closed. Holding it would keep the
    forkserver (our parent) alive after the dispatcher is killed, and with it our
    parent-death signal from ever firing.
    """
    from multiprocessing import forkserver

    server: Any = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None


def run(settings: RoomSettings, channel: socket.socket) -> None:
    """The process's entry point (a multiprocessing target)."""
    parent = os.getppid()
    die_with_parent()
    # Released after the death signal is armed: until then our copy keeps the parent up.
    _release_forkserver()
    if os.getppid() != parent:
        os._exit(1)  # the parent went before the signal was armed
    # Ctrl-C on a terminal, `systemctl stop` and `timeout` signal the whole process group:
    # stopping is the dispatcher's, which drains its servers over their channels (and a
    # dispatcher that dies takes them along by the death signal).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = asyncio.run(_serve(settings, channel))
    sys.exit(code)


class _Link:
    """The server's end of the channel (writes only; reads happen in ``_serve``)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def send(self, event: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(event))


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server side of TLS, or None without a certificate."""
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def _serve(settings: RoomSettings, channel: socket.socket) -> int:
    reader, writer = await asyncio.open_connection(sock=channel, limit=CHANNEL_LIMIT)
    link = _Link(writer)
    try:
        context = tls_context(settings.tls_cert, settings.tls_key)
        listener = bind_listener(settings.host, settings.ports)
    except (BindError, OSError, ssl.SSLError) as exc:
        link.send({"event": "failed", "error": str(exc)})
        await writer.drain()
        return 1
    room = Room(settings, link.send)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(room),
        sock=listener,
        ssl=context,
        ssl_handshake_timeout=min(max(settings.silence_limit, 1.0), 60.0) if context else None,
    )
    room.start()
    link.send({"event": "ready", "port": listener.getsockname()[1], "pid": os.getpid()})
    try:
        while line := await reader.readline():
            request = json.loads(line)
            op = request.get("op")
            if op == "ping":
                link.send({"event": "pong"})
            elif op == "properties":
                link.send(
                    {"event": "properties", "id": request.get("id"), "properties": _props(room)}
                )
            elif op == "drain":
                server.close()
                await room.drain(str(request.get("reason", "server stopping")), DRAIN_SECONDS)
                link.send({"event": "drained"})
                await writer.drain()
                return 0
        return 0  # end of file: the dispatcher is gone
    finally:
        server.close()


def _props(room: Room) -> dict[str, Any]:
    import psutil  # preloaded by the forkserver, so this costs nothing per server

    props = room.properties()
    props["memory_rss_bytes"] = psutil.Process().memory_info().rss
    return props
