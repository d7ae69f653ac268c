"""Binding a server's port: at random in the configured range, retried when taken."""

from __future__ import annotations

import errno
import random
import socket

BIND_ATTEMPTS = 32
BACKLOG = 1024


class BindError(Exception):
    """No port could be bound; the message says what to change."""


def bind_listener(
    host: str,
    ports: tuple[int, int] | None,
    *,
    attempts: int = BIND_ATTEMPTS,
    rng: random.Random | None = None,
) -> socket.socket:
    """A listening socket on ``host``: a random port of ``ports``, or any free one.

    The port is taken by binding it, never by probing first: a port another process
    holds fails the bind with "address in use" and the next candidate is tried, up to
    ``attempts`` of them.
    """
    pick = rng or random.SystemRandom()
    if ports is None:
        candidates = [0] * attempts
    else:
        low, high = ports
        candidates = pick.sample(range(low, high + 1), min(attempts, high - low + 1))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Lets a restarted server take a port whose old connections sit in TIME_WAIT;
            # on Linux it never lets two listeners share a port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        return sock
    where = "any port" if ports is None else f"port_range {ports[0]}-{ports[1]}"
    raise BindError(
        f"no free port on {host} in {where} after {len(candidates)} tries; "
        "widen [pool] port_range or free some ports"
    )
