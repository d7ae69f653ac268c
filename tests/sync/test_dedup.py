"""Dedup as a user measures it: data bytes on the wire for copies, inserts, appends, restarts."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from tests.sync.helpers import SyncServer, push, small_limit_server, snapshot, sync_server

MiB = 1 << 20


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_copy_of_a_file_sends_no_data(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "photo.raw").write_bytes(_random(5 * MiB, 1))
    first = push(src, server, "copy")
    assert first["data_bytes_sent"] >= 5 * MiB * 0.99
    shutil.copy2(src / "photo.raw", src / "photo copy.raw")
    summary = push(src, server, "copy")
    assert summary["data_bytes_sent"] == 0
    assert summary["deduplicated"] == 1
    assert snapshot(server.root / "copy") == snapshot(src)


@pytest.mark.parametrize("shared", [False, True])
def test_another_client_with_the_same_file_sends_no_data_when_dedup_is_shared(
    tmp_path: Path, shared: bool
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    data = _random(3 * MiB, 2)
    (one / "shared.iso").write_bytes(data)
    (two / "same.iso").write_bytes(data)
    env = {"HOMEKEEP_SYNC_DEDUP_ACROSS_CLIENTS": str(shared).lower()}
    with sync_server(tmp_path, env=env) as server:
        push(one, server, "alice")
        summary = push(two, server, "bob")
        assert (server.root / "bob/same.iso").read_bytes() == data
    if shared:
        assert summary["data_bytes_sent"] == 0
    else:  # each client's content is its own: bob sends it all
        assert summary["data_bytes_sent"] >= len(data) * 0.99


@pytest.mark.parametrize("size", [6 * MiB, 300 * 1024])
def test_files_with_the_same_content_in_one_push_send_it_once(
    server: SyncServer, tmp_path: Path, size: int
) -> None:
    """Streamed whole (6 MiB) or in a commit (300 KiB): the second and third copies are made
    on the server from the first, not sent again."""
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    data = _random(size, size)  # a seed of its own: no chunk the server has
    for rel in ("one.bin", "a/two.bin", "a/b/three.bin"):
        (src / rel).write_bytes(data)
    summary = push(src, server, f"twice-{size}")
    assert size * 0.99 <= summary["data_bytes_sent"] <= size * 1.05
    assert summary["deduplicated"] == 2
    assert snapshot(server.root / f"twice-{size}") == snapshot(src)


def test_insert_in_the_middle_of_64_mib_sends_under_256_kib(
    server: SyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = _random(64 * MiB, 3)
    (src / "disk.img").write_bytes(data)
    push(src, server, "insert")
    middle = 32 * MiB + 12345
    (src / "disk.img").write_bytes(data[:middle] + b"a few inserted bytes" + data[middle:])
    summary = push(src, server, "insert")
    assert summary["data_bytes_sent"] < 256 * 1024
    assert summary["wire_bytes"] < 320 * 1024  # the chunk list travels as a delta
    assert snapshot(server.root / "insert") == snapshot(src)


def test_append_sends_about_the_appended_bytes(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    log = src / "app.log"
    log.write_bytes(_random(8 * MiB, 4))
    push(src, server, "append")
    with log.open("ab") as fh:
        fh.write(_random(MiB, 5))
    summary = push(src, server, "append")
    assert MiB * 0.9 <= summary["data_bytes_sent"] <= MiB + 256 * 1024
    assert snapshot(server.root / "append") == snapshot(src)


def test_compressible_data_travels_compressed(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "text.csv").write_bytes(b"id,name,amount\n" + b"42,widget,19.99\n" * 200_000)
    summary = push(src, server, "zstd")
    assert 0 < summary["data_bytes_sent"] < 3_200_000 / 10
    assert snapshot(server.root / "zstd") == snapshot(src)


def test_restart_reads_nothing_unchanged_and_many_small_files_go_in_batches(
    server: SyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for i in range(1500):
        path = src / f"d{i % 15}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n" * (i % 7 + 1))
    first = push(src, server, "small")
    assert first["files_sent"] == 1500
    # batches: a few requests per thousand files, not one per file
    assert first["requests"] <= 12
    assert snapshot(server.root / "small") == snapshot(src)
    again = push(src, server, "small")
    assert again["bytes_read"] == 0
    assert again["files_sent"] == 0
    assert again["data_bytes_sent"] == 0
    (src / "d3/f3.txt").write_text("edited\n")
    third = push(src, server, "small")
    assert third["files_sent"] == 1
    assert third["bytes_read"] == len("edited\n")


def test_big_file_is_streamed_and_its_server_copy_is_exact(
    server: SyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with (src / "big.bin").open("wb") as fh:
        for i in range(24):
            fh.write(_random(MiB, 100 + i) if i % 3 else b"\0" * MiB)
    summary = push(src, server, "big")
    assert summary["files_sent"] == 1
    assert snapshot(server.root / "big") == snapshot(src)
    leftovers = list((server.root / ".homekeep-sync/staging").iterdir())
    assert leftovers == []
    os.truncate(src / "big.bin", 10 * MiB)
    summary = push(src, server, "big")
    assert summary["data_bytes_sent"] < 256 * 1024
    assert snapshot(server.root / "big") == snapshot(src)


def test_a_server_with_a_small_request_limit_gets_requests_that_fit(tmp_path: Path) -> None:
    """Commits and staged packs shrink to the server's limit (here 1 MiB): nothing is 413."""
    src = tmp_path / "src"
    for i in range(300):
        path = src / f"small/{i % 7}/{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_random(100 + i * 37, i))
    big = src / "big.bin"
    data = bytearray(_random(3 * MiB + MiB // 2, 99))
    big.write_bytes(data)
    with small_limit_server(tmp_path / "server") as srv:
        first = push(src, srv, "tight")
        assert first["files_sent"] == 301
        assert not first["errors"]
        data[MiB : MiB + 3 * MiB // 2] = _random(3 * MiB // 2, 100)  # 1.5 MiB rewritten
        big.write_bytes(data)
        second = push(src, srv, "tight")
        assert second["files_sent"] == 1
        assert not second["errors"]
        assert MiB < second["data_bytes_sent"] < 2 * MiB
        assert snapshot(srv.root / "tight") == snapshot(src)


def test_a_copy_is_never_made_from_a_file_changed_behind_the_index(
    server: SyncServer, tmp_path: Path
) -> None:
    """Same size and mtime, other content (a crash between placing and recording can leave
    that): the copy is checked by its hash, and the data is sent instead."""
    src = tmp_path / "src"
    src.mkdir()
    original = _random(300_000, 41)
    (src / "a.bin").write_bytes(original)
    push(src, server, "behind")
    stored = server.root / "behind" / "a.bin"
    st = stored.stat()
    stored.write_bytes(_random(300_000, 42))  # what the index does not know
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.copy2(src / "a.bin", src / "b.bin")
    summary = push(src, server, "behind")
    assert summary["files_sent"] == 1
    assert summary["data_bytes_sent"] >= 300_000  # not deduplicated from the changed file
    assert (server.root / "behind" / "b.bin").read_bytes() == original


def test_a_copy_keeps_the_chunk_rows_of_its_source_as_stored(tmp_path: Path) -> None:
    """A copy is the same bytes: it gets its source's chunk index rows, offsets and all,
    even when one of them was dropped (a chunk that could not be read there once)."""
    import sqlite3

    def rows(index: Path, path: str) -> list[tuple[str, int, int]]:
        with sqlite3.connect(index) as db:
            found = db.execute(
                "SELECT c.hash, c.offset, c.length FROM chunks c JOIN entries e"
                " ON e.id = c.entry_id WHERE e.path = ? ORDER BY c.offset",
                (path,),
            ).fetchall()
        db.close()
        return [(str(h), int(o), int(n)) for h, o, n in found]

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(_random(3 * MiB, 31))
    with sync_server(tmp_path) as srv:
        push(src, srv)
        index = srv.root / ".homekeep-sync/index.sqlite"
        original = rows(index, "a.bin")
        assert len(original) > 10
        shutil.copy2(src / "a.bin", src / "b.bin")
        assert push(src, srv)["deduplicated"] == 1
        assert rows(index, "b.bin") == original
        with sqlite3.connect(index) as db:  # one row dropped, as ChunkStore.drop does
            db.execute(
                "DELETE FROM chunks WHERE offset = ? AND entry_id ="
                " (SELECT id FROM entries WHERE path = 'b.bin')",
                (original[3][1],),
            )
        db.close()
        shutil.copy2(src / "b.bin", src / "c.bin")
        assert push(src, srv)["data_bytes_sent"] == 0
        copied = rows(index, "c.bin")
        assert copied in (original, original[:3] + original[4:])
        assert snapshot(srv.root / "laptop") == snapshot(src)
