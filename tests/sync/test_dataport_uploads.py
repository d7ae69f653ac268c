"""The data port: big new files stream over a raw socket instead of HTTP; a push uses it,
and raw uploads land the exact file (real servers on loopback, raw sockets from the test)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
from blake3 import blake3

from tests.support import run_cli
from tests.sync.dataport_helpers import (
    API,
    CLIENT,
    MTIME,
    WAIT,
    MiB,
    Relay,
    announced_data_port,
    connect,
    header_line,
    http_port,
    leftovers,
    make_header,
    random_bytes,
    read_answer,
    send_upload,
    through,
)
from tests.sync.helpers import (
    SyncServer,
    push,
    snapshot,
)

# -- the port and a push through it -----------------------------------------------------


def test_the_server_announces_its_data_port(server: SyncServer, port: int) -> None:
    assert announced_data_port(server) == f"big files stream on data port {port}"
    assert 0 < port < 65536
    assert port != http_port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
        pass


def test_a_push_streams_a_big_file_over_the_data_port(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    big = random_bytes(7 * MiB + 12345, 1)
    (src / "sub/video.bin").write_bytes(big)
    (src / "small.txt").write_text("small\n")
    with Relay(http_port(server)) as relay:
        summary = push(src, through(server, relay), "pusher")
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
    assert leftovers(server) == []


@pytest.mark.parametrize("size", [0, 1, 8 * 1024, 5 * MiB + 7])
def test_a_raw_upload_lands_the_exact_file(server: SyncServer, port: int, size: int) -> None:
    data = random_bytes(size, size)
    header = make_header(server, f"raw/{size}.bin", data, mode=0o751)
    answer = send_upload(port, header, data)
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
    assert leftovers(server) == []


def test_a_raw_upload_replaces_a_file_and_drops_setuid(server: SyncServer, port: int) -> None:
    old, new = b"old content", random_bytes(300_000, 7)
    assert send_upload(port, make_header(server, "replaced.bin", old), old)["status"] == "done"
    header = make_header(server, "replaced.bin", new, mode=0o4755)
    assert send_upload(port, header, new)["status"] == "done"
    placed = server.root / CLIENT / "replaced.bin"
    assert placed.read_bytes() == new
    assert placed.stat().st_mode & 0o7777 == 0o755


def test_header_and_body_may_come_in_one_write(server: SyncServer, port: int) -> None:
    data = random_bytes(50_000, 8)
    with connect(port) as (sock, reader):
        sock.sendall(header_line(make_header(server, "eager.bin", data)) + data)
        assert read_answer(reader) == {"status": "continue"}
        assert read_answer(reader)["status"] == "done"
    assert (server.root / CLIENT / "eager.bin").read_bytes() == data
