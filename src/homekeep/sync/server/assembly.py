"""Assembly: a file written from its chunks (sent with the request, staged, or read back
from files the server holds), a window of its list at a time, checked against its id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from homekeep.core.errors import InvalidInput
from homekeep.sync.server import fsops
from homekeep.sync.server.batch import Batch, FileSpec, Ready, Result
from homekeep.sync.server.target import Target
from homekeep.sync.wire.chunklist import ChunkList, ChunkListBuilder, Chunks

MISSING_MAX = 32768  # chunk ids in one "missing" answer (1 GiB of data on average)


def assemble(batch: Batch, spec: FileSpec, chunks: Chunks, action: str, *, keep: bool) -> Result:
    """Write the file from its chunks into a temp file the batch places; or answer which
    chunks are gone (none is written then)."""
    target = batch.target
    tmp = target.temp_name()
    handles: dict[Path, BinaryIO] = {}
    # a one-chunk file's id is its chunk's, and every chunk is checked when read
    whole = None if single(chunks, spec.hash) else blake3()
    staged_used: set[str] = set()
    counted: set[str] = set()
    data_bytes = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    done = False
    gone: list[str] = []  # chunks not where the index said: all asked for at once
    try:
        for window in chunks.windows():
            located = batch.locate(window, keep=keep)
            for chunk in window:
                sent = batch.inline.get(chunk.chunk_id)
                if sent is not None:
                    data = sent[0]
                    if len(data) != chunk.length:
                        raise InvalidInput(
                            f"the chunk list of {spec.path!r} gives a chunk a length it has not"
                        )
                    if chunk.chunk_id not in counted:
                        counted.add(chunk.chunk_id)
                        data_bytes += sent[1]
                else:
                    where = located.get(chunk.chunk_id)
                    if where is not None and where.length != chunk.length:
                        raise InvalidInput(
                            f"the chunk list of {spec.path!r} gives a chunk a length it has not"
                        )
                    got = target.chunks.read(handles, where, chunk) if where else None
                    if got is None or where is None:
                        if where is not None:  # that copy changed or went: forget only it
                            target.chunks.drop(chunk.chunk_id, where)
                        batch.located.pop(chunk.chunk_id, None)
                        if len(gone) < MISSING_MAX:
                            gone.append(chunk.chunk_id)
                        continue
                    data = got
                    if where.staged and chunk.chunk_id not in staged_used:
                        staged_used.add(chunk.chunk_id)
                        data_bytes += where.wire_bytes
                if gone:
                    continue  # the file will not be made now; only look for more gone chunks
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if whole is not None:
                    whole.update(data)
        if gone:
            if isinstance(chunks, ChunkList):
                batch.pending[spec.hash] = chunks
            return Result("missing", chunks=list(dict.fromkeys(gone)))
        if whole is not None and whole.hexdigest() != spec.hash:
            raise InvalidInput(f"the chunks of {spec.path!r} do not add up to its content id")
        fsops.finish(fd, mode=spec.mode & target.mode_mask, mtime_ns=spec.mtime_ns)
        done = True
    finally:
        os.close(fd)
        for fh in handles.values():
            fh.close()
        if not done:  # an error, or a chunk gone missing: no temp file stays behind
            tmp.unlink(missing_ok=True)
    via = "chunks" if data_bytes else "local"
    placed = chunks.offsets()
    batch.ready.append(Ready(tmp, spec, placed, action, data_bytes, via, staged_used))
    return Result("done", via=via, data_bytes=data_bytes)


def base_chunks(target: Target, client: str, path: str, base: str) -> Chunks | None:
    """The chunk list of the file at ``path`` if its content id is ``base``.

    Read in offset order into a builder: a huge file's list goes to a temp file. None
    when the rows do not cover the file end to end (the client then sends its list).
    """
    entry = target.index.entry(client, path)
    if entry is None or entry["kind"] != "file" or entry["hash"] != base:
        return None
    built = ChunkListBuilder(target.tmp)
    for chunk_hash, offset, length in target.index.chunk_rows(int(entry["id"])):
        if offset != built.size:  # a row was dropped (its chunk was not there once)
            return None
        built.add(bytes.fromhex(chunk_hash), length)
    return built.done() if built.size == entry["size"] else None


def single(chunks: Chunks, file_hash: str) -> bool:
    """A one-chunk file: its id is its chunk's, and chunks are checked when read."""
    return isinstance(chunks, ChunkList) and len(chunks) == 1 and chunks[0].chunk_id == file_hash
