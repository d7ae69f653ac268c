"""A room: the clients of one server process, their keep-alive, and the relay between them.

Everything here runs on the server process's one event loop; no state is shared with
another thread. Each connection is an ``asyncio.Protocol`` (callbacks, no coroutine per
line), so relaying costs a parse and one write per receiver.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homekeep.pool.lines import TOO_LONG, LineSplitter, decode, encode
from homekeep.pool.tickets import REFUSED_MESSAGE, TicketChecker, TicketRefused

MAX_STRIKES = 16  # bad lines in a row before a client is cut off
MAX_PENDING = 256  # connections that have not said hello yet
MAX_LOG_LINES = 100  # message lines forwarded to the dispatcher's log per flush
LOG_FLUSH_SECONDS = 0.25
RATE_WINDOW = 5  # seconds of counters the message rates are averaged over

Notify = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RoomSettings:
    """What a server process is started with (sent to it once, pickled)."""

    server_id: str
    instance: str
    key: bytes
    host: str
    ports: tuple[int, int] | None
    max_clients: int
    ping_interval: float
    max_line_bytes: int
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def silence_limit(self) -> float:
        """A client that completes no line for this long is dropped."""
        return 2 * self.ping_interval

    @property
    def max_send_buffer(self) -> int:
        """Bytes waiting for a slow reader before it is cut off."""
        return max(1 << 20, 16 * self.max_line_bytes)


class Connection(asyncio.Protocol):
    """One client's connection: hello first, then messages and pings."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.splitter = LineSplitter(room.settings.max_line_bytes)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.name = ""
        self.address = ""
        self.joined_at = 0.0
        self.last_line = time.monotonic()
        self.strikes = 0
        self.messages_in = 0
        self.messages_out = 0
        self.message_head = b""
        self.out: list[bytes] = []  # lines waiting for the end of the chunk being read
        self.queued = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.room.arrived(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.room.departed(self)

    def data_received(self, data: bytes) -> None:
        self.room.bytes_in += len(data)
        # Lines read together are answered and relayed together: one write per receiver
        # for the whole chunk instead of one per line.
        self.room.batching = True
        try:
            self._lines(data)
        finally:
            self.room.flush()

    def _lines(self, data: bytes) -> None:
        for line in self.splitter.feed(data):
            if self.transport is None or self.transport.is_closing():
                return
            self.last_line = time.monotonic()
            if line is TOO_LONG:
                self.room.dropped += 1
                self.complain("too_long", f"line over {self.splitter.max_bytes} bytes: dropped")
                continue
            assert isinstance(line, bytes)
            message = decode(line)
            if message is None:
                self.room.dropped += 1
                self.complain("bad_line", "not a JSON object with a 'type': dropped")
            elif not self.client:
                self.hello(message)
            else:
                self.handle(message)

    def hello(self, message: dict[str, Any]) -> None:
        if message["type"] != "hello":
            self.close_with("error", code="hello_first", message="send a hello with a ticket")
            return
        try:
            ticket = self.room.checker.check(message.get("ticket"))
        except TicketRefused:
            self.room.refused += 1
            self.close_with("error", code="bad_ticket", message=REFUSED_MESSAGE)
            return
        self.room.join(self, ticket.client, ticket.name, ticket.id)

    def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            text = message.get("text")
            if not isinstance(text, str):
                self.complain("bad_message", "a message needs a 'text' string")
                return
            self.strikes = 0
            self.messages_in += 1
            self.room.relay(self, text)
        elif kind == "ping":
            self.strikes = 0
            self.send(b'{"type":"pong"}\n')
        else:
            self.complain("unknown_type", f"unknown message type: dropped ({kind[:40]!r})")

    def complain(self, code: str, text: str) -> None:
        """Answer a bad line with an error; too many in a row end the connection."""
        self.strikes += 1
        if self.strikes > MAX_STRIKES:
            self.close_with("error", code="too_many_errors", message="too many bad lines")
        else:
            self.send(encode({"type": "error", "code": code, "message": text}))

    def send(self, data: bytes) -> bool:
        """Queue ``data``; a client that does not read is cut off instead of slowing others."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() + self.queued > self.room.settings.max_send_buffer:
            self.out.clear()
            transport.abort()
            return False
        if self.room.batching:
            if not self.out:
                self.room.dirty.append(self)
            self.out.append(data)
            self.queued += len(data)
        else:
            transport.write(data)
        self.room.bytes_out += len(data)
        return True

    def write_out(self) -> None:
        """Write what ``send`` queued while a chunk was being read."""
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.out))
        self.out.clear()
        self.queued = 0

    def close_with(self, kind: str, **fields: Any) -> None:
        """Send a last line and close once it is written."""
        self.send(encode({"type": kind, **fields}))
        self.write_out()
        if self.transport is not None:
            self.transport.close()

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.client,
            "name": self.name,
            "address": self.address,
            "connected_seconds": round(now - self.joined_at, 1),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
        }


class Room:
    """The clients of one server: who is in, what they say, who is silent too long."""

    def __init__(self, settings: RoomSettings, notify: Notify) -> None:
        self.settings = settings
        self.notify = notify
        self.checker = TicketChecker(settings.key, settings.instance)
        self.pending: set[Connection] = set()
        self.members: dict[str, Connection] = {}
        self.started = time.monotonic()
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.refused = 0
        self.dropped = 0
        self.closing = False
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=RATE_WINDOW + 1)
        self._log: list[list[str]] = []
        self._log_dropped = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.batching = False
        self.dirty: list[Connection] = []

    def start(self) -> None:
        """Start the room's clocks: keep-alive sweeps, rates, the message log."""
        self._tasks = [
            asyncio.create_task(self._every(self.settings.ping_interval / 2, self.sweep)),
            asyncio.create_task(self._every(1.0, self._sample)),
            asyncio.create_task(self._every(LOG_FLUSH_SECONDS, self._flush_log)),
        ]

    async def _every(self, seconds: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            action()

    def flush(self) -> None:
        """End a batch: write every connection's queued lines."""
        self.batching = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.write_out()

    def arrived(self, conn: Connection) -> None:
        if self.closing or len(self.pending) >= MAX_PENDING:
            assert conn.transport is not None
            conn.transport.abort()
            return
        self.pending.add(conn)

    def join(self, conn: Connection, client: str, name: str, ticket_id: str) -> None:
        self.pending.discard(conn)
        if len(self.members) >= self.settings.max_clients or client in self.members:
            why = "server full" if client not in self.members else "client already connected"
            conn.close_with("error", code="refused", message=f"{why}; allocate again")
            return
        conn.client, conn.name, conn.joined_at = client, name, time.monotonic()
        head = {"type": "message", "from": client, "name": name, "text": ""}
        conn.message_head = encode(head)[: -len(b'""}\n')]
        conn.strikes = 0
        self.members[client] = conn
        self._empty.clear()
        conn.send(
            encode(
                {
                    "type": "welcome",
                    "client": client,
                    "name": name,
                    "clients": len(self.members),
                    "server": self.settings.server_id,
                    "ping_interval_seconds": self.settings.ping_interval,
                }
            )
        )
        self._broadcast(conn, encode({"type": "joined", "client": client, "name": name}))
        self.notify({"event": "joined", "client": client, "ticket": ticket_id})

    def departed(self, conn: Connection) -> None:
        self.pending.discard(conn)
        if conn.client and self.members.get(conn.client) is conn:
            del self.members[conn.client]
            if not self.closing:
                left = {"type": "left", "client": conn.client, "name": conn.name}
                self._broadcast(conn, encode(left))
            self.notify({"event": "left", "client": conn.client})
            if not self.members:
                self._empty.set()

    def relay(self, sender: Connection, text: str) -> None:
        """Pass a message to every other client, and to the log."""
        self.messages_in += 1
        # The sender's part of the line is encoded once, at join: only the text is per message.
        data = sender.message_head + json.dumps(text).encode("ascii") + b"}\n"
        self.messages_out += self._broadcast(sender, data)
        if len(self._log) < MAX_LOG_LINES:
            self._log.append([sender.client, sender.name, text[:1000]])
        else:
            self._log_dropped += 1

    def _broadcast(self, sender: Connection, data: bytes) -> int:
        sent = 0
        for other in list(self.members.values()):
            if other is not sender and other.send(data):
                other.messages_out += 1
                sent += 1
        return sent

    def sweep(self) -> None:
        """Drop connections that completed no line for two ping intervals."""
        limit = time.monotonic() - self.settings.silence_limit
        for conn in [*self.pending, *self.members.values()]:
            if conn.last_line < limit:
                conn.close_with("error", code="timeout", message="no ping for two intervals")

    def _sample(self) -> None:
        self._samples.append((time.monotonic(), self.messages_in, self.messages_out))

    def rates(self) -> tuple[float, float]:
        """Messages per second in and out, over the last few seconds."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, in0, out0), (t1, in1, out1) = self._samples[0], self._samples[-1]
        span = max(t1 - t0, 1e-9)
        return round((in1 - in0) / span, 1), round((out1 - out0) / span, 1)

    def _flush_log(self) -> None:
        if self._log or self._log_dropped:
            self.notify({"event": "messages", "lines": self._log, "dropped": self._log_dropped})
            self._log, self._log_dropped = [], 0

    def properties(self) -> dict[str, Any]:
        """What the dispatcher asks for: clients, messages, uptime."""
        now = time.monotonic()
        rate_in, rate_out = self.rates()
        return {
            "clients": [conn.describe(now) for conn in self.members.values()],
            "client_count": len(self.members),
            "pending": len(self.pending),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "rate_in": rate_in,
            "rate_out": rate_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "refused": self.refused,
            "dropped_lines": self.dropped,
            "uptime_seconds": round(now - self.started, 1),
        }

    async def drain(self, reason: str, timeout: float) -> None:
        """Tell every client the server is closing, close them, and wait (bounded)."""
        self.closing = True
        for conn in [*self.pending, *self.members.values()]:
            conn.close_with("closing", reason=reason)
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            for conn in list(self.members.values()):
                if conn.transport is not None:
                    conn.transport.abort()
        self._flush_log()
        for task in self._tasks:
            task.cancel()
