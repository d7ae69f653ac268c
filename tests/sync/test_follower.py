"""The server chunks a streamed upload as it arrives: the same chunks as reading it after."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from homekeep.sync.wire.chunking import Digest, FileChanged, Follower, digest_file


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chunks_taken_while_written_equal_chunks_read_after(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(6 * 1024 * 1024 + rng.randrange(100_000))
    path = tmp_path / "upload"
    result: dict[str, Digest] = {}
    with path.open("wb") as out:
        follower = Follower(path)
        reader = threading.Thread(target=lambda: result.update(d=follower.digest()))
        reader.start()
        pos = 0
        while pos < len(data):  # writes of odd sizes, as parts arrive from the network
            part = data[pos : pos + rng.choice([1, 777, 65_536, 1 << 20])]
            out.write(part)
            out.flush()
            pos += len(part)
            follower.publish(pos)
    follower.publish(pos, done=True)
    reader.join(timeout=30)
    st = path.stat()
    expected = digest_file(path, expect_size=st.st_size, expect_mtime_ns=st.st_mtime_ns)
    assert result["d"] == expected
    assert len(expected.chunks) > 20


def test_an_aborted_upload_stops_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    errors: list[BaseException] = []
    with path.open("wb") as out:
        follower = Follower(path)

        def read() -> None:
            try:
                follower.digest()
            except FileChanged as exc:
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        out.write(os.urandom(1000))
        out.flush()
        follower.publish(1000)
        follower.abort()
        reader.join(timeout=10)
    assert not reader.is_alive()
    assert len(errors) == 1
