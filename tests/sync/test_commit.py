"""POST .../commit: ops and the chunks they need in one request, checked as strictly as /ops.

The body is a 4-byte big-endian length N, N bytes of ops JSON, then a chunk pack (records
of a 32-byte id, a flag byte, a 4-byte big-endian length and the data). A real server with
a 1 MiB request limit, httpx, and nothing placed by anything refused.
"""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import httpx
import pytest
import zstandard
from blake3 import blake3

from homekeep.sync.wire.chunklist import ChunkList, ChunkRef
from homekeep.sync.wire.pack import encode_record
from homekeep.sync.wire.protocol import CHUNK_MAX
from tests.support import run_cli
from tests.sync.helpers import BAD_TOKENS, SyncServer, api_error, bad_token

API = "/api/sync/v1"
CLIENT = "c"
MTIME = 1_650_000_000_987_654_321


# the module's server takes request bodies of at most 1 MiB (see conftest.py)
SMALL_REQUESTS = True


def _body(ops: list[dict[str, Any]] | bytes, pack: bytes = b"") -> bytes:
    head = ops if isinstance(ops, bytes) else json.dumps({"ops": ops}).encode()
    return struct.pack(">I", len(head)) + head + pack


def _id(data: bytes) -> str:
    return blake3(data).hexdigest()


def _record(data: bytes, *, compressed: bool = False) -> bytes:
    body = zstandard.ZstdCompressor().compress(data) if compressed else data
    return encode_record(_id(data), body, compressed=compressed)


def _file(path: str, *parts: bytes, **over: Any) -> dict[str, Any]:
    """A file op for the content ``parts`` joined, cut into those chunks."""
    whole = b"".join(parts)
    op: dict[str, Any] = {
        "op": "file",
        "path": path,
        "size": len(whole),
        "mode": 0o640,
        "mtime_ns": MTIME,
        "hash": _id(whole),
        "chunks": ChunkList.of([ChunkRef(_id(p), len(p)) for p in parts]).encode(),
    }
    op.update(over)
    return op


def _commit(
    server: SyncServer, body: bytes, token: str | None = None, client: str = CLIENT
) -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream"}
    token = server.token if token is None else token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(
        f"{server.url}{API}/clients/{client}/commit", content=body, headers=headers, timeout=30
    )


def _nothing_placed(server: SyncServer, *paths: str) -> None:
    for path in paths:
        assert not (server.root / CLIENT / path).exists(), path
    assert not (server.root.parent / "escape.txt").exists()
    assert list((server.root / ".homekeep-sync/tmp").iterdir()) == []


def _staged(server: SyncServer) -> int:
    result = run_cli("sync", "status", server.root, "--json", data_dir=server.data_dir)
    assert result.returncode == 0, result.stderr
    count: int = json.loads(result.stdout)["staged_chunks"]
    return count


# -- what a commit does ----------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "zstd"])
def test_a_commit_creates_a_small_file_exactly(server: SyncServer, compressed: bool) -> None:
    name = f"small-{compressed}.txt"
    data = f"{name}: a small file, sent with its op\n".encode() * 80  # 4 KiB: one chunk
    response = _commit(server, _body([_file(name, data)], _record(data, compressed=compressed)))
    assert response.status_code == 200, response.text
    answer = response.json()
    sent = len(_record(data, compressed=compressed)) - 37  # a record header is 37 bytes
    assert answer["results"] == [{"status": "done", "via": "chunks", "data_bytes": sent}]
    assert isinstance(answer["generation"], int)
    placed = server.root / CLIENT / name
    assert placed.read_bytes() == data
    st = placed.stat()
    assert st.st_mtime_ns == MTIME
    assert st.st_mode & 0o7777 == 0o640
    manifest = httpx.get(
        f"{server.url}{API}/clients/{CLIENT}/manifest",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    ).json()
    entries = {e[0]: e for e in manifest["entries"]}
    assert entries[name][1:6] == ["file", len(data), MTIME, 0o640, _id(data)]
    assert _staged(server) == 0  # inline chunks are used from memory, never staged
    _nothing_placed(server)


def test_a_commit_carries_folders_and_files_sharing_chunks(server: SyncServer) -> None:
    rng = random.Random(1)
    a, b, c = rng.randbytes(20_000), rng.randbytes(9_000), rng.randbytes(1)
    ops = [
        {"op": "mkdir", "path": "many", "mode": 0o750, "mtime_ns": MTIME},
        _file("many/abc.bin", a, b, c, mode=0o600),
        _file("many/ca.bin", c, a),
        _file("many/empty.bin", mtime_ns=MTIME),
    ]
    pack = _record(a) + _record(b, compressed=True) + _record(c)  # each chunk once
    response = _commit(server, _body(ops, pack))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["done"] * 4
    folder = server.root / CLIENT / "many"
    assert (folder / "abc.bin").read_bytes() == a + b + c
    assert (folder / "abc.bin").stat().st_mode & 0o777 == 0o600
    assert (folder / "ca.bin").read_bytes() == c + a
    assert (folder / "empty.bin").read_bytes() == b""
    assert folder.stat().st_mtime_ns == MTIME
    assert folder.stat().st_mode & 0o777 == 0o750
    _nothing_placed(server)


def test_a_commit_without_the_chunks_asks_for_them(server: SyncServer) -> None:
    data = random.Random(2).randbytes(5000)
    response = _commit(server, _body([_file("asked.bin", data)]))
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [{"status": "missing", "all": True}]
    _nothing_placed(server, "asked.bin")
    # another chunk in the pack does not help, and is not kept either
    other = b"some other chunk"
    response = _commit(server, _body([_file("asked.bin", data)], _record(other)))
    assert response.json()["results"] == [{"status": "missing", "all": True}]
    assert _staged(server) == 0
    _nothing_placed(server, "asked.bin")


# -- hostile commits -------------------------------------------------------------------------

_GOOD = b"the good content"
_GOOD_OP = [_file("h.txt", _GOOD)]


def _bad_bodies() -> list[tuple[str, bytes]]:
    good_ops = json.dumps({"ops": _GOOD_OP}).encode()
    record = _record(_GOOD)
    return [
        ("empty", b""),
        ("one-byte", b"\x00"),
        ("three-bytes", b"\x00\x00\x01"),
        ("length-over-body", struct.pack(">I", len(good_ops) + 1) + good_ops),
        ("length-max", b"\xff\xff\xff\xff" + good_ops + record),
        ("length-zero", struct.pack(">I", 0) + good_ops + record),
        ("ops-not-json", _body(b"not json at all", record)),
        ("ops-binary", _body(b"\xff\xfe\x00garbage", record)),
        ("ops-cut", _body(good_ops[:-3], record)),
        ("ops-not-a-list", _body(b'{"ops": "nope"}', record)),
        ("ops-extra-key", _body(b'{"ops": [], "more": 1}', record)),
        ("op-unknown", _body([{"op": "explode", "path": "h.txt"}], record)),
        ("op-traversal", _body([_file("../escape.txt", _GOOD)], record)),
        ("op-absolute", _body([_file("/escape.txt", _GOOD)], record)),
        ("op-bad-hash", _body([_file("h.txt", _GOOD, hash="zz")], record)),
        ("op-bad-chunks", _body([_file("h.txt", _GOOD, chunks="!!!")], record)),
        ("op-negative-size", _body([_file("h.txt", _GOOD, size=-1)], record)),
        ("op-size-lie", _body([_file("h.txt", _GOOD, size=len(_GOOD) + 1)], record)),
        ("op-hash-lie", _body([_file("h.txt", _GOOD, hash=_id(b"other"))], record)),
        ("pack-cut-in-header", _body(_GOOD_OP, record[:20])),
        ("pack-cut-in-data", _body(_GOOD_OP, record[:-1])),
        ("pack-second-record-cut", _body(_GOOD_OP, record + record[:40])),
        (
            "pack-data-not-its-id",
            _body(_GOOD_OP, encode_record(_id(_GOOD), b"not the good content", compressed=False)),
        ),
        (
            "pack-flipped-byte",
            _body(_GOOD_OP, record[:-1] + bytes([record[-1] ^ 1])),
        ),
        (
            "pack-bad-zstd",
            _body(_GOOD_OP, encode_record(_id(_GOOD), b"\x28\xb5\x2f\xfd", compressed=True)),
        ),
        (
            "pack-unknown-flags",
            _body(
                _GOOD_OP, struct.pack(">32sBI", bytes.fromhex(_id(_GOOD)), 6, len(_GOOD)) + _GOOD
            ),
        ),
        ("pack-empty-chunk", _body(_GOOD_OP, encode_record(_id(b""), b"", compressed=False))),
        (
            "pack-chunk-over-max",
            _body(_GOOD_OP, struct.pack(">32sBI", b"\0" * 32, 0, CHUNK_MAX + 2048) + b"x"),
        ),
    ]


_BAD_BODIES = _bad_bodies()


@pytest.mark.parametrize("body", [b for _, b in _BAD_BODIES], ids=[i for i, _ in _BAD_BODIES])
def test_bad_commits_get_422_and_place_nothing(server: SyncServer, body: bytes) -> None:
    assert api_error(_commit(server, body), 422) == "invalid_input"
    _nothing_placed(server, "h.txt")


def test_a_pack_with_one_bad_chunk_places_none_of_the_files(server: SyncServer) -> None:
    good, bad = b"first file", b"second file"
    pack = _record(good) + encode_record(_id(bad), b"tampered", compressed=False)
    body = _body([_file("one.txt", good), _file("two.txt", bad)], pack)
    assert api_error(_commit(server, body), 422) == "invalid_input"
    _nothing_placed(server, "one.txt", "two.txt")


def test_oversized_commits_get_413(server: SyncServer) -> None:
    body = _body(_GOOD_OP, _record(_GOOD) + b"\0" * (1 << 20))
    assert len(body) > 1 << 20
    assert api_error(_commit(server, body), 413) == "payload_too_large"
    # without a Content-Length: the server counts as the body streams in
    streamed = httpx.post(
        f"{server.url}{API}/clients/{CLIENT}/commit",
        content=iter([body[:600_000], body[600_000:]]),
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    assert api_error(streamed, 413) == "payload_too_large"
    _nothing_placed(server, "h.txt")


@BAD_TOKENS
def test_commits_need_a_sync_token(server: SyncServer, token: str, status: int) -> None:
    token = bad_token(server, token, "commit-music")
    body = _body(_GOOD_OP, _record(_GOOD))
    api_error(_commit(server, body, token=token), status)
    _nothing_placed(server, "h.txt")


@pytest.mark.parametrize("client", ["..", ".hidden", "sp ace", "x" * 65])
def test_bad_client_names_are_refused(server: SyncServer, client: str) -> None:
    response = _commit(server, _body(_GOOD_OP, _record(_GOOD)), client=client)
    assert response.status_code in (404, 422), response.text
    _nothing_placed(server)
    assert not (server.root.parent / "h.txt").exists()


def test_the_server_still_commits_after_the_abuse(server: SyncServer) -> None:
    data = b"after all that"
    response = _commit(server, _body([_file("after.txt", data)], _record(data)))
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "done"
    assert (server.root / CLIENT / "after.txt").read_bytes() == data
    assert _staged(server) == 0
    _nothing_placed(server, "h.txt")


def test_a_chunk_list_lying_about_lengths_is_refused(server: SyncServer) -> None:
    """The list says 10 + 10 bytes; the chunks sent under those ids are 15 and 5 long."""
    rng = random.Random(4)
    first, second = rng.randbytes(15), rng.randbytes(5)
    whole = first + second
    chunks = ChunkList.of([ChunkRef(_id(first), 10), ChunkRef(_id(second), 10)]).encode()
    op = _file("lengths.bin", whole, chunks=chunks)
    response = _commit(server, _body([op], _record(first) + _record(second)))
    assert api_error(response, 422) == "invalid_input"
    _nothing_placed(server, "lengths.bin")


def test_a_one_chunk_list_lying_about_its_length_is_refused(server: SyncServer) -> None:
    """Size and list say 10 bytes; the one chunk (and the content id) is 20 bytes."""
    data = random.Random(5).randbytes(20)
    chunks = ChunkList.of([ChunkRef(_id(data), 10)]).encode()
    op = _file("short-list.bin", data, size=10, chunks=chunks)
    response = _commit(server, _body([op], _record(data)))
    assert api_error(response, 422) == "invalid_input"
    _nothing_placed(server, "short-list.bin")


# -- found in review -------------------------------------------------------------------------


def test_a_pack_that_inflates_past_the_bound_is_refused(server: SyncServer) -> None:
    """58 bytes of zstd can be 128 KiB: a pack may not add up to more than 128 MiB."""
    cctx = zstandard.ZstdCompressor()
    pack = b""
    for i in range(1100):  # distinct chunks of 128 KiB, each a few dozen bytes compressed
        data = i.to_bytes(4, "big") + bytes(CHUNK_MAX - 4)
        pack += encode_record(_id(data), cctx.compress(data), compressed=True)
    assert len(pack) < 200_000
    api_error(_commit(server, _body([], pack)), 413)
    one = bytes(CHUNK_MAX)  # the same chunk many times is taken once: fine
    same = encode_record(_id(one), cctx.compress(one), compressed=True) * 2000
    assert _commit(server, _body([], same)).status_code == 200
    _nothing_placed(server)


def test_a_list_lying_about_a_stored_chunk_keeps_that_chunk_indexed(server: SyncServer) -> None:
    """A length that differs from the stored chunk's is refused; nothing is forgotten."""
    real = random.Random(7).randbytes(5000)
    assert _commit(server, _body([_file("owner.bin", real)], _record(real))).status_code == 200
    fake = {**_file("thief.bin", real, real)}
    fake["chunks"] = ChunkList.of([ChunkRef(_id(real), 5000), ChunkRef(_id(real), 5001)]).encode()
    fake["size"] = 10_001
    api_error(_commit(server, _body([fake])), 422)
    _nothing_placed(server, "thief.bin")
    again = _file("copy.bin", real, b"x")  # the stored chunk is still found: no data needed
    answer = _commit(server, _body([again], _record(b"x")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["status"] == "done"
    assert (server.root / CLIENT / "copy.bin").read_bytes() == real + b"x"
