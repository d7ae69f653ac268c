"""Reading files ahead of sending them: chunked and hashed by two threads, a bounded way
ahead, unchanged ones taken from the index."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from homekeep.sync.client.index import ClientIndex
from homekeep.sync.client.scan import Local
from homekeep.sync.wire.chunking import Digest, FileChanged, digest_file

READ_AHEAD_FILES = 2000
READ_AHEAD_BYTES = 64 << 20  # a small file read ahead keeps its content until sent

Read = tuple[Digest | None, Local, str | None]  # digest, the file as read, what went wrong


def read_file(root: Path, spill_dir: Path, path: str, entry: Local) -> Read:
    """Chunk and hash one file (on a reader thread); nothing shared is touched here."""
    for attempt in range(3):
        try:
            digest = digest_file(
                root / path,
                expect_size=entry.size,
                expect_mtime_ns=entry.mtime_ns,
                spill_dir=spill_dir,
            )
        except FileChanged:
            time.sleep(0.1 * (attempt + 1))
            try:
                st = (root / path).lstat()
            except OSError:
                return None, entry, None
            entry = Local("file", st.st_size, st.st_mtime_ns, entry.mode, st.st_ino)
            continue
        except OSError as exc:
            return None, entry, exc.strerror or str(exc)
        return digest, entry, None
    return None, entry, "unstable"


def read_ahead(
    root: Path, index: ClientIndex, paths: list[str], local: dict[str, Local]
) -> Iterator[Read]:
    """The digests of ``paths`` in order, read by two threads a bounded way ahead.

    Reading the next files (FastCDC and BLAKE3 release the GIL) overlaps sending the
    current batch; at most READ_AHEAD_FILES files or READ_AHEAD_BYTES are held. Files
    unchanged since they were last read come from the index, 500 to a query (on the
    caller's thread: the index is not touched by the readers).
    """
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="read") as pool:
        ahead: deque[tuple[Future[Read], int]] = deque()
        held = nxt = looked = 0
        cached: dict[str, Digest] = {}
        try:
            while True:
                while (
                    nxt < len(paths)
                    and len(ahead) < READ_AHEAD_FILES
                    and (held < READ_AHEAD_BYTES or not ahead)
                ):
                    if nxt >= looked:
                        looked = nxt + 500
                        cached = index.cached_many(paths[nxt:looked], local)
                    path = paths[nxt]
                    nxt += 1
                    entry = local[path]
                    if path in cached:
                        done: Future[Read] = Future()
                        done.set_result((cached[path], entry, "cached"))
                        ahead.append((done, 0))
                    else:
                        reading = pool.submit(read_file, root, index.lists, path, entry)
                        ahead.append((reading, entry.size))
                        held += entry.size
                if not ahead:
                    return
                future, size = ahead.popleft()
                held -= size
                yield future.result()
        finally:
            for future, _ in ahead:
                future.cancel()
