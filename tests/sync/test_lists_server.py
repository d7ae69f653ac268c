"""Chunk lists of huge files against a real server, then end to end with the real CLI.

- ``PUT /api/sync/v1/clients/{client}/lists/{hash}?size=N``: tokens,
  hashes, sizes and bodies that are wrong get a 4xx in the one error shape, nothing is
  kept, no temp file stays behind (a client hanging up mid-list included), and the server
  keeps working; a kept list is used by ops that leave their list out ("missing", "resend",
  then the file made from it, and a list lying about the content refused).
- End to end with the real CLI: a 200 MiB file (some 5,000 chunks, past SPILL) pushed (its
  list whole, on its own), edited in the middle (a delta, a few chunks), pushed by another
  client (a copy), edited again after the client lost its kept list (the list goes whole),
  over the data port, over HTTP only (``--data-port -1``) and against a 1 MiB request
  limit (missing chunks staged); the server keeps no list, temp file or staged pack
  afterwards and the client keeps exactly one list, named by the content id.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx
import pytest
from blake3 import blake3

from homekeep.sync.wire.chunklist import ENTRY_BYTES, SPILL, ListFile
from homekeep.sync.wire.pack import encode_record
from homekeep.sync.wire.protocol import CHUNK_MAX, CHUNK_MIN
from tests.sync.helpers import (
    BAD_TOKENS,
    SyncServer,
    api_error,
    bad_token,
    push,
    same_tree,
    small_limit_server,
    sync_server,
    wait_until,
)
from tests.sync.listdata import (
    BAD_LISTS,
    ENTRY,
    packed,
    raw_entries,
    total_of,
)

API = "/api/sync/v1"
CLIENT = "c"
MiB = 1 << 20
KiB = 1 << 10
BIG = 200 * MiB
N = 20_000  # entries of the long lists in the delta tests: five windows


# -- PUT .../lists/{hash} against a real server -----------------------------------------------


# the module's server takes request bodies of at most 1 MiB (see conftest.py)
SMALL_REQUESTS = True


def _lists(server: SyncServer) -> set[str]:
    return {p.name for p in (server.root / ".homekeep-sync/lists").iterdir()}


def _tmp_empty(server: SyncServer) -> bool:
    return list((server.root / ".homekeep-sync/tmp").iterdir()) == []


def _headers(server: SyncServer, token: str | None = None) -> dict[str, str]:
    token = server.token if token is None else token
    return {"Authorization": f"Bearer {token}"} if token else {}


def _put(
    server: SyncServer,
    file_hash: str,
    size: int | str | None,
    body: bytes | Iterator[bytes],
    *,
    token: str | None = None,
    client: str = CLIENT,
) -> httpx.Response:
    params: dict[str, str | int] = {} if size is None else {"size": size}
    return httpx.put(
        f"{server.url}{API}/clients/{client}/lists/{file_hash}",
        params=params,
        content=body,
        headers={**_headers(server, token), "Content-Type": "application/octet-stream"},
        timeout=30,
    )


def _left_clean(server: SyncServer, before: set[str]) -> None:
    """Nothing new kept, no temp file left (removed in a finally: may lag the answer)."""
    assert wait_until(lambda: _tmp_empty(server), timeout=5), list(
        (server.root / ".homekeep-sync/tmp").iterdir()
    )
    assert _lists(server) == before
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def _hash_not_kept(server: SyncServer, file_hash: str) -> bool:
    return not (server.root / ".homekeep-sync/lists" / f"{CLIENT}.{file_hash}").exists()


_HASH = blake3(b"a huge file").hexdigest()
_LIST = packed(5000, 6000, 7000)


@BAD_TOKENS
def test_a_list_needs_a_sync_token(server: SyncServer, token: str, status: int) -> None:
    token = bad_token(server, token, "lists-music")
    before = _lists(server)
    api_error(_put(server, _HASH, total_of(_LIST), _LIST, token=token), status)
    _left_clean(server, before)


@pytest.mark.parametrize(
    "file_hash",
    [
        "abc",
        "zz" * 32,
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "-" * 64,
        "ab " * 16 + "ab" * 8,
        " " + "0" * 63,
    ],
)
def test_a_list_for_a_bad_hash_is_refused(server: SyncServer, file_hash: str) -> None:
    before = _lists(server)
    assert api_error(_put(server, file_hash, total_of(_LIST), _LIST), 422) == "invalid_input"
    _left_clean(server, before)


@pytest.mark.parametrize("size", [None, 0, -1, (1 << 50) + 1, 1 << 63, "ten", "1.5", ""])
def test_a_list_with_a_bad_size_is_refused(server: SyncServer, size: int | str | None) -> None:
    before = _lists(server)
    assert api_error(_put(server, _HASH, size, _LIST), 422) == "invalid_input"
    _left_clean(server, before)


@pytest.mark.parametrize("client", ["..", ".hidden", "sp ace", "x" * 65])
def test_a_list_for_a_bad_client_name_is_refused(server: SyncServer, client: str) -> None:
    before = _lists(server)
    response = _put(server, _HASH, total_of(_LIST), _LIST, client=client)
    assert response.status_code in (404, 422), response.text
    _left_clean(server, before)


@pytest.mark.parametrize(
    ("raw", "size"), [(r, s) for _, r, s in BAD_LISTS], ids=[i for i, _, _ in BAD_LISTS]
)
def test_a_bad_list_body_is_refused_and_nothing_is_kept(
    server: SyncServer, raw: bytes, size: int
) -> None:
    before = _lists(server)
    assert api_error(_put(server, _HASH, size, raw), 422) == "invalid_input"
    _left_clean(server, before)


def _endless(part: bytes, count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield part


@pytest.mark.parametrize(
    ("entry_length", "size"),
    [(1, 4 * CHUNK_MIN), (CHUNK_MAX, 4 * CHUNK_MIN), (CHUNK_MIN, 1 << 30)],
    ids=["count", "total", "in-bounds-but-short"],
)
def test_a_streamed_list_far_longer_than_its_size_allows_is_refused(
    server: SyncServer, entry_length: int, size: int
) -> None:
    """No Content-Length: 2.3 MB of entries against a size that allows a few entries or
    bytes (or, last, entries that all fit but fall short of the size)."""
    part = ENTRY.pack(b"\x07" * 32, entry_length) * 1000
    before = _lists(server)
    count = 64
    response = _put(server, _HASH, size, _endless(part, count))
    assert api_error(response, 422) == "invalid_input"
    _left_clean(server, before)


def test_a_client_hanging_up_mid_list_leaves_nothing(server: SyncServer) -> None:
    before = _lists(server)
    raw = packed(*[CHUNK_MIN] * 2000)
    parts = urlsplit(server.url)
    head = (
        f"PUT {API}/clients/{CLIENT}/lists/{_HASH}?size={total_of(raw)} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        f"Authorization: Bearer {server.token}\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        sock.sendall(head + raw[: len(raw) // 2])
        assert wait_until(lambda: not _tmp_empty(server), timeout=10)  # it is arriving
    _left_clean(server, before)
    assert _hash_not_kept(server, _HASH)


def _ops(server: SyncServer, *ops: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.url}{API}/clients/{CLIENT}/ops",
        json={"ops": list(ops)},
        headers=_headers(server),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def _commit(server: SyncServer, ops: list[dict[str, Any]], pack: bytes) -> httpx.Response:
    head = json.dumps({"ops": ops}).encode()
    return httpx.post(
        f"{server.url}{API}/clients/{CLIENT}/commit",
        content=struct.pack(">I", len(head)) + head + pack,
        headers={**_headers(server), "Content-Type": "application/octet-stream"},
        timeout=30,
    )


def _file_op(path: str, file_hash: str, size: int) -> dict[str, Any]:
    """A file op that leaves its chunk list out: the server looks for a kept one."""
    return {
        "op": "file",
        "path": path,
        "size": size,
        "mode": 0o644,
        "mtime_ns": 0,
        "hash": file_hash,
    }


def _content(seed: int) -> tuple[list[bytes], bytes, bytes]:
    """Three chunks, the content they make, and its list."""
    rng = random.Random(seed)
    chunks = [rng.randbytes(n) for n in (20_000, CHUNK_MAX, 3)]
    raw = b"".join(ENTRY.pack(blake3(c).digest(), len(c)) for c in chunks)
    return chunks, b"".join(chunks), raw


def test_a_kept_list_is_used_by_an_op_without_chunks(server: SyncServer) -> None:
    chunks, content, raw = _content(10)
    file_hash = blake3(content).hexdigest()
    response = _put(server, file_hash.upper(), len(content), raw)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "kept", "chunks": 3}
    kept = server.root / ".homekeep-sync/lists" / f"{CLIENT}.{file_hash}"
    assert kept.read_bytes() == raw
    assert _tmp_empty(server)
    # the server has none of the chunks
    answer = _ops(server, _file_op("huge.bin", file_hash, len(content)))
    assert answer == [{"status": "missing", "all": True}]
    # another size than the kept list adds up to: the list is not that file's
    for size in (len(content) + 1, len(content) - 1):
        assert _ops(server, _file_op("huge.bin", file_hash, size)) == [{"status": "resend"}]
    # some of the chunks there: the rest asked for by id, with their bytes
    first = encode_record(blake3(chunks[0]).hexdigest(), chunks[0], compressed=False)
    staged = httpx.put(
        f"{server.url}{API}/clients/{CLIENT}/chunks",
        content=first,
        headers=_headers(server),
        timeout=30,
    )
    assert staged.status_code == 200, staged.text
    answer = _ops(server, _file_op("huge.bin", file_hash, len(content)))
    assert answer[0]["status"] == "missing"
    assert set(answer[0]["chunks"]) == {blake3(c).hexdigest() for c in chunks[1:]}
    assert answer[0]["bytes"] == CHUNK_MAX + 3
    assert not (server.root / CLIENT / "huge.bin").exists()
    # then the rest: the file is made from the kept list, and the list is let go
    pack = b"".join(encode_record(blake3(c).hexdigest(), c, compressed=False) for c in chunks[1:])
    made = _commit(server, [_file_op("huge.bin", file_hash, len(content))], pack)
    assert made.status_code == 200, made.text
    assert made.json()["results"][0]["status"] == "done"
    assert (server.root / CLIENT / "huge.bin").read_bytes() == content
    assert not kept.exists()
    assert _tmp_empty(server)


def test_a_kept_list_lying_about_the_content_places_nothing(server: SyncServer) -> None:
    """A list of other chunks, kept under a content id: the file it makes is not that id."""
    _, content, _ = _content(11)
    file_hash = blake3(content).hexdigest()
    other, other_content, other_raw = _content(12)
    assert len(other_content) == len(content)
    assert _put(server, file_hash, len(content), other_raw).status_code == 200
    pack = b"".join(encode_record(blake3(c).hexdigest(), c, compressed=False) for c in other)
    response = _commit(server, [_file_op("liar.bin", file_hash, len(content))], pack)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [{"status": "resend"}]  # its list is dropped
    assert not (server.root / CLIENT / "liar.bin").exists()
    assert _hash_not_kept(server, file_hash)
    assert _tmp_empty(server)


def test_another_clients_list_is_not_used(server: SyncServer) -> None:
    """Kept lists are each client's own: one cannot swap the list another is about to use."""
    chunks, content, raw = _content(15)
    file_hash = blake3(content).hexdigest()
    _, _, other_raw = _content(16)
    assert _put(server, file_hash, len(content), other_raw, client="mallory").status_code == 200
    assert _ops(server, _file_op("mine.bin", file_hash, len(content))) == [{"status": "resend"}]
    assert _put(server, file_hash, len(content), raw).status_code == 200
    pack = b"".join(encode_record(blake3(c).hexdigest(), c, compressed=False) for c in chunks)
    made = _commit(server, [_file_op("mine.bin", file_hash, len(content))], pack)
    assert made.json()["results"][0]["status"] == "done", made.text
    assert (server.root / CLIENT / "mine.bin").read_bytes() == content


def test_a_list_sent_again_replaces_the_kept_one(server: SyncServer) -> None:
    _, content, raw = _content(13)
    file_hash = blake3(content).hexdigest()
    longer = packed(100_000, len(content) + 5 - 100_000)
    assert _put(server, file_hash, len(content) + 5, longer).status_code == 200
    assert _ops(server, _file_op("again.bin", file_hash, len(content))) == [{"status": "resend"}]
    assert _put(server, file_hash, len(content), raw).status_code == 200
    assert (server.root / ".homekeep-sync/lists" / f"{CLIENT}.{file_hash}").read_bytes() == raw
    answer = _ops(server, _file_op("again.bin", file_hash, len(content)))
    assert answer == [{"status": "missing", "all": True}]


def test_the_server_still_takes_lists_after_the_abuse(server: SyncServer) -> None:
    """A list past SPILL and over the 1 MiB request limit (a huge file's list is bounded by
    the file's size, not by the request limit), streamed in parts."""
    raw = raw_entries(30_000, 14, length=CHUNK_MIN)
    assert len(raw) > MiB
    file_hash = blake3(b"after the abuse").hexdigest()
    parts = (raw[i : i + 100_000] for i in range(0, len(raw), 100_000))
    response = _put(server, file_hash, total_of(raw), parts)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "kept", "chunks": 30_000}
    assert (server.root / ".homekeep-sync/lists" / f"{CLIENT}.{file_hash}").read_bytes() == raw
    assert _tmp_empty(server)


# -- end to end with the real CLI --------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 MiB of random bytes (6,400 chunks at the 32 KiB average), written once."""
    path = tmp_path_factory.mktemp("big") / "disk.img"
    path.write_bytes(blake3(b"seed").digest(length=BIG))
    return path


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncServer]:
    # dedup across clients: a huge file copied under another client's name is made locally
    shared = {"HOMEKEEP_SYNC_DEDUP_ACROSS_CLIENTS": "true"}
    with sync_server(tmp_path_factory.mktemp("big-server"), env=shared) as srv:
        yield srv


def _copy(fin: BinaryIO, out: BinaryIO, count: int | None = None) -> None:
    while count is None or count > 0:
        part = fin.read(8 * MiB if count is None else min(8 * MiB, count))
        if not part:
            break
        out.write(part)
        if count is not None:
            count -= len(part)


def _insert(path: Path, at: int, data: bytes) -> None:
    """Insert ``data`` at ``at`` (a new file renamed over: the old one may be shared)."""
    new = path.with_name(".edited")
    new.unlink(missing_ok=True)
    with path.open("rb") as fin, new.open("wb") as out:
        _copy(fin, out, at)
        out.write(data)
        _copy(fin, out)
    new.replace(path)


def _content_id(path: Path) -> str:
    digest = blake3(max_threads=blake3.AUTO)
    with path.open("rb") as fh:
        while part := fh.read(8 * MiB):
            digest.update(part)
    return digest.hexdigest()


def _client_lists(src: Path, name: str) -> list[Path]:
    return sorted((src.parent / f"client-data-{name}").glob("sync/clients/*.lists/*"))


def _server_clean(srv: SyncServer) -> None:
    assert list((srv.root / ".homekeep-sync/lists").iterdir()) == []
    assert list((srv.root / ".homekeep-sync/tmp").iterdir()) == []


def _push_then_edit(srv: SyncServer, src: Path, name: str) -> None:
    """Push the big file, check what both sides keep; insert 20 bytes, push a delta."""
    first = push(src, srv, name)
    assert not first["errors"]
    assert first["files_sent"] == 1
    assert first["data_bytes_sent"] >= BIG * 0.99
    assert same_tree(srv.root / name, src)
    _server_clean(srv)
    kept = _client_lists(src, name)
    assert [p.name for p in kept] == [_content_id(src / "disk.img")]
    listed = ListFile.open(kept[0])
    try:
        assert len(listed) > SPILL
        assert listed.size() == BIG
        # the list went whole, on its own (PUT .../lists), besides the data
        assert first["wire_bytes"] - first["data_bytes_sent"] >= len(listed) * ENTRY_BYTES
    finally:
        listed.close()

    _insert(src / "disk.img", BIG // 2 + 12345, b"twenty inserted byte")
    second = push(src, srv, name)
    assert not second["errors"]
    assert second["files_sent"] == 1
    assert second["data_bytes_sent"] < 256 * KiB
    assert second["wire_bytes"] < 256 * KiB  # the list travelled as a delta, not 230 KB whole
    assert same_tree(srv.root / name, src)
    _server_clean(srv)
    kept = _client_lists(src, name)  # the old content's list is dropped
    assert [p.name for p in kept] == [_content_id(src / "disk.img")]


def test_a_huge_file_is_pushed_edited_and_copied(
    big_server: SyncServer, big_file: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.link(big_file, src / "disk.img")
    _push_then_edit(big_server, src, "laptop")

    third = push(src, big_server, "desktop")  # the same content under another name
    assert not third["errors"]
    assert third["data_bytes_sent"] == 0
    assert third["deduplicated"] == 1
    assert same_tree(big_server.root / "desktop", src)
    _server_clean(big_server)
    assert len(_client_lists(src, "desktop")) == 1

    # the client's kept list is gone: the file is read again and its list goes whole
    for kept in _client_lists(src, "laptop"):
        kept.unlink()
    _insert(src / "disk.img", 1000, b"and twenty more bytes")
    fourth = push(src, big_server, "laptop")
    assert not fourth["errors"]
    assert fourth["files_sent"] == 1
    assert fourth["data_bytes_sent"] < 256 * KiB
    assert fourth["wire_bytes"] > 5000 * ENTRY_BYTES  # the list, whole
    assert same_tree(big_server.root / "laptop", src)
    _server_clean(big_server)
    assert [p.name for p in _client_lists(src, "laptop")] == [_content_id(src / "disk.img")]


def test_a_huge_file_is_pushed_and_edited_over_http_only(big_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.link(big_file, src / "disk.img")
    with sync_server(tmp_path / "http-only", "--data-port", "-1") as srv:
        hello = httpx.get(f"{srv.url}{API}/hello", headers=_headers(srv), timeout=10).json()
        assert hello["data_port"] is None
        _push_then_edit(srv, src, "laptop")


def test_a_huge_file_rewritten_in_part_stages_its_chunks_on_a_small_limit_server(
    big_file: Path, tmp_path: Path
) -> None:
    """3 MiB rewritten in the middle, against a 1 MiB request limit: the missing chunks go
    in staged packs (not one commit), the list as a delta; nothing stays behind."""
    src = tmp_path / "src"
    src.mkdir()
    os.link(big_file, src / "disk.img")
    with small_limit_server(tmp_path / "small") as srv:
        first = push(src, srv, "tight")
        assert not first["errors"]
        assert same_tree(srv.root / "tight", src)
        _server_clean(srv)
        new = src / ".rewritten"
        with (src / "disk.img").open("rb") as fin, new.open("wb") as out:
            _copy(fin, out, 100 * MiB)
            out.write(blake3(b"other").digest(length=3 * MiB))
            fin.seek(3 * MiB, os.SEEK_CUR)
            _copy(fin, out)
        new.replace(src / "disk.img")
        second = push(src, srv, "tight")
        assert not second["errors"]
        assert second["files_sent"] == 1
        assert 3 * MiB <= second["data_bytes_sent"] < 3 * MiB + 512 * KiB
        assert second["wire_bytes"] < second["data_bytes_sent"] + 256 * KiB
        assert same_tree(srv.root / "tight", src)
        _server_clean(srv)
        assert list((srv.root / ".homekeep-sync/staging").iterdir()) == []


def test_a_request_may_not_carry_many_huge_deltas(big_server: SyncServer, tmp_path: Path) -> None:
    """Each huge list a request makes is a temp file: a few per request, and a delta that
    copies its base thousands of times over for a made-up size is refused."""
    import sqlite3

    src = tmp_path / "src"
    src.mkdir()
    (src / "base.img").write_bytes(blake3(b"base").digest(length=160 * MiB))
    assert not push(src, big_server, "greedy")["errors"]
    base = _content_id(src / "base.img")
    with sqlite3.connect(big_server.root / ".homekeep-sync/index.sqlite") as db:
        count = db.execute(
            "SELECT COUNT(*) FROM chunks c JOIN entries e ON e.id = c.entry_id"
            " WHERE e.client = 'greedy' AND e.path = 'base.img'"
        ).fetchone()[0]
    db.close()
    assert count > SPILL

    mtime_ns = (src / "base.img").stat().st_mtime_ns

    def op(size: int, delta: list[Any], file_hash: str = "ab" * 32) -> dict[str, Any]:
        return {
            "op": "file",
            "path": "base.img",
            "size": size,
            "mode": 0o644,
            "mtime_ns": mtime_ns,
            "hash": file_hash,
            "base": base,
            "delta": delta,
        }

    def post(*ops: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{big_server.url}{API}/clients/greedy/ops",
            json={"ops": list(ops)},
            headers=_headers(big_server),
            timeout=60,
        )

    size = 160 * MiB
    many = post(*[op(size, [[0, count]]) for _ in range(5)])
    assert api_error(many, 422) == "invalid_input"
    assert "huge chunk lists" in many.json()["error"]["message"]
    repeated = post(op(1 << 40, [[0, count]] * 100))  # refused early: the list, please
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["results"] == [{"status": "resend"}]
    too_long = post(op(size, [[0, count], [0, count]]))  # adds up past the size it gives
    assert too_long.json()["results"] == [{"status": "resend"}]
    # four are fine: the same content again, each answered for itself
    fine = post(*[op(size, [[0, count]], base) for _ in range(4)])
    assert fine.status_code == 200, fine.text
    assert [r["status"] for r in fine.json()["results"]] == ["done"] * 4
    assert wait_until(lambda: _tmp_empty(big_server), timeout=10)
    assert same_tree(big_server.root / "greedy", src)


def test_lists_kept_between_rounds_are_each_clients_own(server: SyncServer) -> None:
    """A list sent inline and answered "missing" is kept for the next round, for the
    client that sent it only: another client's list for the same content id is not used."""
    chunks, content, raw = _content(17)
    file_hash = blake3(content).hexdigest()
    _, lie_content, lie = _content(18)
    assert len(lie_content) == len(content)
    liar = _file_op("p.bin", file_hash, len(content)) | {"chunks": base64.b64encode(lie).decode()}
    answer = httpx.post(
        f"{server.url}{API}/clients/mallory/ops",
        json={"ops": [liar]},
        headers=_headers(server),
        timeout=30,
    )
    assert answer.json()["results"] == [{"status": "missing", "all": True}], answer.text
    bare = _file_op("p.bin", file_hash, len(content))
    assert _ops(server, bare) == [{"status": "resend"}]  # nothing kept for this client
    honest = bare | {"chunks": base64.b64encode(raw).decode()}
    assert _ops(server, honest) == [{"status": "missing", "all": True}]
    pack = b"".join(encode_record(blake3(c).hexdigest(), c, compressed=False) for c in chunks)
    made = _commit(server, [bare], pack)  # no list: the one kept for this client
    assert made.json()["results"][0]["status"] == "done", made.text
    assert (server.root / CLIENT / "p.bin").read_bytes() == content
