"""The worker pool: tags read in worker processes equal those read in one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.music.conftest import Library


def test_the_process_pool_reads_the_same_as_one_process(library: Library) -> None:
    for n in range(140):  # more than two chunks: below that the scan reads in-process
        fmt = ("mp3", "flac", "vorbis", "aac")[n % 4]
        library.add(f"Pool/{n:03d}", fmt, title=f"t{n}", artist=f"A{n % 5}", album=f"B{n % 7}",
                    track=n)  # fmt: skip
    pooled = library.scan(workers=2)
    assert pooled.workers == 2
    assert pooled.counts["tags_read"] == 140
    rows = library.rows("SELECT file_id, title, artist, album, album_id FROM tracks ORDER BY 1")
    assert library.scan(full=True, workers=1).workers == 1
    assert (
        library.rows("SELECT file_id, title, artist, album, album_id FROM tracks ORDER BY 1")
        == rows
    )
    assert set(pooled.timings) == {"walk", "stat_diff", "tag_read", "artwork", "database"}


_THIS = "test_a_pool_forked_before_the_scan_reads_the_same"
ROOT = Path(__file__).resolve().parents[2]


def test_a_pool_forked_before_the_scan_reads_the_same(library: Library) -> None:
    import threading

    from homekeep.music.pool import prestart_pool

    for n in range(140):
        library.add(f"Pool/{n:03d}", "mp3", title=f"t{n}", artist="A", album="B", track=n)
    if threading.active_count() != 1:
        # a worker of pytest-xdist runs threads of its own, so the pool is refused here by
        # design: run this test again alone, in a process with one thread
        assert prestart_pool(2) is None
        alone = subprocess.run(
            [sys.executable, "-m", "pytest", f"{__file__}::{_THIS}", "-q", "-p", "no:xdist",
             "-p", "no:cacheprovider"],
            capture_output=True, text=True, timeout=240, check=False, cwd=ROOT,
        )  # fmt: skip
        assert alone.returncode == 0, alone.stdout[-3000:]
        return
    pool = prestart_pool(2)
    assert pool is not None
    try:
        worker_pids = set(pool.map(_pid, range(8)))
        stop = threading.Event()  # a second thread, as a progress display has
        drawer = threading.Thread(target=stop.wait)
        drawer.start()
        try:
            result = library.service(workers=2).scanner().scan([library.root], pool=pool)
        finally:
            stop.set()
            drawer.join()
        assert (result.workers, result.counts["tags_read"]) == (2, 140)
        assert set(pool.map(_pid, range(8))) <= worker_pids  # the same, still running
    finally:
        pool.shutdown()
    titles = {r["title"] for r in library.rows("SELECT title FROM tracks")}
    assert titles == {f"t{n}" for n in range(140)}


def _pid(_: int) -> int:
    import os
    import time

    time.sleep(0.05)  # long enough that every worker of the pool takes some of the tasks
    return os.getpid()
