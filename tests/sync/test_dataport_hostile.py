"""The data port refuses bad, hostile and broken uploads before or while their body comes,
and places nothing of them."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3

from tests.support import create_token, run_cli
from tests.sync.dataport_helpers import (
    API,
    CLIENT,
    WAIT,
    MiB,
    connect,
    error_message,
    header_line,
    leftovers,
    make_header,
    no_trace,
    random_bytes,
    read_answer,
    refused_before_body,
    send_upload,
    still_serves,
)
from tests.sync.helpers import (
    SyncServer,
    push,
    snapshot,
    wait_until,
)

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
    header = make_header(server, "x", b"evil")
    header.update(over)
    refused_before_body(port, header_line(header), status)
    no_trace(server, "x")
    assert not (server.root / "a").exists()
    still_serves(server, port, "bad-header")


def test_a_header_missing_the_token_or_a_field_is_refused(server: SyncServer, port: int) -> None:
    header = make_header(server, "x", b"evil")
    del header["token"]
    refused_before_body(port, header_line(header), 401)
    header = make_header(server, "x", b"evil")
    del header["hash"]
    refused_before_body(port, header_line(header), 422)
    no_trace(server, "x")
    still_serves(server, port, "missing-field")


def test_revoked_and_unscoped_tokens_are_refused(server: SyncServer, port: int) -> None:
    music = create_token(server.data_dir, "dp-music", "music")
    message = refused_before_body(
        port, header_line(make_header(server, "x", b"x", token=music)), 403
    )
    assert "sync" in message
    gone = create_token(server.data_dir, "dp-gone", "sync")
    assert run_cli("token", "revoke", "dp-gone", data_dir=server.data_dir).returncode == 0
    refused_before_body(port, header_line(make_header(server, "x", b"x", token=gone)), 401)
    no_trace(server, "x")
    still_serves(server, port, "tokens")


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
    refused_before_body(port, line, 422)
    no_trace(server)
    still_serves(server, port, "garbage")


def test_a_header_over_16_kib_is_refused(server: SyncServer, port: int) -> None:
    # exactly one byte over, no newline: the server reads it all, then refuses
    message = refused_before_body(port, b"{" + b" " * 16 * 1024, 422)
    assert "16384" in message
    # a header line that ends, but too long
    long_line = header_line(make_header(server, "x", b"x", token="t" * 20_000))
    with connect(port) as (sock, reader):
        sock.sendall(long_line)
        error_message(read_answer(reader), 422)
    no_trace(server, "x")
    still_serves(server, port, "long-header")


def test_an_endless_header_is_cut_off(server: SyncServer, port: int) -> None:
    block = b"a" * (1 << 16)
    sent = 0
    with connect(port) as (sock, _), contextlib.suppress(OSError):
        for _ in range(1024):  # at most 64 MiB; the server hangs up after 16 KiB
            sock.sendall(block)
            sent += len(block)
    assert sent < 64 * MiB, "the server kept reading a header with no end"
    no_trace(server)
    still_serves(server, port, "endless")


def test_a_body_longer_than_its_size_in_the_first_write_is_refused(
    server: SyncServer, port: int
) -> None:
    data = b"twelve bytes"
    with connect(port) as (sock, reader):
        sock.sendall(header_line(make_header(server, "long.bin", data, size=4)) + data)
        error_message(read_answer(reader), 422)
    no_trace(server, "long.bin")
    still_serves(server, port, "long-body")


def test_a_body_shorter_than_its_size_places_nothing(server: SyncServer, port: int) -> None:
    data = random_bytes(2 * MiB, 9)
    with connect(port) as (sock, reader):
        sock.sendall(header_line(make_header(server, "short.bin", data)))
        assert read_answer(reader) == {"status": "continue"}
        sock.sendall(data[: MiB + 5])
        sock.shutdown(socket.SHUT_WR)  # the rest never comes
        assert "closed" in error_message(read_answer(reader), 422)
    no_trace(server, "short.bin")
    still_serves(server, port, "short-body")


def test_a_connection_dropped_mid_body_places_nothing(server: SyncServer, port: int) -> None:
    data = random_bytes(3 * MiB, 10)
    with connect(port) as (sock, reader):
        sock.sendall(header_line(make_header(server, "dropped.bin", data, size=1 << 40)))
        assert read_answer(reader) == {"status": "continue"}
        sock.sendall(data)
    # the server notices the close on its own: wait (bounded) for its temp file to go
    assert wait_until(lambda: leftovers(server) == [], timeout=WAIT)
    no_trace(server, "dropped.bin")
    still_serves(server, port, "dropped")


def test_a_body_that_does_not_match_its_hash_places_nothing(server: SyncServer, port: int) -> None:
    data = random_bytes(MiB, 11)
    lie = make_header(server, "lie.bin", data, hash=blake3(b"other content").hexdigest())
    message = error_message(send_upload(port, lie, data), 422)
    assert "does not match" in message
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    message = error_message(
        send_upload(port, make_header(server, "lie.bin", data), bytes(flipped)), 422
    )
    assert "does not match" in message
    no_trace(server, "lie.bin")
    still_serves(server, port, "lie")


# -- stored links, idle connections, and a push after all that -----------------------------


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
    error_message(send_upload(port, make_header(server, "door/planted.txt", data), data), 422)
    assert list(victim.iterdir()) == []
    assert (server.root / CLIENT / "door").is_symlink()
    assert leftovers(server) == []
    still_serves(server, port, "symlink")


def test_idle_connections_do_not_block_other_uploads(server: SyncServer, port: int) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connect(port))
        half, _ = stack.enter_context(connect(port))
        half.sendall(b'{"token": "')  # a header that stops halfway
        data = random_bytes(MiB, 12)
        assert (
            send_upload(port, make_header(server, "meanwhile.bin", data), data)["status"] == "done"
        )
        assert (server.root / CLIENT / "meanwhile.bin").read_bytes() == data
    no_trace(server)
    still_serves(server, port, "idle")


def test_the_server_still_pushes_after_the_abuse(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "after.bin").write_bytes(random_bytes(5 * MiB, 13))
    summary = push(src, server, "after-abuse")
    assert summary["files_sent"] == 1
    assert snapshot(server.root / "after-abuse") == snapshot(src)
    assert leftovers(server) == []
