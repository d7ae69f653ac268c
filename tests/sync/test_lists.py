"""The chunk list of a huge file, kept out of memory: the builder, the list file, the
receiver and the deltas between lists (units and properties; the server side is in
test_lists_server.py).

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
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.core.errors import InvalidInput
from homekeep.sync.wire.chunklist import (
    ENTRY_BYTES,
    SPILL,
    WINDOW,
    ChunkList,
    ChunkListBuilder,
    Chunks,
    ListFile,
    ListReceiver,
)
from homekeep.sync.wire.delta import apply_delta, make_delta
from homekeep.sync.wire.protocol import CHUNK_MIN
from tests.sync.listdata import (
    BAD_LISTS,
    ENTRY,
    Spill,
    close_lists,
    entries_of,
    joined,
    literals_of,
    packed,
    raw_entries,
    total_of,
)

MiB = 1 << 20
KiB = 1 << 10
N = 20_000  # entries of the long lists in the delta tests: five windows


# -- ChunkListBuilder and ListFile -----------------------------------------------------------


@pytest.mark.parametrize(("count", "spilled"), [(0, False), (4, False), (5, True), (10, True)])
def test_a_builder_spills_to_a_file_only_past_its_limit(
    tmp_path: Path, count: int, spilled: bool
) -> None:
    raw = raw_entries(count, 1)
    builder = ChunkListBuilder(tmp_path, spill=4)
    builder.extend(raw)
    assert len(builder) == count
    built = builder.done()
    try:
        assert isinstance(built, ListFile) is spilled
        assert joined(built) == raw
        assert built.size() == total_of(raw)
    finally:
        close_lists(built)
    assert list(tmp_path.iterdir()) == []  # the spill file has no name


def test_a_list_file_reads_exactly_like_a_chunk_list(spill: Spill, tmp_path: Path) -> None:
    raw = raw_entries(10, 2)
    listed, packed = spill(raw), ChunkList(raw)
    assert len(listed) == len(packed) == 10
    assert listed.size() == packed.size() == total_of(raw)
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
    raw = raw_entries(3 * WINDOW + 5, 3)
    builder = ChunkListBuilder(tmp_path)  # the real SPILL
    builder.extend(raw)
    built = builder.done()
    try:
        assert isinstance(built, ListFile)
        assert len(built) == 3 * WINDOW + 5 > SPILL
        assert [len(w) for w in built.windows()] == [WINDOW, WINDOW, WINDOW, 5]
        assert [w.raw for w in built.windows()] == [bytes(w.raw) for w in ChunkList(raw).windows()]
        assert built.size() == total_of(raw)
        assert list(built.offsets()) == list(ChunkList(raw).offsets())
        assert (
            built.part(WINDOW - 2, 4)
            == raw[(WINDOW - 2) * ENTRY_BYTES : (WINDOW + 2) * ENTRY_BYTES]
        )
    finally:
        close_lists(built)


def test_a_list_file_saved_opens_the_same(spill: Spill, tmp_path: Path) -> None:
    raw = raw_entries(WINDOW + 7, 4)  # more than one window to write
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
        assert joined(reopened) == raw
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
    raw = raw_entries(60, 5)
    out = _receive(raw, total_of(raw), pieces)
    assert isinstance(out, io.BytesIO)
    assert out.getvalue() == raw


def test_a_receiver_takes_empty_pieces() -> None:
    raw = raw_entries(3, 6)
    out = io.BytesIO()
    receiver = ListReceiver(out, total_of(raw))
    for part in (b"", raw[:50], b"", raw[50:], b""):
        receiver.feed(part)
    receiver.finish()
    assert out.getvalue() == raw


def test_a_receiver_takes_exactly_as_many_entries_as_the_size_allows() -> None:
    size = 3 * CHUNK_MIN  # at most 3 + 2 entries: the last chunk of a file may be short
    lengths = [CHUNK_MIN - 1, CHUNK_MIN - 1, CHUNK_MIN - 1, 2, 1]
    raw = b"".join(ENTRY.pack(bytes([i]) * 32, n) for i, n in enumerate(lengths))
    assert total_of(raw) == size
    assert isinstance(_receive(raw, size), io.BytesIO)


@pytest.mark.parametrize(
    ("raw", "size"), [(r, s) for _, r, s in BAD_LISTS], ids=[i for i, _, _ in BAD_LISTS]
)
def test_a_receiver_refuses_a_bad_list(raw: bytes, size: int) -> None:
    for pieces in [(1, 7, 35, 100), (len(raw) or 1,)]:
        with pytest.raises(InvalidInput):
            _receive(raw, size, pieces)


def test_a_receiver_writes_nothing_of_a_refused_piece() -> None:
    good = packed(1000, 1000)
    out = io.BytesIO()
    receiver = ListReceiver(out, 10_000)
    receiver.feed(good)
    with pytest.raises(InvalidInput):
        receiver.feed(packed(0))
    assert out.getvalue() == good


# -- make_delta / apply_delta between ListFiles ------------------------------------------------


def _splice(raw: bytes, at: int, drop: int, insert: bytes) -> bytes:
    entries = entries_of(raw)
    return b"".join(entries[:at]) + insert + b"".join(entries[at + drop :])


_NEW = raw_entries(6000, 99)  # entries the old list does not have


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
    "all-new": (lambda r: raw_entries(N, 77), N, None),
}

_OLD = raw_entries(N, 7, length=32 * KiB)


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
        assert literals_of(delta) == carried, delta if len(delta) < 10 else len(delta)
    if items is not None:
        assert len(delta) <= items, delta
    rebuilt = apply_delta(old, delta, max_chunks=2 * N, spill_dir=tmp_path)
    try:
        assert joined(rebuilt) == new_raw
        assert len(rebuilt) == len(new_raw) // ENTRY_BYTES
        assert isinstance(rebuilt, ListFile) is (len(rebuilt) > SPILL)
    finally:
        close_lists(rebuilt)
    assert list(tmp_path.iterdir()) == []


def test_a_one_entry_insert_is_a_tiny_delta(spill: Spill) -> None:
    new_raw = _splice(_OLD, N // 2, 0, _fresh(1))
    delta = make_delta(spill(_OLD), spill(new_raw))
    assert delta == [[0, N // 2], ChunkList(_fresh(1)).encode(), [N // 2, N - N // 2]]
    assert len(json.dumps(delta)) < 120  # against 720 KB for the whole list


def test_a_delta_with_too_many_new_entries_is_none(spill: Spill) -> None:
    old = spill(_OLD)
    assert make_delta(old, spill(raw_entries(N, 78)), literals=10) is None
    assert make_delta(old, spill(raw_entries(11, 79)), literals=10) is None
    assert make_delta(old, spill(raw_entries(10, 80)), literals=10) is not None
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
        lambda t: ENTRY.pack(blake3(bytes([t[0]])).digest(), 100 * t[1])
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
        assert joined(rebuilt) == new_raw
        assert literals_of(delta) <= len(new_raw) // ENTRY_BYTES
    finally:
        close_lists(old, new, rebuilt)


def test_a_short_delta_cannot_copy_a_list_many_times_over(spill: Spill) -> None:
    """Six bytes of delta per run could otherwise make gigabytes of temp file."""
    old = spill(raw_entries(5000, 21))
    with pytest.raises(InvalidInput, match="too many times"):
        apply_delta(old, [[0, 5000]] * 10, max_chunks=1 << 40)
    with pytest.raises(InvalidInput, match="more than the file's size"):
        apply_delta(old, [[0, 5000]] * 2, max_chunks=1 << 40, max_size=old.size())
    twice = apply_delta(old, [[0, 5000]] * 2, max_chunks=1 << 40, max_size=2 * old.size())
    assert len(twice) == 10_000
    close_lists(old, twice)


def test_a_delta_of_content_repeated_many_times_is_none(spill: Spill) -> None:
    raw = raw_entries(2000, 22)
    old, new = spill(raw), spill(raw * 8)
    assert make_delta(old, new) is None  # the whole list is sent instead
    assert make_delta(old, spill(raw * 2)) is not None
    close_lists(old, new)
