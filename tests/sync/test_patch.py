"""A changed file sent compressed against its previous version (issue 11's upgrade bytes).

The client keeps a bounded zstd copy of what it last synced; the server inflates a chunk
against a base only when that base is a file it may draw on for the sender (its own, or any
client's with ``dedup_across_clients``) and still holds that content, and bounds what it
inflates like any other chunk.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import struct
import sysconfig
from pathlib import Path
from typing import Any

import httpx
import zstandard
from blake3 import blake3

from homekeep.sync.client.engine import client_index_path
from homekeep.sync.wire.compression import patcher
from homekeep.sync.wire.pack import encode_record
from tests.support import create_token, run_cli
from tests.sync.helpers import SyncServer, api_error, sync_server

API = "/api/sync/v1"
MTIME = 1_600_000_000_000_000_000
# a real module nobody here wrote: about 100 KiB of Python, well over one chunk
REAL = Path(sysconfig.get_path("stdlib")) / "argparse.py"


def _old_and_new() -> tuple[bytes, bytes]:
    """A small real file and the same with one line edited in its middle."""
    old = REAL.read_bytes()[:20_000]  # one chunk (the average is 64 KiB)
    middle = old.index(b"\n", len(old) // 2) + 1
    return old, old[:middle] + b"# edited here\n" + old[middle:]


def _op(path: str, data: bytes) -> dict[str, Any]:
    entry = struct.pack(">32sI", blake3(data).digest(), len(data))
    return {
        "op": "file",
        "path": path,
        "size": len(data),
        "mode": 0o644,
        "mtime_ns": MTIME,
        "hash": blake3(data).hexdigest(),
        "chunks": base64.b64encode(entry).decode(),
    }


def _commit(srv: SyncServer, token: str, name: str, path: str, data: bytes, record: bytes) -> Any:
    head = json.dumps({"ops": [_op(path, data)]}).encode()
    body = len(head).to_bytes(4, "big") + head + record
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as client:
        return client.post(f"{API}/clients/{name}/commit", content=body, timeout=60)


def _plain(data: bytes) -> bytes:
    return encode_record(blake3(data).hexdigest(), data, compressed=False)


def _patched(new: bytes, old: bytes) -> bytes:
    """``new`` as one record compressed against ``old``, as the client sends it."""
    frame = patcher(old).compress(new)
    return encode_record(
        blake3(new).hexdigest(), frame, compressed=True, base=blake3(old).hexdigest()
    )


def test_a_chunk_against_the_clients_own_file_is_taken(server: SyncServer) -> None:
    old, new = _old_and_new()
    token = create_token(server.data_dir, "carol", "sync")
    assert _commit(server, token, "carol", "a.py", old, _plain(old)).status_code == 200
    record = _patched(new, old)
    assert len(record) < 200  # a one-line edit costs about the line, not the file
    answer = _commit(server, token, "carol", "b.py", new, record).json()
    assert answer["results"][0]["status"] == "done"
    assert (server.root / "carol/b.py").read_bytes() == new


def test_a_chunk_against_another_clients_file_is_left_out(server: SyncServer) -> None:
    """Whether it inflates to its id would tell bob what alice's file holds."""
    old, new = _old_and_new()
    alice = create_token(server.data_dir, "alice", "sync")
    bob = create_token(server.data_dir, "bob", "sync")
    assert _commit(server, alice, "alice", "secret.py", old, _plain(old)).status_code == 200
    answer = _commit(server, bob, "bob", "guess.py", new, _patched(new, old)).json()
    assert answer["results"][0]["status"] == "missing"
    assert not (server.root / "bob/guess.py").exists()


def test_with_dedup_across_clients_another_clients_file_is_a_base(tmp_path: Path) -> None:
    old, new = _old_and_new()
    with sync_server(tmp_path, env={"HOMEKEEP_SYNC_DEDUP_ACROSS_CLIENTS": "true"}) as srv:
        alice = create_token(srv.data_dir, "alice", "sync")
        bob = create_token(srv.data_dir, "bob", "sync")
        assert _commit(srv, alice, "alice", "shared.py", old, _plain(old)).status_code == 200
        answer = _commit(srv, bob, "bob", "mine.py", new, _patched(new, old)).json()
        assert answer["results"][0]["status"] == "done"
        assert (srv.root / "bob/mine.py").read_bytes() == new


def test_a_base_changed_on_the_server_is_not_used(server: SyncServer) -> None:
    """The base is read back and checked against its id: a file edited on the server
    behind the index (same size) is no base, and the file is asked for plainly."""
    old, new = _old_and_new()
    token = create_token(server.data_dir, "dave", "sync")
    assert _commit(server, token, "dave", "a.py", old, _plain(old)).status_code == 200
    (server.root / "dave/a.py").write_bytes(old.replace(b"import", b"IMPORT", 1))
    answer = _commit(server, token, "dave", "b.py", new, _patched(new, old)).json()
    assert answer["results"][0]["status"] == "missing"
    assert _commit(server, token, "dave", "b.py", new, _plain(new)).status_code == 200
    assert (server.root / "dave/b.py").read_bytes() == new


def test_a_chunk_against_a_base_that_declares_gigabytes_is_refused(server: SyncServer) -> None:
    """The frame's declared size is checked before anything is allocated for it."""
    old, _ = _old_and_new()
    token = create_token(server.data_dir, "erin", "sync")
    assert _commit(server, token, "erin", "a.py", old, _plain(old)).status_code == 200
    window = bytes([(17 - 10) << 3])
    header = struct.pack("<IB", 0xFD2FB528, 0xC0) + window + struct.pack("<Q", 1 << 32)
    frame = header + ((1 << 3) | (1 << 1) | 1).to_bytes(3, "little") + b"\0"  # one RLE byte
    fake = b"x" * 1000
    record = encode_record(
        blake3(fake).hexdigest(), frame, compressed=True, base=blake3(old).hexdigest()
    )
    response = _commit(server, token, "erin", "bomb.py", fake, record)
    assert api_error(response, 422) == "invalid_input"
    assert "declares" in response.json()["error"]["message"]
    assert not (server.root / "erin/bomb.py").exists()


def _edit_and_push(
    tmp_path: Path, srv: SyncServer, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], Path]:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REAL, src / "argparse.py")
    data = tmp_path / "client-data"

    def sync() -> dict[str, Any]:
        args = ("sync", "push", src, "--server", srv.url, "--token", srv.token, "--json")
        result = run_cli(*args, "--name", "laptop", data_dir=data, env=env)
        assert result.returncode == 0, result.stderr
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary

    assert sync()["errors"] == []
    text = (src / "argparse.py").read_bytes()
    middle = text.index(b"\n", len(text) // 2) + 1
    (src / "argparse.py").write_bytes(text[:middle] + b"# edited here\n" + text[middle:])
    summary = sync()
    assert summary["errors"] == []
    assert (srv.root / "laptop/argparse.py").read_bytes() == (src / "argparse.py").read_bytes()
    return summary, client_index_path(data / "sync", src.resolve(), "laptop")


def test_a_one_line_edit_of_a_real_module_costs_about_the_line(tmp_path: Path) -> None:
    with sync_server(tmp_path) as srv:
        summary, _ = _edit_and_push(tmp_path, srv)
    plain = len(zstandard.ZstdCompressor(level=3).compress(REAL.read_bytes()))
    assert summary["data_bytes_sent"] < 1000 < plain // 10


def test_without_the_cache_the_edited_chunk_goes_plain(tmp_path: Path) -> None:
    """patch_cache_bytes = 0 keeps nothing: the edited chunk is sent compressed on its own."""
    with sync_server(tmp_path) as srv:
        summary, index = _edit_and_push(tmp_path, srv, {"HOMEKEEP_SYNC_PATCH_CACHE_BYTES": "0"})
    assert summary["data_bytes_sent"] > 5000
    with sqlite3.connect(index) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_the_cache_stays_within_its_bound(tmp_path: Path) -> None:
    """A tree larger than the bound: what is kept adds up to at most patch_cache_bytes."""
    src = tmp_path / "src"
    shutil.copytree(
        sysconfig.get_path("stdlib"),
        src,
        ignore=shutil.ignore_patterns("__pycache__", "site-packages", "dist-packages", "test"),
        symlinks=True,
    )
    data = tmp_path / "client-data"
    with sync_server(tmp_path) as srv:
        args = ("sync", "push", src, "--server", srv.url, "--token", srv.token, "--json")
        env = {"HOMEKEEP_SYNC_PATCH_CACHE_BYTES": str(1 << 20)}
        result = run_cli(*args, "--name", "laptop", data_dir=data, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(client_index_path(data / "sync", src.resolve(), "laptop")) as conn:
        count, total = conn.execute("SELECT count(*), sum(length(data)) FROM kept").fetchone()
    assert count > 10
    assert total <= 1 << 20
