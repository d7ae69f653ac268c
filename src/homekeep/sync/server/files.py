"""File changes: made from a copy the server holds, from chunks, or from a streamed upload;
or answered with the chunks the server lacks."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

from homekeep.core.errors import Conflict, InvalidInput
from homekeep.core.hashing import hash_file
from homekeep.sync.server import fsops
from homekeep.sync.server.assembly import MISSING_MAX, assemble
from homekeep.sync.server.batch import Batch, FileSpec, Ready, Result
from homekeep.sync.server.target import Target
from homekeep.sync.wire.chunking import Digest, FileChanged, digest_file
from homekeep.sync.wire.chunklist import ChunkList

BIG_LIST = 4096  # chunks (128 MiB of file): a list this long is looked up in slices


def prepare(batch: Batch, specs: list[FileSpec]) -> None:
    """Look up, in a few queries, what ``commit_file`` will ask about these files."""
    target = batch.target
    paths = [s.path for s in specs]
    for row in target.index.entries_at(batch.client, paths):
        batch.entries[row["path"]] = row
    for path in paths:
        batch.entries.setdefault(path, None)
    hashes = list({s.hash for s in specs if s.size})
    batch.held.update(target.index.held(hashes, *target.chunks.owner(batch.client)))
    batch.checked.update(hashes)
    wanted = {
        chunk_id
        for s in specs
        if isinstance(s.chunks, ChunkList) and len(s.chunks) <= BIG_LIST
        for chunk_id in s.chunks.ids()
        if chunk_id not in batch.inline
    }
    batch.located.update(target.chunks.locate_all(batch.client, wanted))
    batch.looked.update(wanted)


def commit_file(batch: Batch, spec: FileSpec) -> Result:
    """Make the client's file ``spec``: by a local copy, from chunks, or ask for chunks.

    Answers ``done`` (and how), ``missing`` (the chunks, or ``all`` when the server has
    none of them), or ``resend`` (the server forgot the chunk list: send it again). A
    file made waits in the batch until ``settle(batch)`` places the lot.
    """
    target, client = batch.target, batch.client
    on_disk = batch.tree.lstat(spec.path)  # a symlink on the way: refused here
    current = batch.entry(spec.path)
    if (
        current is not None
        and current["kind"] == "file"
        and current["hash"] == spec.hash
        and _unchanged(on_disk, current)
    ):
        batch.tree.chmod(spec.path, spec.mode & target.mode_mask)
        batch.tree.utime(spec.path, spec.mtime_ns)
        batch.touched.append((spec, int(current["id"])))  # recorded by ``settle``
        return Result("done", via="meta")
    action = "modify" if current is not None else "create"
    if (spec.hash in batch.held or spec.hash not in batch.checked) and _copy_existing(
        batch, spec, action
    ):
        return Result("done", via="copy")
    chunks = spec.chunks
    if chunks is None:  # a list sent before (a huge file's, on its own), or a resend
        chunks = target.chunks.pending_list(client, spec.hash, spec.size)
        if chunks is None:
            return Result("resend")
    elif chunks.size() != spec.size:
        raise InvalidInput(f"chunk lengths of {spec.path!r} do not add up to its size")
    keep = isinstance(chunks, ChunkList) and len(chunks) <= BIG_LIST
    have = 0
    missing: dict[str, None] = {}
    missing_bytes = 0
    more = False
    for window in chunks.windows():  # a huge file's list: a window at a time
        located = batch.locate(window, keep=keep)
        for ref in window:
            if ref.chunk_id in located or ref.chunk_id in batch.inline:
                have += 1
            elif ref.chunk_id not in missing:
                missing_bytes += ref.length
                if len(missing) < MISSING_MAX:
                    missing[ref.chunk_id] = None
                else:
                    more = True
    if missing:
        if isinstance(chunks, ChunkList):  # a ListFile is kept already
            batch.pending[spec.hash] = chunks
        if not have:  # one short answer, not a list of every chunk of a huge file
            return Result("missing", all=True)
        # with ``more``, the rest once these came: the answer stays small
        return Result("missing", chunks=list(missing), bytes=missing_bytes, more=more)
    try:
        return assemble(batch, spec, chunks, action, keep=keep)
    except InvalidInput:
        if spec.chunks is not None:
            raise
        # a kept list that does not make this content: drop it and ask for the list
        target.chunks.drop_list(client, spec.hash)
        return Result("resend")


def _copy_existing(batch: Batch, spec: FileSpec, action: str) -> bool:
    """Whole-file dedup: make the file from a copy of one the server holds."""
    if spec.size == 0:
        return False
    target = batch.target
    for row in target.index.copies(spec.hash, spec.size, *target.chunks.owner(batch.client)):
        tmp = target.temp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with contextlib.ExitStack() as stack:
                if row["client"] == batch.client:
                    tree = batch.tree
                else:
                    tree = stack.enter_context(target.tree(row["client"]))
                source = tree.open(row["path"], os.O_RDONLY)
                stack.callback(os.close, source)
                if not _unchanged(os.fstat(source), row):
                    raise OSError("the source changed since it was recorded")
                fsops.clone(source, fd)
            if os.fstat(fd).st_size != spec.size:
                raise OSError("copy came out short")
            # size and mtime say the source is what the index recorded; the hash makes
            # sure (a crash between placing a file and recording it could fool them)
            if hash_file(tmp) != spec.hash:
                raise OSError("the source no longer holds that content")
            fsops.finish(fd, mode=spec.mode & target.mode_mask, mtime_ns=spec.mtime_ns)
        except (OSError, InvalidInput, Conflict):
            os.close(fd)
            tmp.unlink(missing_ok=True)
            continue
        os.close(fd)
        batch.ready.append(Ready(tmp, spec, (), action, 0, "copy", set(), copy_of=int(row["id"])))
        return True
    return False


def check_upload(target: Target, spec: FileSpec, tmp: Path, digest: Digest | None = None) -> Digest:
    """The digest of a file streamed whole into ``tmp``, once its content matches its id
    (its mode and mtime are then set); else the temp file goes and InvalidInput is raised.

    ``digest`` is the chunk list and hash taken while the file arrived; without it the
    file is read again.
    """
    try:
        st = tmp.stat()
        if digest is None or digest.size != st.st_size:
            digest = digest_file(tmp, expect_size=st.st_size, expect_mtime_ns=st.st_mtime_ns)
    except (OSError, FileChanged) as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"upload of {spec.path!r} could not be read back") from exc
    if digest.size != spec.size or digest.file_hash != spec.hash:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"the uploaded content of {spec.path!r} does not match its id")
    fd = os.open(tmp, os.O_WRONLY)
    try:
        fsops.finish(fd, mode=spec.mode & target.mode_mask, mtime_ns=spec.mtime_ns)
    finally:
        os.close(fd)
    return digest


def place_upload(batch: Batch, spec: FileSpec, tmp: Path, wire_bytes: int, digest: Digest) -> None:
    """Add a checked upload to the batch, to be placed by ``settle``."""
    batch.tree.lstat(spec.path)  # a symlink on the way: refused here
    action = "modify" if batch.entry(spec.path) is not None else "create"
    placed = digest.chunks.offsets()  # lazily: a huge file's list is not copied
    batch.ready.append(Ready(tmp, spec, placed, action, wire_bytes, "upload", set()))


def _unchanged(st: os.stat_result | None, entry: sqlite3.Row) -> bool:
    """A regular file of the size and mtime the index recorded for ``entry``."""
    return (
        st is not None
        and stat.S_ISREG(st.st_mode)
        and st.st_size == entry["size"]
        and st.st_mtime_ns == entry["mtime_ns"]
    )
