"""The chunk list of a huge file, kept out of memory: from the builder to the wire and back.

Covered here:

- ``ChunkListBuilder`` past its ``spill`` gives a ``ListFile`` (an unnamed temp file) that
  reads exactly like a ``ChunkList`` of the same entries: length, size, ids, offsets,
  entries, slices, windows, parts; ``ListFile.save``/``ListFile.open`` round-trip, and a
  file that is not a whole number of 36-byte entries is refused with OSError.
- ``ListReceiver`` takes a list in pieces of any size and refuses zero or oversized
  lengths, a truncated entry, a total other than the size, and more entries than the size
  allows.
- ``make_delta``/``apply_delta`` between two ``ListFile`` of 20,000 entries (five 4,096
  windows) rebuild the new list for inserts, appends, deletions and replacements, and a
  small edit stays a small delta; ``literals`` gives None when too much changed.
- ``PUT /api/sync/v1/clients/{client}/lists/{hash}?size=N`` against a real server: tokens,
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
import io
import json
import os
import random
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.core.errors import InvalidInput
from homekeep.sync.protocol import (
    CHUNK_MAX,
    CHUNK_MIN,
    ENTRY_BYTES,
    SPILL,
    WINDOW,
    ChunkList,
    ChunkListBuilder,
    Chunks,
    Delta,
    ListFile,
    ListReceiver,
    apply_delta,
    encode_record,
    make_delta,
)
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

API = "/api/sync/v1"
CLIENT = "c"
MiB = 1 << 20
KiB = 1 << 10
BIG = 200 * MiB
N = 20_000  # entries of the long lists in the delta tests: five windows
_ENTRY = struct.Struct(">32sI")


# -- helpers ---------------------------------------------------------------------------------


def _raw(count: int, seed: int, *, length: int | None = None) -> bytes:
    """``count`` packed entries with distinct ids (seeded) and lengths in 1..CHUNK_MAX."""
    rng = random.Random(seed)
    out = bytearray()
    for i in range(count):
        chunk_id = blake3(f"{seed}:{i}".encode()).digest()
        out += _ENTRY.pack(chunk_id, length if length is not None else rng.randint(1, CHUNK_MAX))
    return bytes(out)


def _entries(raw: bytes) -> list[bytes]:
    return [raw[i : i + ENTRY_BYTES] for i in range(0, len(raw), ENTRY_BYTES)]


def _total(raw: bytes) -> int:
    return sum(length for _, length in _ENTRY.iter_unpack(raw))


def _bytes(chunks: Chunks) -> bytes:
    return b"".join(chunks.slices())


def _close(*lists: Chunks | None) -> None:
    for chunks in lists:
        if isinstance(chunks, ListFile):
            chunks.close()


def _literals(delta: Delta) -> int:
    """How many new entries a delta carries."""
    return sum(
        len(base64.b64decode(item)) // ENTRY_BYTES for item in delta if isinstance(item, str)
    )


Spill = Callable[[bytes], ListFile]


@pytest.fixture
def spill(tmp_path: Path) -> Iterator[Spill]:
    """Build a ListFile from packed entries (a builder spilling past 4 entries); closed after."""
    made: list[ListFile] = []

    def build(raw: bytes) -> ListFile:
        builder = ChunkListBuilder(tmp_path, spill=4)
        builder.extend(raw)
        built = builder.done()
        assert isinstance(built, ListFile), built
        made.append(built)
        return built

    yield build
    _close(*made)


# -- ChunkListBuilder and ListFile -----------------------------------------------------------


@pytest.mark.parametrize(("count", "spilled"), [(0, False), (4, False), (5, True), (10, True)])
def test_a_builder_spills_to_a_file_only_past_its_limit(
    tmp_path: Path, count: int, spilled: bool
) -> None:
    raw = _raw(count, 1)
    builder = ChunkListBuilder(tmp_path, spill=4)
    builder.extend(raw)
    assert len(builder) == count
    built = builder.done()
    try:
        assert isinstance(built, ListFile) is spilled
        assert _bytes(built) == raw
        assert built.size() == _total(raw)
    finally:
        _close(built)
    assert list(tmp_path.iterdir()) == []  # the spill file has no name


def test_a_list_file_reads_exactly_like_a_chunk_list(spill: Spill, tmp_path: Path) -> None:
    raw = _raw(10, 2)
    listed, packed = spill(raw), ChunkList(raw)
    assert len(listed) == len(packed) == 10
    assert listed.size() == packed.size() == _total(raw)
    assert list(listed.ids()) == list(packed.ids())
    assert list(listed.offsets()) == list(packed.offsets())
    assert list(listed.entries()) == list(packed.entries())
    assert list(listed) == list(packed)
    assert [listed.entry(i) for i in range(10)] == [packed.entry(i) for i in range(10)]
    for count in (1, 3, 4, 10, 11):
        assert list(listed.slices(count)) == list(packed.slices(count)), count
        assert [w.raw for w in listed.windows(count)] == [
            bytes(w.raw) for w in packed.windows(count)
        ], count
    assert b"".join(listed.slices()) == raw  # one default window
    for start, count in [(0, 10), (2, 5), (9, 1), (8, 5), (10, 3), (0, 0)]:
        assert listed.part(start, count) == packed.part(start, count), (start, count)
    offsets = list(listed.offsets())
    assert offsets[0][1] == 0
    assert offsets[-1][1] + offsets[-1][2] == listed.size()
    assert list(tmp_path.iterdir()) == []


def test_a_long_list_file_is_read_in_windows_of_4096(tmp_path: Path) -> None:
    raw = _raw(3 * WINDOW + 5, 3)
    builder = ChunkListBuilder(tmp_path)  # the real SPILL
    builder.extend(raw)
    built = builder.done()
    try:
        assert isinstance(built, ListFile)
        assert len(built) == 3 * WINDOW + 5 > SPILL
        assert [len(w) for w in built.windows()] == [WINDOW, WINDOW, WINDOW, 5]
        assert [w.raw for w in built.windows()] == [bytes(w.raw) for w in ChunkList(raw).windows()]
        assert built.size() == _total(raw)
        assert list(built.offsets()) == list(ChunkList(raw).offsets())
        assert (
            built.part(WINDOW - 2, 4)
            == raw[(WINDOW - 2) * ENTRY_BYTES : (WINDOW + 2) * ENTRY_BYTES]
        )
    finally:
        _close(built)


def test_a_list_file_saved_opens_the_same(spill: Spill, tmp_path: Path) -> None:
    raw = _raw(WINDOW + 7, 4)  # more than one window to write
    listed = spill(raw)
    saved = tmp_path / "kept"
    saved.mkdir()
    target = saved / ("ab" * 32)
    listed.save(target)
    assert [p.name for p in saved.iterdir()] == [target.name]  # no temp name left
    assert target.read_bytes() == raw
    reopened = ListFile.open(target)
    try:
        assert len(reopened) == len(listed)
        assert reopened.size() == listed.size()
        assert _bytes(reopened) == raw
        assert list(reopened.offsets()) == list(listed.offsets())
    finally:
        reopened.close()
    listed.save(target)  # saving again over it is fine
    assert target.read_bytes() == raw


def test_an_empty_list_file_opens_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    listed = ListFile.open(path)
    try:
        assert len(listed) == 0
        assert listed.size() == 0
        assert list(listed.ids()) == []
    finally:
        listed.close()


@pytest.mark.parametrize("length", [1, 35, 37, 3 * 36 + 1, 100 * 36 - 1])
def test_a_list_file_that_is_not_whole_entries_is_refused(tmp_path: Path, length: int) -> None:
    path = tmp_path / "broken"
    path.write_bytes(b"\x01" * length)
    with pytest.raises(OSError, match="whole number"):
        ListFile.open(path)


def test_a_list_file_that_is_gone_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ListFile.open(tmp_path / "nowhere")


# -- ListReceiver ----------------------------------------------------------------------------


def _receive(raw: bytes, size: int, pieces: tuple[int, ...] = (1, 7, 35, 100)) -> BinaryIO:
    out = io.BytesIO()
    receiver = ListReceiver(out, size)
    pos = i = 0
    while pos < len(raw):
        step = pieces[i % len(pieces)]
        receiver.feed(raw[pos : pos + step])
        pos += step
        i += 1
    receiver.finish()
    assert receiver.total == size
    assert receiver.count == len(raw) // ENTRY_BYTES
    return out


@pytest.mark.parametrize(
    "pieces", [(1, 7, 35, 100), (36,), (35,), (37,), (1,), (1 << 20,)], ids=str
)
def test_a_receiver_takes_a_list_in_pieces_of_any_size(pieces: tuple[int, ...]) -> None:
    raw = _raw(60, 5)
    out = _receive(raw, _total(raw), pieces)
    assert isinstance(out, io.BytesIO)
    assert out.getvalue() == raw


def test_a_receiver_takes_empty_pieces() -> None:
    raw = _raw(3, 6)
    out = io.BytesIO()
    receiver = ListReceiver(out, _total(raw))
    for part in (b"", raw[:50], b"", raw[50:], b""):
        receiver.feed(part)
    receiver.finish()
    assert out.getvalue() == raw


def test_a_receiver_takes_exactly_as_many_entries_as_the_size_allows() -> None:
    size = 3 * CHUNK_MIN  # at most 3 + 2 entries: the last chunk of a file may be short
    lengths = [CHUNK_MIN - 1, CHUNK_MIN - 1, CHUNK_MIN - 1, 2, 1]
    raw = b"".join(_ENTRY.pack(bytes([i]) * 32, n) for i, n in enumerate(lengths))
    assert _total(raw) == size
    assert isinstance(_receive(raw, size), io.BytesIO)


def _pack(*lengths: int) -> bytes:
    return b"".join(
        _ENTRY.pack(blake3(i.to_bytes(4, "big")).digest(), n) for i, n in enumerate(lengths)
    )


_BAD_LISTS: list[tuple[str, bytes, int]] = [
    ("zero-length", _pack(1000, 0, 1000), 2000),
    ("over-max", _pack(1000, CHUNK_MAX + 1), 1000 + CHUNK_MAX + 1),
    ("over-max-huge", _pack(0xFFFFFFFF), 0xFFFFFFFF),
    ("truncated-last", _pack(1000, 1000, 1000)[:-1], 3000),
    ("half-an-entry", _pack(1000)[:20], 1000),
    ("total-short", _pack(1000, 2000), 3001),
    ("total-over", _pack(1000, 2001), 3000),
    ("empty", b"", 1),
    ("too-many", _pack(*[1] * 4), CHUNK_MIN),  # 4 bytes, but at most 8192 // 8192 + 2 entries
    ("too-many-long", _pack(*[2] * 1000), CHUNK_MIN * 5),
]


@pytest.mark.parametrize(
    ("raw", "size"), [(r, s) for _, r, s in _BAD_LISTS], ids=[i for i, _, _ in _BAD_LISTS]
)
def test_a_receiver_refuses_a_bad_list(raw: bytes, size: int) -> None:
    for pieces in [(1, 7, 35, 100), (len(raw) or 1,)]:
        with pytest.raises(InvalidInput):
            _receive(raw, size, pieces)


def test_a_receiver_writes_nothing_of_a_refused_piece() -> None:
    good = _pack(1000, 1000)
    out = io.BytesIO()
    receiver = ListReceiver(out, 10_000)
    receiver.feed(good)
    with pytest.raises(InvalidInput):
        receiver.feed(_pack(0))
    assert out.getvalue() == good


# -- make_delta / apply_delta between ListFiles ------------------------------------------------


def _splice(raw: bytes, at: int, drop: int, insert: bytes) -> bytes:
    entries = _entries(raw)
    return b"".join(entries[:at]) + insert + b"".join(entries[at + drop :])


_NEW = _raw(6000, 99)  # entries the old list does not have


def _fresh(count: int) -> bytes:
    return _NEW[: count * ENTRY_BYTES]


# name: (new list from old, new entries carried (None: not checked), most items (None: any))
_EDITS: dict[str, tuple[Callable[[bytes], bytes], int | None, int | None]] = {
    "insert-one-middle": (lambda r: _splice(r, 10_001, 0, _fresh(1)), 1, 3),
    "insert-one-at-a-window-edge": (lambda r: _splice(r, 2 * WINDOW, 0, _fresh(1)), 1, 3),
    "insert-one-first": (lambda r: _splice(r, 0, 0, _fresh(1)), 1, 2),
    "insert-more-than-a-window": (lambda r: _splice(r, 7_000, 0, _fresh(5000)), 5000, 3),
    "append": (lambda r: r + _fresh(700), 700, 2),
    "delete-middle": (lambda r: _splice(r, 12_000, 100, b""), 0, 2),
    "delete-head": (lambda r: _splice(r, 0, 50, b""), 0, 1),
    "truncate": (lambda r: r[: 15_000 * ENTRY_BYTES], 0, 1),
    "replace-across-windows": (lambda r: _splice(r, WINDOW - 1, 2, _fresh(2)), 2, 3),
    "unchanged": (lambda r: r, 0, 1),
    "delete-more-than-two-windows": (lambda r: _splice(r, 5_000, 3 * WINDOW, b""), None, None),
    "swap-halves": (lambda r: r[N // 2 * ENTRY_BYTES :] + r[: N // 2 * ENTRY_BYTES], None, None),
    "all-new": (lambda r: _raw(N, 77), N, None),
}

_OLD = _raw(N, 7, length=32 * KiB)


@pytest.mark.parametrize("edit", list(_EDITS))
def test_a_delta_between_list_files_rebuilds_the_new_list(
    spill: Spill, tmp_path: Path, edit: str
) -> None:
    change, carried, items = _EDITS[edit]
    new_raw = change(_OLD)
    old, new = spill(_OLD), spill(new_raw)
    delta = make_delta(old, new)
    assert delta is not None
    json.dumps(delta)  # it travels in an op
    if carried is not None:
        assert _literals(delta) == carried, delta if len(delta) < 10 else len(delta)
    if items is not None:
        assert len(delta) <= items, delta
    rebuilt = apply_delta(old, delta, max_chunks=2 * N, spill_dir=tmp_path)
    try:
        assert _bytes(rebuilt) == new_raw
        assert len(rebuilt) == len(new_raw) // ENTRY_BYTES
        assert isinstance(rebuilt, ListFile) is (len(rebuilt) > SPILL)
    finally:
        _close(rebuilt)
    assert list(tmp_path.iterdir()) == []


def test_a_one_entry_insert_is_a_tiny_delta(spill: Spill) -> None:
    new_raw = _splice(_OLD, N // 2, 0, _fresh(1))
    delta = make_delta(spill(_OLD), spill(new_raw))
    assert delta == [[0, N // 2], ChunkList(_fresh(1)).encode(), [N // 2, N - N // 2]]
    assert len(json.dumps(delta)) < 120  # against 720 KB for the whole list


def test_a_delta_with_too_many_new_entries_is_none(spill: Spill) -> None:
    old = spill(_OLD)
    assert make_delta(old, spill(_raw(N, 78)), literals=10) is None
    assert make_delta(old, spill(_raw(11, 79)), literals=10) is None
    assert make_delta(old, spill(_raw(10, 80)), literals=10) is not None
    one = spill(_splice(_OLD, 3, 0, _fresh(1)))
    assert make_delta(old, one, literals=1) is not None
    assert make_delta(old, one, literals=0) is None
    assert make_delta(old, old, literals=0) == [[0, N]]


def test_a_delta_against_a_list_file_is_refused_past_max_chunks(
    spill: Spill, tmp_path: Path
) -> None:
    old = spill(_OLD)
    with pytest.raises(InvalidInput):
        apply_delta(old, [[0, N], [0, N]], max_chunks=N + 10, spill_dir=tmp_path)
    with pytest.raises(InvalidInput):
        apply_delta(old, [[1, N]], max_chunks=2 * N, spill_dir=tmp_path)  # past the end
    assert list(tmp_path.iterdir()) == []


_REFS = st.lists(
    st.tuples(st.integers(0, 11), st.integers(1, 3)).map(
        lambda t: _ENTRY.pack(blake3(bytes([t[0]])).digest(), 100 * t[1])
    ),
    max_size=40,
).map(b"".join)


def _built(raw: bytes) -> Chunks:
    builder = ChunkListBuilder(None, spill=0)  # any entry at all: a ListFile
    builder.extend(raw)
    return builder.done()


@settings(max_examples=300, deadline=None)
@given(_REFS, _REFS)
def test_any_delta_between_list_files_rebuilds_the_new_list(old_raw: bytes, new_raw: bytes) -> None:
    old, new = _built(old_raw), _built(new_raw)
    rebuilt: Chunks | None = None
    try:
        delta = make_delta(old, new)
        assert delta is not None
        rebuilt = apply_delta(old, delta, max_chunks=100)
        assert _bytes(rebuilt) == new_raw
        assert _literals(delta) <= len(new_raw) // ENTRY_BYTES
    finally:
        _close(old, new, rebuilt)


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
_LIST = _pack(5000, 6000, 7000)


@BAD_TOKENS
def test_a_list_needs_a_sync_token(server: SyncServer, token: str, status: int) -> None:
    token = bad_token(server, token, "lists-music")
    before = _lists(server)
    api_error(_put(server, _HASH, _total(_LIST), _LIST, token=token), status)
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
    assert api_error(_put(server, file_hash, _total(_LIST), _LIST), 422) == "invalid_input"
    _left_clean(server, before)


@pytest.mark.parametrize("size", [None, 0, -1, (1 << 50) + 1, 1 << 63, "ten", "1.5", ""])
def test_a_list_with_a_bad_size_is_refused(server: SyncServer, size: int | str | None) -> None:
    before = _lists(server)
    assert api_error(_put(server, _HASH, size, _LIST), 422) == "invalid_input"
    _left_clean(server, before)


@pytest.mark.parametrize("client", ["..", ".hidden", "sp ace", "x" * 65])
def test_a_list_for_a_bad_client_name_is_refused(server: SyncServer, client: str) -> None:
    before = _lists(server)
    response = _put(server, _HASH, _total(_LIST), _LIST, client=client)
    assert response.status_code in (404, 422), response.text
    _left_clean(server, before)


@pytest.mark.parametrize(
    ("raw", "size"), [(r, s) for _, r, s in _BAD_LISTS], ids=[i for i, _, _ in _BAD_LISTS]
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
    part = _ENTRY.pack(b"\x07" * 32, entry_length) * 1000
    before = _lists(server)
    count = 64
    response = _put(server, _HASH, size, _endless(part, count))
    assert api_error(response, 422) == "invalid_input"
    _left_clean(server, before)


def test_a_client_hanging_up_mid_list_leaves_nothing(server: SyncServer) -> None:
    before = _lists(server)
    raw = _pack(*[CHUNK_MIN] * 2000)
    parts = urlsplit(server.url)
    head = (
        f"PUT {API}/clients/{CLIENT}/lists/{_HASH}?size={_total(raw)} HTTP/1.1\r\n"
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
    raw = b"".join(_ENTRY.pack(blake3(c).digest(), len(c)) for c in chunks)
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
    longer = _pack(100_000, len(content) + 5 - 100_000)
    assert _put(server, file_hash, len(content) + 5, longer).status_code == 200
    assert _ops(server, _file_op("again.bin", file_hash, len(content))) == [{"status": "resend"}]
    assert _put(server, file_hash, len(content), raw).status_code == 200
    assert (server.root / ".homekeep-sync/lists" / f"{CLIENT}.{file_hash}").read_bytes() == raw
    answer = _ops(server, _file_op("again.bin", file_hash, len(content)))
    assert answer == [{"status": "missing", "all": True}]


def test_the_server_still_takes_lists_after_the_abuse(server: SyncServer) -> None:
    """A list past SPILL and over the 1 MiB request limit (a huge file's list is bounded by
    the file's size, not by the request limit), streamed in parts."""
    raw = _raw(30_000, 14, length=CHUNK_MIN)
    assert len(raw) > MiB
    file_hash = blake3(b"after the abuse").hexdigest()
    parts = (raw[i : i + 100_000] for i in range(0, len(raw), 100_000))
    response = _put(server, file_hash, _total(raw), parts)
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


def test_a_short_delta_cannot_copy_a_list_many_times_over(spill: Spill) -> None:
    """Six bytes of delta per run could otherwise make gigabytes of temp file."""
    old = spill(_raw(5000, 21))
    with pytest.raises(InvalidInput, match="too many times"):
        apply_delta(old, [[0, 5000]] * 10, max_chunks=1 << 40)
    with pytest.raises(InvalidInput, match="more than the file's size"):
        apply_delta(old, [[0, 5000]] * 2, max_chunks=1 << 40, max_size=old.size())
    twice = apply_delta(old, [[0, 5000]] * 2, max_chunks=1 << 40, max_size=2 * old.size())
    assert len(twice) == 10_000
    _close(old, twice)


def test_a_delta_of_content_repeated_many_times_is_none(spill: Spill) -> None:
    raw = _raw(2000, 22)
    old, new = spill(raw), spill(raw * 8)
    assert make_delta(old, new) is None  # the whole list is sent instead
    assert make_delta(old, spill(raw * 2)) is not None
    _close(old, new)


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
