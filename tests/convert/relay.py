"""A TCP relay on loopback between the client and a server: a slow network that can break.

It passes each connection's upload at a bounded rate (so uploads last long enough to
overlap), counts how many connections stream at once, and resets the first connection
whose upload passes ``cut_at`` bytes, as a network gone away mid-request would (with
``hang``, the server's side of it stays open and silent until ``let_go``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType

CHUNK = 64 << 10
TOGETHER_SECONDS = 0.25  # connections that sent within this long of each other stream at once


class Relay:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:``target``; use it in a ``with`` block."""

    def __init__(
        self, target: int, *, bytes_per_second: float, cut_at: int | None, hang: bool = False
    ) -> None:
        self.target = target
        self.rate = bytes_per_second
        self.cut_at = cut_at
        self.hang = hang  # at the cut the server's side stays open and silent, until let_go
        self.held: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()  # guards everything below
        self.last_sent: dict[int, float] = {}
        self.most_at_once = 0
        self.cut: int | None = None  # the connection that was reset
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Relay:
        self._start(self._accept)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.listener.close()
        with self.lock:
            open_sockets = list(self.sockets)
            threads = list(self.threads)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it; close does not
            sock.close()
        for thread in threads:
            thread.join(timeout=10)

    def let_go(self) -> None:
        """End the requests held open since a cut: the server sees them end."""
        with self.lock:
            held, self.held = self.held, []
        for sock in held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        for number in range(10_000):
            try:
                near, _ = self.listener.accept()
            except OSError:
                return  # the relay is closing
            far = socket.create_connection(("127.0.0.1", self.target), timeout=60)
            with self.lock:
                self.sockets += [near, far]
            self._start(self._up, number, near, far)
            self._start(self._down, far, near)

    def _up(self, number: int, near: socket.socket, far: socket.socket) -> None:
        """Client to server, at the relay's rate; reset mid-body at ``cut_at``."""
        sent = 0
        try:
            while data := near.recv(CHUNK):
                far.sendall(data)
                sent += len(data)
                now = time.monotonic()
                with self.lock:
                    self.last_sent[number] = now
                    together = sum(now - t < TOGETHER_SECONDS for t in self.last_sent.values())
                    self.most_at_once = max(self.most_at_once, together)
                    cut = self.cut is None and self.cut_at is not None and sent >= self.cut_at
                    if cut:
                        self.cut = number
                if cut:
                    # The client sees a reset; the server, a body that ends early. A
                    # shutdown, not only a close: the other thread's recv holds the socket.
                    near.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    near.close()
                    if self.hang:  # a network that drops the line without a word
                        with self.lock:
                            self.held.append(far)
                    else:
                        far.shutdown(socket.SHUT_RDWR)
                    return
                time.sleep(len(data) / self.rate)
            far.shutdown(socket.SHUT_WR)
        except OSError:  # the client went: so does its request, as the kernel would say
            with contextlib.suppress(OSError):
                far.shutdown(socket.SHUT_RDWR)
        finally:
            with self.lock:
                self.last_sent.pop(number, None)

    def _down(self, far: socket.socket, near: socket.socket) -> None:
        """Server to client, as fast as it comes."""
        try:
            while data := far.recv(CHUNK):
                near.sendall(data)
            near.shutdown(socket.SHUT_WR)
        except OSError:
            pass
