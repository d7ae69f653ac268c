"""What a hostile sync client tries, on loopback against a real server (issue 19).

zstd bombs, tokens reaching other clients' trees, dedup answers about other clients'
content, idle connections holding the data port, deeply nested JSON, modes that open the
server's folders to everyone, and a folder swapped for a symlink while the server works.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import socket
import ssl
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3

from homekeep.sync.server import tree
from homekeep.sync.server.apply import Upload, apply
from homekeep.sync.server.batch import FileSpec, begin, settle
from homekeep.sync.server.files import commit_file, prepare
from homekeep.sync.server.target import Target
from homekeep.sync.wire.chunklist import ChunkList
from homekeep.sync.wire.pack import encode_record
from tests.support import create_token, run_cli
from tests.sync.helpers import (
    SyncServer,
    api_error,
    push,
    sync_server,
    sync_token,
    tls_sync_server,
)

API = "/api/sync/v1"
MiB = 1 << 20
WAIT = 10.0  # seconds: the bound of every socket wait in here
MTIME = 1_600_000_000_000_000_000


def _http(srv: SyncServer, token: str, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=60, verify=verify)


def _entry(data: bytes) -> str:
    """A one-chunk list, base64, as a file op carries it."""
    return base64.b64encode(struct.pack(">32sI", blake3(data).digest(), len(data))).decode()


def _file_op(path: str, data: bytes, mode: int = 0o644) -> dict[str, Any]:
    return {
        "op": "file",
        "path": path,
        "size": len(data),
        "mode": mode,
        "mtime_ns": MTIME,
        "hash": blake3(data).hexdigest(),
        "chunks": _entry(data),
    }


def _commit(client: httpx.Client, name: str, ops: list[dict[str, Any]], *chunks: bytes) -> Any:
    """Ops with their chunks inline, as one commit request."""
    head = json.dumps({"ops": ops}).encode()
    pack = b"".join(encode_record(blake3(c).hexdigest(), c, compressed=False) for c in chunks)
    body = len(head).to_bytes(4, "big") + head + pack
    return client.post(f"{API}/clients/{name}/commit", content=body)


def _reset_peak(srv: SyncServer) -> None:
    """Start the server's high-water mark of resident memory afresh (Linux clear_refs 5)."""
    Path(f"/proc/{srv.server.process.pid}/clear_refs").write_text("5")


def _peak_rss_kib(srv: SyncServer) -> int:
    """The server process's high-water mark of resident memory."""
    for line in Path(f"/proc/{srv.server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def _leftovers(srv: SyncServer) -> list[Path]:
    return list((srv.root / ".homekeep-sync/tmp").iterdir())


# -- 2. zstd bombs ---------------------------------------------------------------------------

_ZSTD_MAGIC = 0xFD2FB528
_BLOCK = 128 << 10


def _zstd_zeros(size: int, *, declare: int | None = None) -> bytes:
    """A valid zstd frame of ``size`` zero bytes, written by hand: one 4-byte RLE block per
    128 KiB, so 16 KiB of frame is 512 MiB of output. ``declare`` puts a content size in
    the frame header (a decoder that trusts it allocates that much up front)."""
    window = bytes([(17 - 10) << 3])  # a 128 KiB window
    if declare is None:
        header = struct.pack("<IB", _ZSTD_MAGIC, 0x00) + window
    else:  # an 8-byte content size field
        header = struct.pack("<IB", _ZSTD_MAGIC, 0xC0) + window + struct.pack("<Q", declare)
    sizes = [_BLOCK] * (size // _BLOCK) + ([size % _BLOCK] if size % _BLOCK else [])
    blocks = b"".join(
        ((n << 3) | (1 << 1) | (i == len(sizes) - 1)).to_bytes(3, "little") + b"\0"
        for i, n in enumerate(sizes)
    )
    return header + blocks


def test_the_bomb_frames_are_what_they_say() -> None:
    import zstandard

    out = zstandard.ZstdDecompressor().decompressobj().decompress(_zstd_zeros(3 * _BLOCK + 5))
    assert out == bytes(3 * _BLOCK + 5)
    assert len(_zstd_zeros(512 * MiB)) < 17_000


def test_a_zstd_bomb_upload_is_cut_off_at_its_declared_size(server: SyncServer) -> None:
    """512 MiB of zeros in 16 KiB, announced as a 1 MiB file: 413, memory stays put."""
    bomb = _zstd_zeros(512 * MiB)
    _reset_peak(server)
    before = _peak_rss_kib(server)
    with _http(server, server.token) as client:
        response = client.put(
            f"{API}/clients/bomber/files",
            params={
                "path": "bomb.bin",
                "size": MiB,
                "mode": 0o644,
                "mtime_ns": MTIME,
                "hash": blake3(bytes(MiB)).hexdigest(),
            },
            content=bomb,
            headers={"Content-Encoding": "zstd"},
        )
    api_error(response, 413)
    grown = (_peak_rss_kib(server) - before) * 1024
    assert grown < 64 * MiB, f"the server's peak memory grew by {grown >> 20} MiB"
    assert not (server.root / "bomber/bomb.bin").exists()
    assert _leftovers(server) == []


def test_a_zstd_upload_that_wants_a_huge_window_is_refused(server: SyncServer) -> None:
    """A frame may make the decoder keep a window of 128 MiB per upload: refused."""
    data = bytes(300_000)
    frame = bytearray(_zstd_zeros(len(data)))
    frame[5] = (27 - 10) << 3  # the window descriptor: 128 MiB
    with _http(server, server.token) as client:
        response = client.put(
            f"{API}/clients/bomber/files",
            params={
                "path": "window.bin",
                "size": len(data),
                "mode": 0o644,
                "mtime_ns": MTIME,
                "hash": blake3(data).hexdigest(),
            },
            content=bytes(frame),
            headers={"Content-Encoding": "zstd"},
        )
    assert api_error(response, 422) == "invalid_input"
    assert "window" in response.json()["error"]["message"]
    assert not (server.root / "bomber/window.bin").exists()
    assert _leftovers(server) == []


@pytest.mark.parametrize("route", ["chunks", "commit"])
def test_a_chunk_that_declares_a_huge_size_is_refused_before_it_is_inflated(
    server: SyncServer, route: str
) -> None:
    """A chunk record is at most 129 KiB of zstd, but its frame may declare (and hold)
    gigabytes: a decoder that trusts the declared size allocates it all."""
    frame = _zstd_zeros(256 * MiB, declare=256 * MiB)
    record = encode_record(blake3(bytes(_BLOCK)).hexdigest(), frame, compressed=True)
    _reset_peak(server)
    before = _peak_rss_kib(server)
    with _http(server, server.token) as client:
        if route == "chunks":
            response = client.put(f"{API}/clients/bomber/chunks", content=record)
        else:
            head = json.dumps({"ops": []}).encode()
            body = len(head).to_bytes(4, "big") + head + record
            response = client.post(f"{API}/clients/bomber/commit", content=body)
    assert api_error(response, 422) == "invalid_input"
    grown = (_peak_rss_kib(server) - before) * 1024
    assert grown < 64 * MiB, f"the server's peak memory grew by {grown >> 20} MiB"


# -- 4. a token reaches only its own clients ----------------------------------------------


def test_a_token_cannot_touch_another_clients_tree(server: SyncServer) -> None:
    """Bob's token (created as 'homekeep token create bob --scope sync') cannot read,
    change or upload into alice's folder; alice's token can."""
    alice = create_token(server.data_dir, "alice", "sync")
    bob = create_token(server.data_dir, "bob", "sync")
    secret = b"alice's diary"
    with _http(server, alice) as client:
        assert _commit(client, "alice", [_file_op("diary.txt", secret)], secret).status_code == 200
        assert client.get(f"{API}/clients/alice/manifest").status_code == 200
    with _http(server, bob) as client:
        assert client.get(f"{API}/hello").status_code == 200
        refused = [
            client.get(f"{API}/clients/alice/manifest"),
            client.post(f"{API}/clients/alice/ops", json={"ops": []}),
            client.post(
                f"{API}/clients/alice/ops", json={"ops": [{"op": "delete", "path": "diary.txt"}]}
            ),
            client.post(
                f"{API}/clients/alice/ops",
                json={"ops": [{"op": "link", "path": "diary.txt", "target": "/etc/passwd"}]},
            ),
            _commit(client, "alice", [_file_op("planted.txt", b"bob")], b"bob"),
            client.put(f"{API}/clients/alice/chunks", content=b""),
            client.put(f"{API}/clients/alice/lists/{'0' * 64}", params={"size": 1}, content=b""),
            client.put(
                f"{API}/clients/alice/files",
                params={
                    "path": "up.txt",
                    "size": 3,
                    "mode": 0o644,
                    "mtime_ns": 0,
                    "hash": blake3(b"bob").hexdigest(),
                },
                content=b"bob",
            ),
        ]
        for response in refused:
            message = json.loads(response.text)["error"]["message"]
            assert api_error(response, 403) == "forbidden"
            assert "--client alice" in message, message
        # its own folder works
        assert _commit(client, "bob", [_file_op("mine.txt", b"bob")], b"bob").status_code == 200
    assert (server.root / "alice/diary.txt").read_bytes() == secret
    assert sorted(p.name for p in (server.root / "alice").iterdir()) == ["diary.txt"]


def test_a_token_bound_to_clients_reaches_those_and_no_others(server: SyncServer) -> None:
    token = sync_token(server.data_dir, "family-laptop", "mum", "dad")
    with _http(server, token) as client:
        for name in ("mum", "dad"):
            assert client.get(f"{API}/clients/{name}/manifest").status_code == 200
        for name in ("family-laptop", "kid"):
            api_error(client.get(f"{API}/clients/{name}/manifest"), 403)
    listed = run_cli("token", "list", "--json", data_dir=server.data_dir)
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["family-laptop"]["clients"] == ["mum", "dad"]


def test_a_token_for_any_client_is_explicit(server: SyncServer) -> None:
    token = sync_token(server.data_dir, "admin-tool", "*")
    with _http(server, token) as client:
        for name in ("mum", "kid", "anyone"):
            assert client.get(f"{API}/clients/{name}/manifest").status_code == 200


@pytest.mark.parametrize("client", ["", "../x", ".hidden", "a" * 65, "two words"])
def test_bad_client_bindings_are_refused_by_the_cli(server: SyncServer, client: str) -> None:
    args = ["token", "create", "bad-bind", "--scope", "sync", "--client", client]
    result = run_cli(*args, data_dir=server.data_dir)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ")
    assert "--client" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_data_port_checks_the_client_of_the_token(server: SyncServer) -> None:
    carol = create_token(server.data_dir, "carol", "sync")
    port = _data_port(server)
    data = b"into someone else's folder"
    header = _dp_header(carol, "dave", "planted.txt", data)
    answer = _dp_upload(port, header, data)
    assert answer["error"]["status"] == 403, answer
    assert not (server.root / "dave/planted.txt").exists()
    ok = _dp_upload(port, _dp_header(carol, "carol", "own.txt", data), data)
    assert ok["status"] == "done", ok


# -- 4. dedup answers only from content the client may read -------------------------------


def test_dedup_does_not_reveal_or_hand_out_another_clients_content(
    server: SyncServer,
) -> None:
    """Knowing a file's id must not be enough to get a copy of another client's file, nor
    to learn that someone holds it: whole files and chunks alike."""
    erin = create_token(server.data_dir, "erin", "sync")
    mallory = create_token(server.data_dir, "mallory", "sync")
    secret = os.urandom(20_000)
    chunk_secret = os.urandom(30_000)
    with _http(server, erin) as client:
        ops = [_file_op("secret.bin", secret), _file_op("other.bin", chunk_secret)]
        assert _commit(client, "erin", ops, secret, chunk_secret).status_code == 200
    with _http(server, mallory) as client:
        guess = client.post(f"{API}/clients/mallory/ops", json={"ops": [_file_op("g", secret)]})
        assert guess.status_code == 200, guess.text
        assert guess.json()["results"] == [{"status": "missing", "all": True}]
        # a file of two chunks: one erin holds, one new; both must be asked for
        mine = os.urandom(10_000)
        both = chunk_secret + mine
        entries = struct.pack(
            ">32sI32sI",
            blake3(chunk_secret).digest(),
            len(chunk_secret),
            blake3(mine).digest(),
            len(mine),
        )
        op = _file_op("probe.bin", both)
        op["chunks"] = base64.b64encode(entries).decode()
        probe = client.post(f"{API}/clients/mallory/ops", json={"ops": [op]})
        assert probe.status_code == 200, probe.text
        assert probe.json()["results"] == [{"status": "missing", "all": True}]
    assert not (server.root / "mallory/g").exists()
    assert not (server.root / "mallory/probe.bin").exists()


def test_cross_client_dedup_is_a_server_setting(tmp_path: Path) -> None:
    env = {"HOMEKEEP_SYNC_DEDUP_ACROSS_CLIENTS": "true"}
    with sync_server(tmp_path, env=env) as srv:
        shared = os.urandom(20_000)
        with _http(srv, srv.token) as client:
            assert _commit(client, "one", [_file_op("a.bin", shared)], shared).status_code == 200
            again = client.post(f"{API}/clients/two/ops", json={"ops": [_file_op("b", shared)]})
            assert again.json()["results"] == [{"status": "done", "via": "copy"}]
        assert (srv.root / "two/b").read_bytes() == shared


# -- 6. the data port: idle connections ---------------------------------------------------


def _data_port(srv: SyncServer) -> int:
    with _http(srv, srv.token) as client:
        port = client.get(f"{API}/hello").json()["data_port"]
    assert isinstance(port, int)
    return port


def _dp_header(token: str, client: str, path: str, data: bytes) -> dict[str, Any]:
    return {
        "token": token,
        "client": client,
        "path": path,
        "size": len(data),
        "mode": 0o644,
        "mtime_ns": MTIME,
        "hash": blake3(data).hexdigest(),
    }


def _connect_from(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(WAIT)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _readline(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        part = sock.recv(4096)
        if not part:
            break
        data += part
    return data


def _dp_upload(port: int, header: dict[str, Any], data: bytes) -> dict[str, Any]:
    with _connect_from(port) as sock:
        sock.sendall(json.dumps(header).encode() + b"\n")
        first: dict[str, Any] = json.loads(_readline(sock))
        if first != {"status": "continue"}:
            return first
        sock.sendall(data)
        answer: dict[str, Any] = json.loads(_readline(sock))
        return answer


def test_idle_connections_without_a_token_do_not_take_upload_slots(tmp_path: Path) -> None:
    """Eight connections that never send a header, from another address: a real
    client's upload still goes through at once."""
    with sync_server(tmp_path) as srv:
        port = _data_port(srv)
        with contextlib.ExitStack() as stack:
            for _ in range(8):
                stack.enter_context(_connect_from(port, "127.0.0.2"))
            time.sleep(0.3)  # the server has accepted them all
            data = os.urandom(MiB)
            answer = _dp_upload(port, _dp_header(srv.token, "real", "r.bin", data), data)
            assert answer["status"] == "done", answer
        assert (srv.root / "real/r.bin").read_bytes() == data


def test_idle_connections_do_not_take_upload_slots_on_a_tls_port(tmp_path: Path) -> None:
    """The same over TLS: connections that never start the handshake, or stop after it."""
    with tls_sync_server(tmp_path) as found:
        srv = found.server
        context = ssl.create_default_context(cafile=str(found.ca_file))
        with _http(srv, srv.token, context) as client:
            port = client.get(f"{API}/hello").json()["data_port"]
        with contextlib.ExitStack() as stack:
            for i in range(8):
                sock = stack.enter_context(_connect_from(port, "127.0.0.5"))
                if i % 2:  # a handshake, and then no header
                    stack.enter_context(context.wrap_socket(sock, server_hostname="127.0.0.1"))
            time.sleep(0.3)
            data = os.urandom(MiB)
            header = _dp_header(srv.token, "real", "tls.bin", data)
            with (
                _connect_from(port) as plain,
                context.wrap_socket(plain, server_hostname="127.0.0.1") as sock,
            ):
                sock.sendall(json.dumps(header).encode() + b"\n")
                assert json.loads(_readline(sock)) == {"status": "continue"}
                sock.sendall(data)
                assert json.loads(_readline(sock))["status"] == "done"
        assert (srv.root / "real/tls.bin").read_bytes() == data


def test_one_address_cannot_hold_many_unauthenticated_connections(tmp_path: Path) -> None:
    """Past a few connections per address without a header, more are closed at once."""
    with sync_server(tmp_path) as srv:
        port = _data_port(srv)
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(_connect_from(port, "127.0.0.3")) for _ in range(40)]
            start = time.monotonic()
            answers = []
            for sock in socks[-8:]:  # the last ones are over the limit
                answers.append(_readline(sock))
            assert time.monotonic() - start < WAIT / 2
            for line in answers:
                assert json.loads(line)["error"]["status"] == 429, line
            data = os.urandom(100_000)
            answer = _dp_upload(port, _dp_header(srv.token, "real", "r.bin", data), data)
            assert answer["status"] == "done", answer


def test_a_header_that_never_ends_is_cut_off_at_its_deadline(server: SyncServer) -> None:
    """Half a header, then silence: answered and closed after 10 s, not kept for ever."""
    port = _data_port(server)
    with _connect_from(port, "127.0.0.6") as sock:
        sock.settimeout(3 * WAIT)
        start = time.monotonic()
        sock.sendall(b'{"token": "')
        answer = json.loads(_readline(sock))
        waited = time.monotonic() - start
        assert sock.recv(1) == b""  # and hung up
    assert answer["error"]["status"] == 422
    assert "10 s" in answer["error"]["message"]
    assert 9 < waited < 2 * WAIT


# -- 7. deeply nested JSON ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("where", ["top", "inside"])
def test_deeply_nested_ops_get_422(server: SyncServer, depth: int, where: str) -> None:
    nested = b"[" * depth + b"]" * depth
    body = nested if where == "top" else b'{"ops": [' + nested + b"]}"
    with _http(server, server.token) as client:
        response = client.post(f"{API}/clients/nest/ops", content=body)
        assert api_error(response, 422) == "invalid_input"
        body = len(body).to_bytes(4, "big") + body
        response = client.post(f"{API}/clients/nest/commit", content=body)
        assert api_error(response, 422) == "invalid_input"


def test_a_deeply_nested_data_port_header_gets_422(server: SyncServer) -> None:
    port = _data_port(server)
    for line in (b"[" * 10_000 + b"\n", b'{"token": ' + b"[" * 10_000 + b"\n"):
        with _connect_from(port) as sock:
            sock.sendall(line)
            answer = json.loads(_readline(sock))
        assert answer["error"]["status"] == 422, answer


# -- 8. modes --------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_clients_cannot_open_the_servers_folders_to_everyone(server: SyncServer) -> None:
    """Group and other write, sticky, setuid and setgid are cleared on the server; the
    manifest still answers what the client sent, so it does not send it again."""
    secret = b"not for everyone"
    with _http(server, server.token) as client:
        ops = [
            {"op": "mkdir", "path": "open", "mode": 0o7777, "mtime_ns": MTIME},
            _file_op("open/file.txt", secret, mode=0o7777),
        ]
        assert _commit(client, "modes", ops, secret).status_code == 200
        top = client.post(
            f"{API}/clients/modes/ops", json={"ops": [{"op": "top", "mode": 4095, "mtime_ns": 0}]}
        )
        assert top.status_code == 200, top.text
        manifest = client.get(f"{API}/clients/modes/manifest").json()
    assert _mode(server.root / "modes") == 0o755
    assert _mode(server.root / "modes/open") == 0o755
    assert _mode(server.root / "modes/open/file.txt") == 0o755
    entries = {e[0]: e for e in manifest["entries"]}
    assert entries["open"][4] == 0o7777
    assert entries["open/file.txt"][4] == 0o7777
    assert manifest["top"][0] == 4095


def test_a_push_of_an_open_tree_lands_closed_and_sends_nothing_the_second_time(
    server: SyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "shared").mkdir(parents=True)
    (src / "shared/notes.txt").write_text("everyone writes here")
    (src / "shared/notes.txt").chmod(0o666)
    (src / "shared").chmod(0o777)
    first = push(src, server, "open-tree")
    assert not first["errors"]
    assert _mode(server.root / "open-tree/shared") == 0o755
    assert _mode(server.root / "open-tree/shared/notes.txt") == 0o644
    again = push(src, server, "open-tree")
    assert not again["errors"]
    assert (again["files_sent"], again["folders"], again["data_bytes_sent"]) == (0, 0, 0)


def test_group_and_other_write_can_be_kept_by_configuration(tmp_path: Path) -> None:
    env = {"HOMEKEEP_SYNC_KEEP_GROUP_AND_OTHER_WRITE": "true"}
    with sync_server(tmp_path, env=env) as srv, _http(srv, srv.token) as client:
        ops = [{"op": "mkdir", "path": "shared", "mode": 0o7777, "mtime_ns": MTIME}]
        assert client.post(f"{API}/clients/modes/ops", json={"ops": ops}).status_code == 200
        assert _mode(srv.root / "modes/shared") == 0o1777  # setuid and setgid: never


# -- 8. a folder swapped for a symlink while the server works ------------------------------

_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): never a moment without."""
    if _libc.renameat2(-100, bytes(a), -100, bytes(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def test_a_folder_swapped_for_a_link_never_lets_the_server_act_outside(
    server: SyncServer, tmp_path: Path
) -> None:
    """A local user flips a synced folder and a symlink to somewhere else, over and over,
    while a client deletes in that folder: each delete removes inside the tree or is
    refused, never a file outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(400):
        (outside / f"keep{i}").write_text("mine")
    before = sorted(p.name for p in outside.iterdir())
    with _http(server, server.token) as client:
        ok = client.post(
            f"{API}/clients/racer/ops",
            json={"ops": [{"op": "mkdir", "path": "d", "mode": 0o755, "mtime_ns": MTIME}]},
        )
        assert ok.status_code == 200
        folder = server.root / "racer/d"
        link = server.root / "racer/d-link"
        link.symlink_to(outside)
        stop = threading.Event()

        def flip() -> None:
            for _ in range(1_000_000):  # bounded; the main loop stops it long before
                if stop.is_set():
                    return
                _exchange(folder, link)

        flipper = threading.Thread(target=flip, daemon=True)
        flipper.start()
        deadline = time.monotonic() + 15
        try:
            for i in range(400):
                if time.monotonic() > deadline or len(list(outside.iterdir())) < len(before):
                    break
                ops = [{"op": "delete", "path": f"d/keep{i}"}]
                client.post(f"{API}/clients/racer/ops", json={"ops": ops})
        finally:
            stop.set()
            flipper.join(WAIT)
    assert sorted(p.name for p in outside.iterdir()) == before


def _one_chunk_spec(path: str, data: bytes, mode: int = 0o644) -> FileSpec:
    chunks = ChunkList(struct.pack(">32sI", blake3(data).digest(), len(data)))
    return FileSpec(path, len(data), mode, MTIME, blake3(data).hexdigest(), chunks)


def _file_through_a_batch(store: Target, spec: FileSpec, data: bytes) -> dict[str, Any]:
    """What an ops request does with one file op whose chunk came with it."""
    batch = begin(store, "c", {spec.hash: (data, len(data))})
    try:
        prepare(batch, [spec])
        answer = commit_file(batch, spec)
        settle(batch)
    finally:
        batch.close()
    return answer.as_dict()


@pytest.mark.parametrize("op", ["file", "upload", "meta", "mkdir", "link", "rename", "delete"])
def test_a_folder_swapped_for_a_link_between_check_and_use_changes_nothing_outside(
    tmp_path: Path, op: str
) -> None:
    """The server is paused right after it found the folder a path is in and before it
    changes that path (a hook through the store's constructor); a local user swaps the
    folder for a symlink to somewhere else at that moment. The change still lands in
    the real folder, moved aside, and nothing outside is touched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("mine")
    outside_before = _tree_state(outside)
    root = tmp_path / "server"
    root.mkdir()
    armed: list[str] = []
    swapped: list[str] = []

    def swap(rel: str) -> None:
        if armed and not swapped and rel.startswith("d/"):
            (root / "c/d").rename(root / "c/d-real")
            (root / "c/d").symlink_to(outside)
            swapped.append(rel)

    store = Target(root, pause=swap)
    try:
        kept = b"the client's own file"
        tree.mkdir(store, "c", "d", 0o755)
        assert _file_through_a_batch(store, _one_chunk_spec("d/victim.txt", kept), kept)
        armed.append(op)
        data = b"written during the swap"
        if op == "file":
            _file_through_a_batch(store, _one_chunk_spec("d/new.txt", data), data)
        elif op == "upload":
            tmp = store.temp_name()
            tmp.write_bytes(data)
            apply(store, "c", [Upload(_one_chunk_spec("d/new.txt", data), tmp, len(data))])
        elif op == "meta":  # the same content with another mode: a chmod only
            _file_through_a_batch(store, _one_chunk_spec("d/victim.txt", kept, 0o600), kept)
        elif op == "mkdir":
            tree.mkdir(store, "c", "d/new.txt", 0o700)
        elif op == "link":
            tree.symlink(store, "c", "d/new.txt", "anywhere", MTIME)
        elif op == "rename":
            assert tree.rename(store, "c", "d/victim.txt", "d/new.txt")
        else:
            tree.delete(store, "c", "d/victim.txt")
    finally:
        store.close()
    assert swapped, "the hook never ran: the test proves nothing"
    assert _tree_state(outside) == outside_before
    real = root / "c/d-real"
    if op == "delete":
        assert not (real / "victim.txt").exists()
    elif op == "meta":
        assert _mode(real / "victim.txt") == 0o600
    else:
        assert os.path.lexists(real / "new.txt")
    assert (root / "c/d").is_symlink()  # the server left the local user's link alone


def _tree_state(folder: Path) -> list[tuple[str, int, bytes]]:
    return [
        (p.name, p.lstat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(folder.iterdir())
    ]
