"""Tickets: what a client shows a server to be let in. Signed, short-lived, single-use.

A ticket reads ``<payload>.<mac>``, both base64url without padding. The payload is JSON:
the ticket's random id, the server instance it is for, the client's id and name, and its
expiry (Unix seconds). The MAC is HMAC-SHA256 over the payload's base64 text under the
server's own key, ``HMAC(pool secret, "pool-server:" + instance)``: a server holds only its
key, so it can neither mint tickets for another server nor accept theirs, and the pool's
secret never leaves the dispatcher.

A server answers every bad ticket the same way (``TicketRefused``, one message): forged,
malformed, expired, replayed, or for another server. The MAC is compared in constant
time, and it is checked before the payload is even decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_TICKET_CHARS = 1024
SECRET_BYTES = 32
REFUSED_MESSAGE = "ticket refused; ask the dispatcher for a new one"
_DUMMY_MAC = b"\0" * 32


class TicketRefused(Exception):
    """A ticket that does not let its bearer in, whatever the reason."""

    def __init__(self) -> None:
        super().__init__(REFUSED_MESSAGE)


@dataclass(frozen=True)
class Ticket:
    """What a valid ticket says."""

    id: str
    server: str
    client: str
    name: str
    expires: float


def load_secret(path: Path) -> bytes:
    """The pool's secret, created on first use: random, readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) != SECRET_BYTES:
            raise ValueError(
                f"{path} is not a pool secret ({len(data)} bytes, expected {SECRET_BYTES}); "
                "delete it and a new one is made (tickets already handed out stop working)"
            ) from None
        return data
    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    return secret


def server_key(secret: bytes, instance: str) -> bytes:
    """The key one server instance checks its tickets with."""
    return hmac.new(secret, b"pool-server:" + instance.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(key: bytes, *, server: str, client: str, name: str, ttl: float) -> tuple[str, Ticket]:
    """A new ticket for ``client`` on ``server``: its text and what it says."""
    ticket = Ticket(
        id=secrets.token_urlsafe(12),
        server=server,
        client=client,
        name=name,
        expires=round(time.time() + ttl, 3),
    )
    payload = json.dumps(
        {"id": ticket.id, "s": ticket.server, "c": client, "n": name, "exp": ticket.expires},
        separators=(",", ":"),
    ).encode()
    text = _b64(payload)
    mac = hmac.new(key, text.encode("ascii"), hashlib.sha256).digest()
    return f"{text}.{_b64(mac)}", ticket


class TicketChecker:
    """A server's door: checks tickets for one instance and remembers the used ones.

    Used ids are kept until their ticket expires, so a replay is refused while the ticket
    would still be valid, and the memory is bounded by the tickets minted in one TTL.
    One checker belongs to one server's event loop.
    """

    def __init__(self, key: bytes, instance: str, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._instance = instance
        self._clock = clock
        self._used: dict[str, float] = {}
        self._prune_at = 64

    def check(self, text: object) -> Ticket:
        """Return the ticket ``text`` stands for and mark it used, or raise TicketRefused."""
        payload, mac = self._split(text)
        expected = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise TicketRefused
        ticket = self._parse(payload)
        now = self._clock()
        self._forget(now)
        if ticket.server != self._instance or ticket.expires <= now or ticket.id in self._used:
            raise TicketRefused
        self._used[ticket.id] = ticket.expires
        return ticket

    def _split(self, text: object) -> tuple[str, bytes]:
        # A malformed ticket still costs one MAC, like a well-formed forged one.
        if not isinstance(text, str) or len(text) > MAX_TICKET_CHARS or not text.isascii():
            return "", _DUMMY_MAC
        payload, dot, mac_text = text.partition(".")
        try:
            mac = _unb64(mac_text) if dot else _DUMMY_MAC
        except (binascii.Error, ValueError):
            mac = _DUMMY_MAC
        return payload, mac

    @staticmethod
    def _parse(payload: str) -> Ticket:
        try:
            data = json.loads(_unb64(payload))
            return Ticket(
                id=str(data["id"]),
                server=str(data["s"]),
                client=str(data["c"]),
                name=str(data["n"]),
                expires=float(data["exp"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise TicketRefused from None

    def _forget(self, now: float) -> None:
        # Pruned when the memory has doubled since the last pass: O(1) per check on average.
        if len(self._used) >= self._prune_at:
            self._used = {tid: exp for tid, exp in self._used.items() if exp > now}
            self._prune_at = max(64, 2 * len(self._used))
