"""What the sync server's threads share, used from many threads at once, gives right answers."""

from __future__ import annotations

import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zstandard
from blake3 import blake3

from homekeep.sync.server.target import Target
from homekeep.sync.wire.pack import encode_record
from homekeep.sync.wire.protocol import CHUNK_MAX

THREADS = 4
ROUNDS = 30


def _source_chunks(count: int) -> list[bytes]:
    """Real text (the running Python's own standard library), one module per chunk."""
    found: list[bytes] = []
    for path in sorted(Path(sysconfig.get_path("stdlib")).glob("*.py")):
        data = path.read_bytes()[:CHUNK_MAX]
        if len(data) > 4096:
            found.append(data)
        if len(found) == count:
            break
    assert len(found) == count, "the standard library has fewer modules than the test needs"
    return found


def test_compressed_chunks_verified_by_many_threads_at_once(tmp_path: Path) -> None:
    """Two batches in flight and a server thread pool verify packs at once (issue 11): each
    thread must get its own chunks back, never "not valid zstd" from a shared context."""
    chunks = _source_chunks(THREADS * 8)
    cctx = zstandard.ZstdCompressor(level=3)
    packs = []
    for t in range(THREADS):
        mine = chunks[t * 8 : (t + 1) * 8]
        packs.append(
            (
                b"".join(
                    encode_record(blake3(c).hexdigest(), cctx.compress(c), compressed=True)
                    for c in mine
                ),
                mine,
            )
        )
    store = Target(tmp_path / "target")
    start = threading.Barrier(THREADS)

    def verify(pack: bytes) -> list[list[bytes]]:
        start.wait()
        return [[data for _, data, _ in store.chunks.verify(pack, "laptop")] for _ in range(ROUNDS)]

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(verify, [pack for pack, _ in packs]))
    finally:
        store.close()
    for (_, mine), rounds in zip(packs, answers, strict=True):
        assert all(got == mine for got in rounds)
