"""Hostile and broken requests get a 4xx in the one error shape; nothing escapes the folder."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.core.errors import InvalidInput
from homekeep.sync.client.excludes import Excludes
from homekeep.sync.wire.chunklist import ChunkList, ChunkRef, decode_chunks
from homekeep.sync.wire.delta import apply_delta, make_delta
from homekeep.sync.wire.pack import decode_pack, encode_record
from homekeep.sync.wire.protocol import check_path
from tests.support import create_token, run_cli
from tests.sync.helpers import SyncServer, api_error, push

API = "/api/sync/v1"


# the module's server takes request bodies of at most 1 MiB (see conftest.py)
SMALL_REQUESTS = True


def _client(server: SyncServer, token: str | None = None) -> httpx.Client:
    return server.server.client(token if token is not None else server.token)


def _ops(client: httpx.Client, *ops: dict[str, Any], name: str = "h") -> httpx.Response:
    return client.post(f"{API}/clients/{name}/ops", json={"ops": list(ops)})


def _file(path: str, data: bytes) -> dict[str, Any]:
    h = blake3(data).hexdigest()
    chunks = base64.b64encode(struct.pack(">32sI", bytes.fromhex(h), len(data))).decode()
    return {
        "op": "file",
        "path": path,
        "size": len(data),
        "mode": 0o644,
        "mtime_ns": 0,
        "hash": h,
        "chunks": chunks,
    }


BAD_PATHS = [
    "../escape.txt",
    "a/../../escape.txt",
    "/etc/passwd",
    "a\\..\\b",
    "nul\x00byte",
    "",
    ".",
    "a//b",
    "a/./b",
    "x" * 300,
    "a/" * 2100 + "b",
]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("op", ["mkdir", "file", "delete", "rename-src", "rename-dest", "link"])
def test_paths_leaving_the_folder_are_refused(server: SyncServer, path: str, op: str) -> None:
    body: dict[str, Any] = {
        "mkdir": {"op": "mkdir", "path": path, "mode": 0o755},
        "file": _file(path, b"evil"),
        "delete": {"op": "delete", "path": path},
        "rename-src": {"op": "rename", "path": path, "dest": "ok"},
        "rename-dest": {"op": "rename", "path": "ok", "dest": path},
        "link": {"op": "link", "path": path, "target": "x"},
    }[op]
    with _client(server) as client:
        assert api_error(_ops(client, body), 422) == "invalid_input"
    outside = server.root.parent
    assert not (outside / "escape.txt").exists()
    assert not (server.root / "h").exists() or not any((server.root / "h").rglob("*evil*"))


def test_writing_through_a_stored_symlink_is_refused(server: SyncServer, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    with _client(server) as client:
        ok = _ops(client, {"op": "link", "path": "door", "target": str(victim)})
        assert ok.status_code == 200
        assert api_error(_ops(client, _file("door/planted.txt", b"x")), 422) == "invalid_input"
        assert api_error(_ops(client, {"op": "mkdir", "path": "door/sub", "mode": 0o755}), 422)
        assert api_error(_ops(client, {"op": "delete", "path": "door/anything"}), 422)
    assert list(victim.iterdir()) == []
    assert (server.root / "h/door").is_symlink()


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("hk_000000000000_" + "A" * 43, 401), ("garbage", 401), ("REVOKED", 401)],
)
def test_wrong_tokens_are_refused(server: SyncServer, token: str | None, status: int) -> None:
    if token == "REVOKED":
        token = create_token(server.data_dir, "gone", "sync")
        assert run_cli("token", "revoke", "gone", data_dir=server.data_dir).returncode == 0
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        for method, path in [
            ("GET", f"{API}/hello"),
            ("GET", f"{API}/clients/h/manifest"),
            ("POST", f"{API}/clients/h/ops"),
            ("PUT", f"{API}/clients/h/chunks"),
        ]:
            api_error(client.request(method, path, content=b"{}"), status)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"ops": "nope"}',
        b'{"ops": [{"op": "explode", "path": "a"}]}',
        b'{"ops": [{"op": "mkdir", "path": "a", "mode": -1}]}',
        b'{"ops": [{"op": "mkdir", "path": 7, "mode": 420}]}',
        b'{"ops": [{"op": "file", "path": "a", "size": 4, "mode": 420, "mtime_ns": 0, '
        b'"hash": "zz", "chunks": ""}]}',
        b'{"ops": [{"op": "file", "path": "a", "size": 4, "mode": 420, "mtime_ns": 0, '
        b'"hash": "' + b"0" * 64 + b'", "chunks": "!!!"}]}',
        b'{"ops": [], "extra": 1}',
    ],
)
def test_garbage_ops_get_422(server: SyncServer, body: bytes) -> None:
    with _client(server) as client:
        response = client.post(f"{API}/clients/h/ops", content=body)
        assert api_error(response, 422) == "invalid_input"


def test_lies_about_content_are_refused_and_nothing_is_placed(server: SyncServer) -> None:
    with _client(server) as client:
        real = b"real content"
        pack = encode_record(blake3(real).hexdigest(), real, compressed=False)
        assert client.put(f"{API}/clients/h/chunks", content=pack).status_code == 200
        lie = _file("lie.txt", real)
        lie["hash"] = blake3(b"something else").hexdigest()
        assert api_error(_ops(client, lie), 422) == "invalid_input"
        short = _file("short.txt", real)
        short["size"] = 3
        assert api_error(_ops(client, short), 422) == "invalid_input"
    assert not (server.root / "h/lie.txt").exists()
    assert not (server.root / "h/short.txt").exists()


@pytest.mark.parametrize(
    "pack",
    [
        b"short",
        encode_record("00" * 32, b"data that is not what the id says", compressed=False),
        encode_record(blake3(b"x").hexdigest(), b"\x28\xb5\x2f\xfd garbage", compressed=True),
        struct.pack(">32sBI", b"\0" * 32, 0, 10_000_000) + b"x",
        struct.pack(">32sBI", b"\0" * 32, 9, 1) + b"x",
    ],
)
def test_bad_chunk_packs_get_422(server: SyncServer, pack: bytes) -> None:
    with _client(server) as client:
        api_error(client.put(f"{API}/clients/h/chunks", content=pack), 422)


def test_oversized_bodies_get_413(server: SyncServer) -> None:
    big = json.dumps({"ops": [{"op": "delete", "path": "x" * 200}] * 6000}).encode()
    with _client(server) as client:
        too_big = client.post(f"{API}/clients/h/ops", content=big)
        assert api_error(too_big, 413) == "payload_too_large"
        chunked = client.put(
            f"{API}/clients/h/chunks", content=iter([b"\0" * 600_000, b"\0" * 600_000])
        )
        assert api_error(chunked, 413) == "payload_too_large"


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "x" * 65, "sp ace"])
def test_bad_client_names_are_refused(server: SyncServer, name: str) -> None:
    with _client(server) as client:
        response = client.get(f"{API}/clients/{name}/manifest")
        assert response.status_code in (404, 422)


def test_server_still_works_after_the_abuse(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.txt").write_text("fine")
    summary = push(src, server, "after")
    assert summary["files_sent"] == 1
    assert (server.root / "after/fine.txt").read_text() == "fine"
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert list((server.root / ".homekeep-sync/tmp").iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_check_path_never_lets_a_path_escape(path: str) -> None:
    try:
        checked = check_path(path)
    except InvalidInput:
        return
    parts = checked.split("/")
    assert not {"..", ".", ""} & set(parts)
    assert not {"\\", "\x00"} & set(checked)
    assert not checked.startswith("/")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoders_reject_garbage_cleanly(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        list(decode_pack(data, max_chunk=1 << 17))
    with contextlib.suppress(InvalidInput):
        decode_chunks(data.decode("latin-1"), max_chunks=100)


_refs = st.lists(
    st.builds(ChunkRef, st.sampled_from([f"{i:064x}" for i in range(12)]), st.just(100)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_refs, _refs)
def test_a_chunk_list_delta_rebuilds_the_new_list(old: list[ChunkRef], new: list[ChunkRef]) -> None:
    before, after = ChunkList.of(old), ChunkList.of(new)
    delta = make_delta(before, after)
    assert delta is not None  # no literal budget: always a delta
    rebuilt = apply_delta(before, delta, max_chunks=100)
    assert rebuilt == after
    assert list(rebuilt) == new


@pytest.mark.parametrize(
    "delta", [[[0, 0]], [[-1, 1]], [[5, 1]], [["x"]], [[0, 1, 2]], [[True, "a"]], ["!!"]]
)
def test_malformed_deltas_are_refused(delta: list[list[int] | str]) -> None:
    with pytest.raises(InvalidInput):
        apply_delta(ChunkList.of([ChunkRef("0" * 64, 10)] * 3), delta, max_chunks=100)


def _upload_params(path: str, data: bytes, **over: str | int) -> dict[str, str | int]:
    params: dict[str, str | int] = {
        "path": path,
        "size": len(data),
        "mode": 0o644,
        "mtime_ns": 0,
        "hash": blake3(data).hexdigest(),
    }
    params.update(over)
    return params


@pytest.mark.parametrize(
    ("params", "body", "headers", "status"),
    [
        (_upload_params("../up.bin", b"x"), b"x", {}, 422),
        (_upload_params("up.bin", b"x", hash="ab" * 32), b"x", {}, 422),
        (_upload_params("up.bin", b"xy"), b"xyz", {}, 413),
        (_upload_params("up.bin", b"xy"), b"x", {}, 422),
        (_upload_params("up.bin", b"x"), b"not zstd", {"Content-Encoding": "zstd"}, 422),
        (_upload_params("up.bin", b"x"), b"x", {"Content-Encoding": "br"}, 415),
        (_upload_params("up.bin", b"x", size=-1), b"x", {}, 422),
    ],
)
def test_bad_whole_file_uploads_are_refused(
    server: SyncServer,
    params: dict[str, str | int],
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    with _client(server) as client:
        response = client.put(
            f"{API}/clients/h/files", params=params, content=body, headers=headers
        )
        api_error(response, status)
    assert not (server.root / "h/up.bin").exists()
    assert not (server.root.parent / "up.bin").exists()
    assert list((server.root / ".homekeep-sync/tmp").iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b.swp", "build", "x~", ".#l", "#s#", "Thumbs.db", "ü"]),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_the_fast_exclude_matcher_agrees_with_pathspec(parts: list[str], is_dir: bool) -> None:
    excludes = Excludes(["*.swp", "build/", "*~", ".#*", "\\#*#", "Thumbs.db", "/a/b"])
    rel = "/".join(parts)
    slow = excludes._spec.match_file(rel + "/" if is_dir else rel)
    assert excludes.match(rel, is_dir=is_dir) == slow
