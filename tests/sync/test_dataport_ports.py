"""The data port's place: which port it takes, what happens when it is full, unreachable,
off or behind TLS, and how a stopping server ends its uploads."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port
from tests.sync.dataport_helpers import (
    CLIENT,
    MTIME,
    WAIT,
    MiB,
    Relay,
    announced_data_port,
    connect,
    data_port,
    error_message,
    free_pair,
    header_line,
    hello_of,
    http_port,
    make_header,
    random_bytes,
    send_upload,
    through,
    uploads_under_way,
)
from tests.sync.helpers import (
    SyncServer,
    push,
    snapshot,
    sync_server,
    tls_sync_server,
    wait_until,
)


def test_a_full_data_port_answers_busy(tmp_path: Path) -> None:
    with sync_server(tmp_path) as srv:
        port = data_port(srv)
        data = random_bytes(MiB, 14)
        header = make_header(srv, "later.bin", data)
        with uploads_under_way(srv, port, 8):  # the server's limit of uploads at once
            error_message(send_upload(port, header, data), 503)
        # the slots come back as the server sees the stalled uploads go
        assert wait_until(lambda: "error" not in send_upload(port, header, data), timeout=WAIT)
        assert (srv.root / CLIENT / "later.bin").read_bytes() == data
        assert not list((srv.root / CLIENT).glob("stalled-*"))


# -- choosing the port ---------------------------------------------------------------------


def test_the_data_port_defaults_to_the_next_port(tmp_path: Path) -> None:
    http = free_pair()
    with sync_server(tmp_path, port=http) as srv:
        assert http_port(srv) == http
        assert data_port(srv) == http + 1
        assert announced_data_port(srv) == f"big files stream on data port {http + 1}"


def test_a_taken_default_data_port_gives_way_to_a_free_one(tmp_path: Path) -> None:
    http = free_pair()
    # someone else holds --port + 1
    with socket.create_server(("127.0.0.1", http + 1)), sync_server(tmp_path, port=http) as srv:
        port = data_port(srv)
        assert port not in (http, http + 1)
        data = b"moved"
        assert send_upload(port, make_header(srv, "m.txt", data), data)["status"] == "done"


def test_the_data_port_can_be_chosen(tmp_path: Path) -> None:
    chosen = free_port()
    with sync_server(tmp_path, "--data-port", str(chosen)) as srv:
        assert data_port(srv) == chosen
        data = b"chosen"
        assert send_upload(chosen, make_header(srv, "c.txt", data), data)["status"] == "done"


def test_no_data_port_and_big_files_go_over_http(tmp_path: Path) -> None:
    with sync_server(tmp_path, "--data-port", "-1") as srv:
        assert hello_of(srv)["data_port"] is None
        src = tmp_path / "src"
        src.mkdir()
        big = random_bytes(6 * MiB, 15)
        (src / "big.bin").write_bytes(big)
        with Relay(http_port(srv)) as relay:
            summary = push(src, through(srv, relay), "nodp")
        assert summary["files_sent"] == 1
        assert snapshot(srv.root / "nodp") == snapshot(src)
        assert len(relay.uploads()) == 1
        assert relay.sent >= len(big)


def test_an_unreachable_data_port_falls_back_to_http(server: SyncServer, tmp_path: Path) -> None:
    real = data_port(server)
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
        big = random_bytes(6 * MiB, 16)
        (src / "big.bin").write_bytes(big)
        with Relay(http_port(server), swap=swap) as relay:
            summary = push(src, through(server, relay), "fallback")
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
    (src / "big.bin").write_bytes(random_bytes(6 * MiB, 17))
    (src / "note.txt").write_text("tls")
    with Relay(http_port(srv)) as relay:
        summary = push(src, through(srv, relay), "tls-ca", "--ca", str(ca_file))
    assert summary["files_sent"] == 2
    assert snapshot(srv.root / "tls-ca") == snapshot(src)
    assert relay.sent < MiB  # the 6 MiB went past the HTTPS port
    # pinned by fingerprint, the data port's certificate is checked the same way
    (src / "pinned.bin").write_bytes(random_bytes(5 * MiB, 18))
    with Relay(http_port(srv)) as relay:
        summary = push(src, through(srv, relay), "tls-ca", "--fingerprint", fingerprint)
    assert summary["files_sent"] == 1
    assert snapshot(srv.root / "tls-ca") == snapshot(src)
    assert relay.sent < MiB


def test_the_tls_data_port_takes_raw_uploads_and_refuses_plain_text(
    tls_server: tuple[SyncServer, Path, str],
) -> None:
    srv, ca_file, _ = tls_server
    context = ssl.create_default_context(cafile=str(ca_file))
    port = data_port(srv, context)
    data = random_bytes(2 * MiB, 19)
    answer = send_upload(port, make_header(srv, "raw-tls.bin", data), data, tls=context)
    assert answer == {"status": "done", "via": "upload", "data_bytes": len(data)}
    placed = srv.root / CLIENT / "raw-tls.bin"
    assert placed.read_bytes() == data
    assert placed.stat().st_mtime_ns == MTIME
    # a plain-text header is no TLS handshake: dropped, nothing placed
    with connect(port) as (sock, reader), contextlib.suppress(OSError):
        sock.sendall(header_line(make_header(srv, "plain.bin", b"plain")))
        sock.sendall(b"plain")
        assert b"continue" not in reader.read(4096)
    assert not (srv.root / CLIENT / "plain.bin").exists()
    # a client that does not trust the certificate gets no further than the handshake
    with pytest.raises(ssl.SSLCertVerificationError), connect(port, ssl.create_default_context()):
        pass
    wait_until(lambda: list((srv.root / ".homekeep-sync/tmp").iterdir()) == [], WAIT)
    left = list((srv.root / ".homekeep-sync/tmp").iterdir())
    assert left == [], [(p.name, p.stat().st_size) for p in left]


def test_a_push_while_the_data_port_is_full_falls_back_to_http(tmp_path: Path) -> None:
    with sync_server(tmp_path) as srv:
        port = data_port(srv)
        src = tmp_path / "src"
        src.mkdir()
        (src / "big.bin").write_bytes(random_bytes(5 * MiB, 20))
        with Relay(http_port(srv)) as relay, uploads_under_way(srv, port, 8):
            push(src, through(srv, relay), "busy", data_dir=tmp_path / "client-data")
        assert snapshot(srv.root / "busy") == snapshot(src)
        assert len(relay.uploads()) == 1  # the big file went over HTTP


def test_many_connections_do_not_pile_up_in_the_server(tmp_path: Path) -> None:
    """Each connection used to leave a thread's SQLite connections behind (two fds)."""
    with sync_server(tmp_path) as srv:
        port = data_port(srv)
        fds = Path(f"/proc/{srv.server.process.pid}/fd")
        wrong = header_line(make_header(srv, "x", b"", token="hk_000000000000_" + "A" * 43))
        for _ in range(5):  # warm up: the fixed set of worker threads opens its databases
            with connect(port) as (conn, reader):
                conn.sendall(wrong)
                reader.readline()
        before = len(list(fds.iterdir()))
        for _ in range(200):
            with connect(port) as (conn, reader):
                conn.sendall(wrong)
                assert b'"status": 401' in reader.readline()
        assert len(list(fds.iterdir())) < before + 20


def test_a_stopping_server_cuts_off_an_upload_that_does_not_finish(tmp_path: Path) -> None:
    """SIGTERM gives uploads in flight 10 s, then closes them: the server exits 0."""
    with sync_server(tmp_path) as srv:
        port = data_port(srv)
        data = random_bytes(8 * MiB, 30)
        with connect(port) as (conn, reader):
            conn.sendall(header_line(make_header(srv, "slow.bin", data)))
            assert json.loads(reader.readline())["status"] == "continue"
            conn.sendall(data[:MiB])  # and then nothing more
            start = time.monotonic()
            assert srv.server.stop(timeout=30) == 0
            assert time.monotonic() - start < 25
    assert not (srv.root / CLIENT / "slow.bin").exists()
