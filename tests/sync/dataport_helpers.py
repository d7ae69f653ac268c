"""What the data port tests share: raw uploads over a socket (or TLS), their headers and
answers, and a TCP relay in front of the HTTP port that shows whether a push sent its big
file over HTTP (it counts and reads what goes through) or past it, over the data port.
Every socket wait is bounded by ``WAIT``.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from io import BufferedReader
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3

from tests.support import free_port
from tests.sync.helpers import (
    SyncServer,
)

API = "/api/sync/v1"
MiB = 1 << 20
WAIT = 10.0  # seconds: the bound of every socket read and write in here
MTIME = 1_600_000_000_123_456_789
CLIENT = "raw"  # the client name the raw uploads write under
_REQUEST = re.compile(rb"(GET|PUT|POST|DELETE) (/\S*) HTTP/1\.1\r\n")


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- a relay in front of the HTTP port ---------------------------------------------------


class Relay:
    """A TCP relay on 127.0.0.1 in front of a server's HTTP port.

    It counts the bytes clients send through it and notes their HTTP request lines (when
    not TLS), so a test sees whether a file went over HTTP; with ``swap`` it replaces one
    byte string in the server's answers by another of the same length (Content-Length
    stays right).
    """

    def __init__(self, target: int, swap: tuple[bytes, bytes] | None = None) -> None:
        assert swap is None or len(swap[0]) == len(swap[1])
        self.target = target
        self.swap = swap
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self.sent = 0  # bytes clients sent through the relay
        self.requests: list[tuple[str, str]] = []  # (method, target) of plain HTTP requests
        self.swapped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Relay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        for sock in socks:
            sock.close()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def uploads(self) -> list[str]:
        """The whole-file HTTP uploads (PUT .../files) that went through."""
        with self._lock:
            return [t for m, t in self.requests if m == "PUT" and "/files?" in t]

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        for _ in range(10_000):  # at 0.2 s a turn: far longer than any test here
            if self._stop.is_set():
                return
            try:
                down, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=WAIT)
            except OSError:
                down.close()
                continue
            for sock in (down, up):
                sock.settimeout(60)
            with self._lock:
                self._socks += [down, up]
            self._spawn(self._pump, down, up, True)
            self._spawn(self._pump, up, down, False)

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        held = b""
        try:
            while data := src.recv(1 << 16):
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        self.requests += [
                            (m.decode(), t.decode()) for m, t in _REQUEST.findall(data)
                        ]
                elif self.swap is not None:
                    data, held = self._swap(held + data)
                dst.sendall(data)
            if held:
                dst.sendall(held)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _swap(self, data: bytes) -> tuple[bytes, bytes]:
        """Swap whole occurrences; hold back a tail that may be the start of one."""
        assert self.swap is not None
        old, new = self.swap
        with self._lock:
            self.swapped += data.count(old)
        data = data.replace(old, new)
        for keep in range(min(len(old) - 1, len(data)), 0, -1):
            if data.endswith(old[:keep]):
                return data[:-keep], data[-keep:]
        return data, b""


def through(srv: SyncServer, relay: Relay) -> SyncServer:
    """The same server, reached through ``relay``."""
    scheme = srv.url.split(":", 1)[0]
    return replace(srv, server=replace(srv.server, url=relay.url(scheme)))


def http_port(srv: SyncServer) -> int:
    return int(srv.url.rsplit(":", 1)[1])


# -- raw uploads on the data port --------------------------------------------------------


def hello_of(srv: SyncServer, verify: bool | ssl.SSLContext = True) -> dict[str, Any]:
    response = httpx.get(
        f"{srv.url}{API}/hello",
        headers={"Authorization": f"Bearer {srv.token}"},
        verify=verify,
        timeout=WAIT,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def data_port(srv: SyncServer, verify: bool | ssl.SSLContext = True) -> int:
    port = hello_of(srv, verify)["data_port"]
    assert isinstance(port, int)
    return port


def announced_data_port(srv: SyncServer) -> str:
    """The line the server printed after its URL line (read with a bound)."""
    out: list[str] = []
    stream = srv.server.process.stdout
    assert stream is not None
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(WAIT)
    assert out, "the server printed no line after its URL"
    return out[0].strip()


def make_header(
    srv: SyncServer, path: str, data: bytes, *, client: str = CLIENT, **over: Any
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "token": srv.token,
        "client": client,
        "path": path,
        "size": len(data),
        "mode": 0o640,
        "mtime_ns": MTIME,
        "hash": blake3(data).hexdigest(),
    }
    header.update(over)
    return header


def header_line(header: dict[str, Any]) -> bytes:
    return json.dumps(header).encode() + b"\n"


@contextlib.contextmanager
def connect(
    port: int, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[socket.socket, BufferedReader]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        with sock.makefile("rb") as reader:
            yield sock, reader
    finally:
        sock.close()


def read_answer(reader: BufferedReader) -> dict[str, Any]:
    line = reader.readline(64 * 1024)
    assert line.endswith(b"\n"), f"no answer line from the data port: {line!r}"
    answer = json.loads(line)
    assert isinstance(answer, dict)
    return answer


def error_message(answer: dict[str, Any], status: int) -> str:
    assert set(answer) == {"error"}, answer
    assert set(answer["error"]) == {"status", "message"}, answer
    assert answer["error"]["status"] == status, answer
    return str(answer["error"]["message"])


def send_upload(
    port: int, header: dict[str, Any], body: bytes, tls: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """An upload as the protocol says: header, wait for "continue", body, last answer."""
    with connect(port, tls) as (sock, reader):
        sock.sendall(header_line(header))
        first = read_answer(reader)
        if first != {"status": "continue"}:
            return first
        sock.sendall(body)
        answer = read_answer(reader)
        assert reader.read(1) == b"", "one upload per connection: the server hangs up"
        return answer


def refused_before_body(port: int, line: bytes, status: int) -> str:
    """Send only a header line: the server must refuse it at once and hang up."""
    with connect(port) as (sock, reader):
        sock.sendall(line)
        message = error_message(read_answer(reader), status)
        assert reader.read(1) == b""
        return message


def leftovers(srv: SyncServer) -> list[Path]:
    return list((srv.root / ".homekeep-sync/tmp").iterdir())


def no_trace(srv: SyncServer, *paths: str) -> None:
    """No file placed (inside the client folder or around the target), no temp file left."""
    for path in paths:
        assert not (srv.root / CLIENT / path).exists()
    for stray in ("x", "escape.bin", "abs.bin"):
        assert not (srv.root.parent / stray).exists()
        assert not (srv.root / stray).exists()
    assert leftovers(srv) == []


def still_serves(srv: SyncServer, port: int, name: str) -> None:
    """A normal upload right after works and lands the exact content."""
    data = random_bytes(100_000, zlib.crc32(name.encode()))
    answer = send_upload(port, make_header(srv, f"after/{name}.bin", data), data)
    assert answer == {"status": "done", "via": "upload", "data_bytes": len(data)}
    assert (srv.root / CLIENT / "after" / f"{name}.bin").read_bytes() == data
    assert leftovers(srv) == []


# -- fixtures ------------------------------------------------------------------------------


@contextlib.contextmanager
def uploads_under_way(srv: SyncServer, port: int, count: int) -> Iterator[None]:
    """``count`` authenticated uploads that got "continue" and then send nothing."""
    with contextlib.ExitStack() as stack:
        for i in range(count):
            sock, reader = stack.enter_context(connect(port))
            sock.sendall(header_line(make_header(srv, f"stalled-{i}.bin", b"x" * 1000)))
            assert read_answer(reader) == {"status": "continue"}
        yield


def free_pair() -> int:
    """A port P with P and P + 1 free a moment ago."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    pytest.skip("found no two free ports in a row")
