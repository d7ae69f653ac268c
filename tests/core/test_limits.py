"""Hostile HTTP clients against real servers: huge and many headers, slow loris, floods, Host.

Every HTTP server homekeep runs goes through ``core.server.serve``; these tests drive
``homekeep serve`` and ``homekeep sync server`` over raw sockets on loopback.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import Server, create_token, running, serve

FAST = {"HOMEKEEP_SERVER_HEADER_TIMEOUT_SECONDS": "1", "HOMEKEEP_SERVER_MAX_CONNECTIONS": "20"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("data")
    with serve(data, env=FAST) as running_server:
        yield running_server


def _connect(server: Server) -> socket.socket:
    return _socket_to(server.url)


def _socket_to(url: str) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _read_response(sock: socket.socket, limit: float = 10) -> tuple[int, dict[str, object]]:
    """Read one response (the server closes after it); return its status and JSON body."""
    sock.settimeout(limit)
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not piece:
            break
        data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = [
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        if length and len(body) >= length[0]:
            break
    head, _, body = data.partition(b"\r\n\r\n")
    assert head, "no response"
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; it may close early, which is the point."""
    view = memoryview(data)
    try:
        while view:
            sent = sock.send(view[:65536])
            view = view[sent:]
    except (BrokenPipeError, ConnectionResetError):
        return


def _healthy(server: Server) -> None:
    assert httpx.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}


def test_a_huge_header_is_refused_with_431_before_it_is_read(server: Server) -> None:
    with closing(_connect(server)) as sock:
        start = time.monotonic()
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (32 << 20))
        status, body = _read_response(sock)
        assert status == 431
        assert body["error"]["code"] == "headers_too_large"  # type: ignore[index]
        assert time.monotonic() - start < 10
    _healthy(server)


def test_a_long_url_is_refused_with_431(server: Server) -> None:
    with closing(_connect(server)) as sock:
        _send_all(sock, b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _ = _read_response(sock)
        assert status == 431
    _healthy(server)


def test_too_many_headers_are_refused_with_431(server: Server) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(100_000))
    with closing(_connect(server)) as sock:
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        status, _ = _read_response(sock)
        assert status == 431
    with closing(_connect(server)) as sock:  # under the byte bound, over the count
        few = b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + few + b"\r\n")
        status, body = _read_response(sock)
        assert status == 431, body
    _healthy(server)


def test_headers_just_under_the_bound_are_served(server: Server) -> None:
    big = "b" * (48 * 1024)
    response = httpx.get(server.url + "/healthz", headers={"X-Big": big}, timeout=10)
    assert response.status_code == 200


def test_slow_loris_connections_are_cut_at_the_header_deadline(server: Server) -> None:
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(_connect(server))) for _ in range(15)]
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(3):  # drip a byte now and then: it must not keep them open
            time.sleep(0.15)
            for sock in socks:
                sock.sendall(b"X")
        _healthy(server)  # the server still answers others meanwhile
        start = time.monotonic()
        for sock in socks:
            status, body = _read_response(sock, limit=5)
            assert status == 408, body
        assert time.monotonic() - start < 5
    _healthy(server)


def test_an_idle_connection_is_closed_after_the_header_deadline(server: Server) -> None:
    with closing(_connect(server)) as sock:
        sock.settimeout(6)
        start = time.monotonic()
        assert sock.recv(100) == b""  # closed without a word
        assert time.monotonic() - start < 6


def test_an_idle_keep_alive_connection_outlives_the_clients_pool(server: Server) -> None:
    """httpx drops an idle connection after 5 s; the server must keep it longer, or a
    request sent just as both give up fails with a read error (a POST is not retried)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with closing(_connect(server)) as sock:
        sock.sendall(request)
        assert _read_response(sock)[0] == 200
        time.sleep(5.5)
        sock.sendall(request)
        assert _read_response(sock) == (200, {"status": "ok"})


def test_an_idle_keep_alive_connection_closes_after_the_configured_time(tmp_path: Path) -> None:
    env = {"HOMEKEEP_SERVER_KEEP_ALIVE_SECONDS": "1"}
    with serve(tmp_path / "data", env=env) as short, closing(_connect(short)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock)[0] == 200
        start = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(100) == b""
        assert 0.5 < time.monotonic() - start < 5


def test_connections_past_the_bound_get_503(server: Server) -> None:
    with ExitStack() as stack:
        idle = []
        for _ in range(19):
            sock = stack.enter_context(closing(_connect(server)))
            idle.append(sock)
        time.sleep(0.2)  # let the server accept them all
        extra = stack.enter_context(closing(_connect(server)))
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        extra2 = stack.enter_context(closing(_connect(server)))
        extra2.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        statuses = {_read_response(extra)[0], _read_response(extra2)[0]}
        assert 503 in statuses
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the idle ones are gone: the server serves again
        if httpx.get(server.url + "/healthz", timeout=5).status_code == 200:
            break
        time.sleep(0.2)
    _healthy(server)


def test_a_body_larger_than_the_header_bound_is_not_cut(server: Server) -> None:
    """The bound is on headers only: a body arriving in the same packets still flows."""
    body = b"x" * (1 << 20)
    head = (
        b"POST /api/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n" % len(body)
    )
    with closing(_connect(server)) as sock:
        _send_all(sock, head + body)
        status, answer = _read_response(sock)
        assert status == 405, answer  # reached the app, which answers in the error shape
        assert answer["error"]["code"] == "method_not_allowed"  # type: ignore[index]


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "[::2]:80"]
)
def test_an_unknown_host_header_is_refused(server: Server, host: str) -> None:
    response = httpx.get(server.url + "/healthz", headers={"Host": host}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "untrusted_host"
    assert "trusted_hosts" in response.json()["error"]["message"]


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:80", "127.0.0.1", "[::1]:8080"])
def test_loopback_host_names_are_trusted(server: Server, host: str) -> None:
    response = httpx.get(server.url + "/healthz", headers={"Host": host}, timeout=5)
    assert response.status_code == 200


def test_configured_trusted_hosts_and_patterns(tmp_path: Path) -> None:
    env = {"HOMEKEEP_SERVER_TRUSTED_HOSTS": '["nas.lan", "*.home.example"]'}
    with serve(tmp_path, env=env) as srv:
        for host, status in [
            ("nas.lan", 200),
            ("music.home.example", 200),
            ("home.example.evil", 400),
            ("evil.example", 400),
        ]:
            got = httpx.get(srv.url + "/healthz", headers={"Host": host}, timeout=5)
            assert got.status_code == status, host


def test_health_tells_the_version_only_to_a_token_holder(tmp_path: Path) -> None:
    token = create_token(tmp_path, "monitor", "images")
    with serve(tmp_path) as srv:
        assert httpx.get(srv.url + "/healthz").json() == {"status": "ok"}
        full = httpx.get(srv.url + "/healthz", headers={"Authorization": f"Bearer {token}"})
        assert full.json()["version"]
        assert "images" in full.json()["areas"]


def test_the_standalone_sync_server_has_the_same_guards(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    args = ["sync", "server", str(tmp_path / "target"), "--port", "0", "--data-port", "-1"]
    with running(args, data_dir=data, env=FAST) as srv:
        with closing(_socket_to(srv.url)) as sock:
            _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * (4 << 20))
            assert _read_response(sock)[0] == 431
        evil = httpx.get(srv.url + "/healthz", headers={"Host": "evil.example"}, timeout=5)
        assert evil.status_code == 400
        assert httpx.get(srv.url + "/healthz").json() == {"status": "ok"}
        docs = httpx.get(srv.url + "/docs", timeout=5)
        assert docs.status_code == 200
        assert "cdn" not in docs.text.lower()
        assert "/docs/assets/swagger-ui-bundle.js" in docs.text
        assert httpx.get(srv.url + "/docs/assets/swagger-ui-bundle.js").status_code == 200
