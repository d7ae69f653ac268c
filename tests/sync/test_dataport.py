"""The data port: big new files stream over a raw socket (or TLS) instead of HTTP.

Real servers on loopback, raw sockets from the test, and a small TCP relay in front of the
HTTP port that shows whether a push sent its big file over HTTP (it counts and reads what
goes through) or past it, over the data port. Every socket wait is bounded by ``WAIT``.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from io import BufferedReader
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3

from tests.support import create_token, free_port, run_cli
from tests.sync.helpers import (
    SyncServer,
    push,
    snapshot,
    sync_server,
    tls_sync_server,
    wait_until,
)

API = "/api/sync/v1"
MiB = 1 << 20
WAIT = 10.0  # seconds: the bound of every socket read and write in here
MTIME = 1_600_000_000_123_456_789
CLIENT = "raw"  # the client name the raw uploads write under
_REQUEST = re.compile(rb"(GET|PUT|POST|DELETE) (/\S*) HTTP/1\.1\r\n")


def _random(size: int, seed: int) -> bytes:
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


def _through(srv: SyncServer, relay: Relay) -> SyncServer:
    """The same server, reached through ``relay``."""
    scheme = srv.url.split(":", 1)[0]
    return replace(srv, server=replace(srv.server, url=relay.url(scheme)))


def _http_port(srv: SyncServer) -> int:
    return int(srv.url.rsplit(":", 1)[1])


# -- raw uploads on the data port --------------------------------------------------------


def _hello(srv: SyncServer, verify: bool | ssl.SSLContext = True) -> dict[str, Any]:
    response = httpx.get(
        f"{srv.url}{API}/hello",
        headers={"Authorization": f"Bearer {srv.token}"},
        verify=verify,
        timeout=WAIT,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _data_port(srv: SyncServer, verify: bool | ssl.SSLContext = True) -> int:
    port = _hello(srv, verify)["data_port"]
    assert isinstance(port, int)
    return port


def _announced_data_port(srv: SyncServer) -> str:
    """The line the server printed after its URL line (read with a bound)."""
    out: list[str] = []
    stream = srv.server.process.stdout
    assert stream is not None
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(WAIT)
    assert out, "the server printed no line after its URL"
    return out[0].strip()


def _header(
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


def _line(header: dict[str, Any]) -> bytes:
    return json.dumps(header).encode() + b"\n"


@contextlib.contextmanager
def _connect(
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


def _answer(reader: BufferedReader) -> dict[str, Any]:
    line = reader.readline(64 * 1024)
    assert line.endswith(b"\n"), f"no answer line from the data port: {line!r}"
    answer = json.loads(line)
    assert isinstance(answer, dict)
    return answer


def _error(answer: dict[str, Any], status: int) -> str:
    assert set(answer) == {"error"}, answer
    assert set(answer["error"]) == {"status", "message"}, answer
    assert answer["error"]["status"] == status, answer
    return str(answer["error"]["message"])


def _upload(
    port: int, header: dict[str, Any], body: bytes, tls: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """An upload as the protocol says: header, wait for "continue", body, last answer."""
    with _connect(port, tls) as (sock, reader):
        sock.sendall(_line(header))
        first = _answer(reader)
        if first != {"status": "continue"}:
            return first
        sock.sendall(body)
        answer = _answer(reader)
        assert reader.read(1) == b"", "one upload per connection: the server hangs up"
        return answer


def _refused_before_body(port: int, line: bytes, status: int) -> str:
    """Send only a header line: the server must refuse it at once and hang up."""
    with _connect(port) as (sock, reader):
        sock.sendall(line)
        message = _error(_answer(reader), status)
        assert reader.read(1) == b""
        return message


def _leftovers(srv: SyncServer) -> list[Path]:
    return list((srv.root / ".homekeep-sync/tmp").iterdir())


def _no_trace(srv: SyncServer, *paths: str) -> None:
    """No file placed (inside the client folder or around the target), no temp file left."""
    for path in paths:
        assert not (srv.root / CLIENT / path).exists()
    for stray in ("x", "escape.bin", "abs.bin"):
        assert not (srv.root.parent / stray).exists()
        assert not (srv.root / stray).exists()
    assert _leftovers(srv) == []


def _still_serves(srv: SyncServer, port: int, name: str) -> None:
    """A normal upload right after works and lands the exact content."""
    data = _random(100_000, zlib.crc32(name.encode()))
    answer = _upload(port, _header(srv, f"after/{name}.bin", data), data)
    assert answer == {"status": "done", "via": "upload", "data_bytes": len(data)}
    assert (srv.root / CLIENT / "after" / f"{name}.bin").read_bytes() == data
    assert _leftovers(srv) == []


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def port(server: SyncServer) -> int:
    return _data_port(server)


# -- the port and a push through it -----------------------------------------------------


def test_the_server_announces_its_data_port(server: SyncServer, port: int) -> None:
    assert _announced_data_port(server) == f"big files stream on data port {port}"
    assert 0 < port < 65536
    assert port != _http_port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
        pass


def test_a_push_streams_a_big_file_over_the_data_port(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    big = _random(7 * MiB + 12345, 1)
    (src / "sub/video.bin").write_bytes(big)
    (src / "small.txt").write_text("small\n")
    with Relay(_http_port(server)) as relay:
        summary = push(src, _through(server, relay), "pusher")
    assert summary["errors"] == []
    assert summary["files_sent"] == 2
    assert summary["data_bytes_sent"] >= len(big)
    assert snapshot(server.root / "pusher") == snapshot(src)
    # the big file did not cross the HTTP port: no whole-file PUT, and far fewer bytes
    assert relay.requests, "the relay saw the push's HTTP requests"
    assert relay.uploads() == []
    assert relay.sent < MiB
    log = run_cli(
        "sync", "log", server.root, "--client", "pusher", "--json", data_dir=server.data_dir
    )
    assert log.returncode == 0, log.stderr
    events = {e["path"]: e for e in json.loads(log.stdout)}
    assert events["sub/video.bin"]["via"] == "upload"
    assert events["sub/video.bin"]["data_bytes"] == len(big)
    assert _leftovers(server) == []


@pytest.mark.parametrize("size", [0, 1, 8 * 1024, 5 * MiB + 7])
def test_a_raw_upload_lands_the_exact_file(server: SyncServer, port: int, size: int) -> None:
    data = _random(size, size)
    header = _header(server, f"raw/{size}.bin", data, mode=0o751)
    answer = _upload(port, header, data)
    assert answer == {"status": "done", "via": "upload", "data_bytes": size}
    placed = server.root / CLIENT / f"raw/{size}.bin"
    assert placed.read_bytes() == data
    st = placed.stat()
    assert st.st_mtime_ns == MTIME
    assert st.st_mode & 0o7777 == 0o751
    manifest = httpx.get(
        f"{server.url}{API}/clients/{CLIENT}/manifest",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=WAIT,
    ).json()
    entries = {e[0]: e for e in manifest["entries"]}
    assert entries[f"raw/{size}.bin"][1:6] == ["file", size, MTIME, 0o751, blake3(data).hexdigest()]
    assert _leftovers(server) == []


def test_a_raw_upload_replaces_a_file_and_drops_setuid(server: SyncServer, port: int) -> None:
    old, new = b"old content", _random(300_000, 7)
    assert _upload(port, _header(server, "replaced.bin", old), old)["status"] == "done"
    header = _header(server, "replaced.bin", new, mode=0o4755)
    assert _upload(port, header, new)["status"] == "done"
    placed = server.root / CLIENT / "replaced.bin"
    assert placed.read_bytes() == new
    assert placed.stat().st_mode & 0o7777 == 0o755


def test_header_and_body_may_come_in_one_write(server: SyncServer, port: int) -> None:
    data = _random(50_000, 8)
    with _connect(port) as (sock, reader):
        sock.sendall(_line(_header(server, "eager.bin", data)) + data)
        assert _answer(reader) == {"status": "continue"}
        assert _answer(reader)["status"] == "done"
    assert (server.root / CLIENT / "eager.bin").read_bytes() == data


# -- hostile input ---------------------------------------------------------------------------

_BAD_HEADERS: list[tuple[str, dict[str, Any], int]] = [
    ("wrong-token", {"token": "hk_000000000000_" + "A" * 43}, 401),
    ("garbage-token", {"token": "garbage"}, 401),
    ("empty-token", {"token": ""}, 401),
    ("number-token", {"token": 7}, 401),
    ("traversal", {"path": "../x"}, 422),
    ("deep-traversal", {"path": "a/../../escape.bin"}, 422),
    ("absolute", {"path": "/abs.bin"}, 422),
    ("backslash", {"path": "a\\..\\x"}, 422),
    ("nul", {"path": "x\x00.bin"}, 422),
    ("empty-path", {"path": ""}, 422),
    ("dot", {"path": "."}, 422),
    ("long-name", {"path": "x" * 300}, 422),
    ("client-traversal", {"client": ".."}, 422),
    ("client-slash", {"client": "a/b"}, 422),
    ("client-hidden", {"client": ".homekeep-sync"}, 422),
    ("negative-size", {"size": -1}, 422),
    ("huge-size", {"size": (1 << 50) + 1}, 422),
    ("size-not-int", {"size": 1.5}, 422),
    ("negative-mode", {"mode": -1}, 422),
    ("big-mode", {"mode": 0o10000}, 422),
    ("short-hash", {"hash": "ab" * 16}, 422),
    ("hex-less-hash", {"hash": "zz" * 32}, 422),
    ("extra-field", {"extra": 1}, 422),
]


@pytest.mark.parametrize(
    ("over", "status"), [(o, s) for _, o, s in _BAD_HEADERS], ids=[i for i, _, _ in _BAD_HEADERS]
)
def test_bad_headers_are_refused_before_any_body(
    server: SyncServer, port: int, over: dict[str, Any], status: int
) -> None:
    header = _header(server, "x", b"evil")
    header.update(over)
    _refused_before_body(port, _line(header), status)
    _no_trace(server, "x")
    assert not (server.root / "a").exists()
    _still_serves(server, port, "bad-header")


def test_a_header_missing_the_token_or_a_field_is_refused(server: SyncServer, port: int) -> None:
    header = _header(server, "x", b"evil")
    del header["token"]
    _refused_before_body(port, _line(header), 401)
    header = _header(server, "x", b"evil")
    del header["hash"]
    _refused_before_body(port, _line(header), 422)
    _no_trace(server, "x")
    _still_serves(server, port, "missing-field")


def test_revoked_and_unscoped_tokens_are_refused(server: SyncServer, port: int) -> None:
    music = create_token(server.data_dir, "dp-music", "music")
    message = _refused_before_body(port, _line(_header(server, "x", b"x", token=music)), 403)
    assert "sync" in message
    gone = create_token(server.data_dir, "dp-gone", "sync")
    assert run_cli("token", "revoke", "dp-gone", data_dir=server.data_dir).returncode == 0
    _refused_before_body(port, _line(_header(server, "x", b"x", token=gone)), 401)
    _no_trace(server, "x")
    _still_serves(server, port, "tokens")


@pytest.mark.parametrize(
    "line",
    [
        b"not json at all\n",
        b"\xff\xfe\x00\x81garbage\n",
        b"[1, 2, 3]\n",
        b'"just a string"\n',
        b"null\n",
        b"\n",
        b'{"token": \n',
    ],
    ids=["text", "binary", "list", "string", "null", "empty", "cut"],
)
def test_garbage_headers_get_422(server: SyncServer, port: int, line: bytes) -> None:
    _refused_before_body(port, line, 422)
    _no_trace(server)
    _still_serves(server, port, "garbage")


def test_a_header_over_16_kib_is_refused(server: SyncServer, port: int) -> None:
    # exactly one byte over, no newline: the server reads it all, then refuses
    message = _refused_before_body(port, b"{" + b" " * 16 * 1024, 422)
    assert "16384" in message
    # a header line that ends, but too long
    long_line = _line(_header(server, "x", b"x", token="t" * 20_000))
    with _connect(port) as (sock, reader):
        sock.sendall(long_line)
        _error(_answer(reader), 422)
    _no_trace(server, "x")
    _still_serves(server, port, "long-header")


def test_an_endless_header_is_cut_off(server: SyncServer, port: int) -> None:
    block = b"a" * (1 << 16)
    sent = 0
    with _connect(port) as (sock, _), contextlib.suppress(OSError):
        for _ in range(1024):  # at most 64 MiB; the server hangs up after 16 KiB
            sock.sendall(block)
            sent += len(block)
    assert sent < 64 * MiB, "the server kept reading a header with no end"
    _no_trace(server)
    _still_serves(server, port, "endless")


def test_a_body_longer_than_its_size_in_the_first_write_is_refused(
    server: SyncServer, port: int
) -> None:
    data = b"twelve bytes"
    with _connect(port) as (sock, reader):
        sock.sendall(_line(_header(server, "long.bin", data, size=4)) + data)
        _error(_answer(reader), 422)
    _no_trace(server, "long.bin")
    _still_serves(server, port, "long-body")


def test_a_body_shorter_than_its_size_places_nothing(server: SyncServer, port: int) -> None:
    data = _random(2 * MiB, 9)
    with _connect(port) as (sock, reader):
        sock.sendall(_line(_header(server, "short.bin", data)))
        assert _answer(reader) == {"status": "continue"}
        sock.sendall(data[: MiB + 5])
        sock.shutdown(socket.SHUT_WR)  # the rest never comes
        assert "closed" in _error(_answer(reader), 422)
    _no_trace(server, "short.bin")
    _still_serves(server, port, "short-body")


def test_a_connection_dropped_mid_body_places_nothing(server: SyncServer, port: int) -> None:
    data = _random(3 * MiB, 10)
    with _connect(port) as (sock, reader):
        sock.sendall(_line(_header(server, "dropped.bin", data, size=1 << 40)))
        assert _answer(reader) == {"status": "continue"}
        sock.sendall(data)
    # the server notices the close on its own: wait (bounded) for its temp file to go
    assert wait_until(lambda: _leftovers(server) == [], timeout=WAIT)
    _no_trace(server, "dropped.bin")
    _still_serves(server, port, "dropped")


def test_a_body_that_does_not_match_its_hash_places_nothing(server: SyncServer, port: int) -> None:
    data = _random(MiB, 11)
    lie = _header(server, "lie.bin", data, hash=blake3(b"other content").hexdigest())
    message = _error(_upload(port, lie, data), 422)
    assert "does not match" in message
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    message = _error(_upload(port, _header(server, "lie.bin", data), bytes(flipped)), 422)
    assert "does not match" in message
    _no_trace(server, "lie.bin")
    _still_serves(server, port, "lie")


def test_writing_through_a_stored_symlink_is_refused(
    server: SyncServer, port: int, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    response = httpx.post(
        f"{server.url}{API}/clients/{CLIENT}/ops",
        json={"ops": [{"op": "link", "path": "door", "target": str(victim)}]},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=WAIT,
    )
    assert response.status_code == 200, response.text
    data = b"planted"
    _error(_upload(port, _header(server, "door/planted.txt", data), data), 422)
    assert list(victim.iterdir()) == []
    assert (server.root / CLIENT / "door").is_symlink()
    assert _leftovers(server) == []
    _still_serves(server, port, "symlink")


def test_idle_connections_do_not_block_other_uploads(server: SyncServer, port: int) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(_connect(port))
        half, _ = stack.enter_context(_connect(port))
        half.sendall(b'{"token": "')  # a header that stops halfway
        data = _random(MiB, 12)
        assert _upload(port, _header(server, "meanwhile.bin", data), data)["status"] == "done"
        assert (server.root / CLIENT / "meanwhile.bin").read_bytes() == data
    _no_trace(server)
    _still_serves(server, port, "idle")


def test_the_server_still_pushes_after_the_abuse(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "after.bin").write_bytes(_random(5 * MiB, 13))
    summary = push(src, server, "after-abuse")
    assert summary["files_sent"] == 1
    assert snapshot(server.root / "after-abuse") == snapshot(src)
    assert _leftovers(server) == []


# -- a full data port ------------------------------------------------------------------------


@contextlib.contextmanager
def _uploads_under_way(srv: SyncServer, port: int, count: int) -> Iterator[None]:
    """``count`` authenticated uploads that got "continue" and then send nothing."""
    with contextlib.ExitStack() as stack:
        for i in range(count):
            sock, reader = stack.enter_context(_connect(port))
            sock.sendall(_line(_header(srv, f"stalled-{i}.bin", b"x" * 1000)))
            assert _answer(reader) == {"status": "continue"}
        yield


def test_a_full_data_port_answers_busy(tmp_path: Path) -> None:
    with sync_server(tmp_path) as srv:
        port = _data_port(srv)
        data = _random(MiB, 14)
        header = _header(srv, "later.bin", data)
        with _uploads_under_way(srv, port, 8):  # the server's limit of uploads at once
            _error(_upload(port, header, data), 503)
        # the slots come back as the server sees the stalled uploads go
        assert wait_until(lambda: "error" not in _upload(port, header, data), timeout=WAIT)
        assert (srv.root / CLIENT / "later.bin").read_bytes() == data
        assert not list((srv.root / CLIENT).glob("stalled-*"))


# -- choosing the port ---------------------------------------------------------------------


def _free_pair() -> int:
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


def test_the_data_port_defaults_to_the_next_port(tmp_path: Path) -> None:
    http = _free_pair()
    with sync_server(tmp_path, port=http) as srv:
        assert _http_port(srv) == http
        assert _data_port(srv) == http + 1
        assert _announced_data_port(srv) == f"big files stream on data port {http + 1}"


def test_a_taken_default_data_port_gives_way_to_a_free_one(tmp_path: Path) -> None:
    http = _free_pair()
    # someone else holds --port + 1
    with socket.create_server(("127.0.0.1", http + 1)), sync_server(tmp_path, port=http) as srv:
        port = _data_port(srv)
        assert port not in (http, http + 1)
        data = b"moved"
        assert _upload(port, _header(srv, "m.txt", data), data)["status"] == "done"


def test_the_data_port_can_be_chosen(tmp_path: Path) -> None:
    chosen = free_port()
    with sync_server(tmp_path, "--data-port", str(chosen)) as srv:
        assert _data_port(srv) == chosen
        data = b"chosen"
        assert _upload(chosen, _header(srv, "c.txt", data), data)["status"] == "done"


def test_no_data_port_and_big_files_go_over_http(tmp_path: Path) -> None:
    with sync_server(tmp_path, "--data-port", "-1") as srv:
        assert _hello(srv)["data_port"] is None
        src = tmp_path / "src"
        src.mkdir()
        big = _random(6 * MiB, 15)
        (src / "big.bin").write_bytes(big)
        with Relay(_http_port(srv)) as relay:
            summary = push(src, _through(srv, relay), "nodp")
        assert summary["files_sent"] == 1
        assert snapshot(srv.root / "nodp") == snapshot(src)
        assert len(relay.uploads()) == 1
        assert relay.sent >= len(big)


def test_an_unreachable_data_port_falls_back_to_http(server: SyncServer, tmp_path: Path) -> None:
    real = _data_port(server)
    # a port nobody listens on (bound, not listening: connections are refused), of the
    # same number of digits, so the relay can swap it in the hello answer byte for byte
    with contextlib.ExitStack() as stack:
        dead = None
        for _ in range(50):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            if len(str(sock.getsockname()[1])) == len(str(real)):
                dead = int(sock.getsockname()[1])
                break
        if dead is None:
            pytest.skip("found no free port of the data port's length")
        swap = (f'"data_port":{real}'.encode(), f'"data_port":{dead}'.encode())
        src = tmp_path / "src"
        src.mkdir()
        big = _random(6 * MiB, 16)
        (src / "big.bin").write_bytes(big)
        with Relay(_http_port(server), swap=swap) as relay:
            summary = push(src, _through(server, relay), "fallback")
        assert relay.swapped == 1, "the relay showed the client the dead port"
        assert summary["files_sent"] == 1
        assert snapshot(server.root / "fallback") == snapshot(src)
        assert len(relay.uploads()) == 1
        assert relay.sent >= len(big)


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SyncServer, Path, str]]:
    with tls_sync_server(tmp_path_factory.mktemp("dataport-tls")) as found:
        yield found.server, found.ca_file, found.fingerprint


def test_a_push_over_tls_streams_through_the_tls_data_port(
    tls_server: tuple[SyncServer, Path, str], tmp_path: Path
) -> None:
    srv, ca_file, fingerprint = tls_server
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(_random(6 * MiB, 17))
    (src / "note.txt").write_text("tls")
    with Relay(_http_port(srv)) as relay:
        summary = push(src, _through(srv, relay), "tls-ca", "--ca", str(ca_file))
    assert summary["files_sent"] == 2
    assert snapshot(srv.root / "tls-ca") == snapshot(src)
    assert relay.sent < MiB  # the 6 MiB went past the HTTPS port
    # pinned by fingerprint, the data port's certificate is checked the same way
    (src / "pinned.bin").write_bytes(_random(5 * MiB, 18))
    with Relay(_http_port(srv)) as relay:
        summary = push(src, _through(srv, relay), "tls-ca", "--fingerprint", fingerprint)
    assert summary["files_sent"] == 1
    assert snapshot(srv.root / "tls-ca") == snapshot(src)
    assert relay.sent < MiB


def test_the_tls_data_port_takes_raw_uploads_and_refuses_plain_text(
    tls_server: tuple[SyncServer, Path, str],
) -> None:
    srv, ca_file, _ = tls_server
    context = ssl.create_default_context(cafile=str(ca_file))
    port = _data_port(srv, context)
    data = _random(2 * MiB, 19)
    answer = _upload(port, _header(srv, "raw-tls.bin", data), data, tls=context)
    assert answer == {"status": "done", "via": "upload", "data_bytes": len(data)}
    placed = srv.root / CLIENT / "raw-tls.bin"
    assert placed.read_bytes() == data
    assert placed.stat().st_mtime_ns == MTIME
    # a plain-text header is no TLS handshake: dropped, nothing placed
    with _connect(port) as (sock, reader), contextlib.suppress(OSError):
        sock.sendall(_line(_header(srv, "plain.bin", b"plain")))
        sock.sendall(b"plain")
        assert b"continue" not in reader.read(4096)
    assert not (srv.root / CLIENT / "plain.bin").exists()
    # a client that does not trust the certificate gets no further than the handshake
    with pytest.raises(ssl.SSLCertVerificationError), _connect(port, ssl.create_default_context()):
        pass
    wait_until(lambda: list((srv.root / ".homekeep-sync/tmp").iterdir()) == [], WAIT)
    left = list((srv.root / ".homekeep-sync/tmp").iterdir())
    assert left == [], [(p.name, p.stat().st_size) for p in left]


def test_a_push_while_the_data_port_is_full_falls_back_to_http(tmp_path: Path) -> None:
    with sync_server(tmp_path) as srv:
        port = _data_port(srv)
        src = tmp_path / "src"
        src.mkdir()
        (src / "big.bin").write_bytes(_random(5 * MiB, 20))
        with Relay(_http_port(srv)) as relay, _uploads_under_way(srv, port, 8):
            push(src, _through(srv, relay), "busy", data_dir=tmp_path / "client-data")
        assert snapshot(srv.root / "busy") == snapshot(src)
        assert len(relay.uploads()) == 1  # the big file went over HTTP


def test_many_connections_do_not_pile_up_in_the_server(tmp_path: Path) -> None:
    """Each connection used to leave a thread's SQLite connections behind (two fds)."""
    with sync_server(tmp_path) as srv:
        port = _data_port(srv)
        fds = Path(f"/proc/{srv.server.process.pid}/fd")
        wrong = _line(_header(srv, "x", b"", token="hk_000000000000_" + "A" * 43))
        for _ in range(5):  # warm up: the fixed set of worker threads opens its databases
            with _connect(port) as (conn, reader):
                conn.sendall(wrong)
                reader.readline()
        before = len(list(fds.iterdir()))
        for _ in range(200):
            with _connect(port) as (conn, reader):
                conn.sendall(wrong)
                assert b'"status": 401' in reader.readline()
        assert len(list(fds.iterdir())) < before + 20


def test_a_stopping_server_cuts_off_an_upload_that_does_not_finish(tmp_path: Path) -> None:
    """SIGTERM gives uploads in flight 10 s, then closes them: the server exits 0."""
    with sync_server(tmp_path) as srv:
        port = _data_port(srv)
        data = _random(8 * MiB, 30)
        with _connect(port) as (conn, reader):
            conn.sendall(_line(_header(srv, "slow.bin", data)))
            assert json.loads(reader.readline())["status"] == "continue"
            conn.sendall(data[:MiB])  # and then nothing more
            start = time.monotonic()
            assert srv.server.stop(timeout=30) == 0
            assert time.monotonic() - start < 25
    assert not (srv.root / CLIENT / "slow.bin").exists()
