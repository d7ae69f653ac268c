"""Applying ops: the one domain function the HTTP API and the data port both call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from homekeep.core.errors import InvalidInput
from homekeep.sync.server import tree
from homekeep.sync.server.assembly import base_chunks
from homekeep.sync.server.batch import DONE, RESEND, Batch, FileSpec, Result, begin, settle
from homekeep.sync.server.files import check_upload, commit_file, place_upload, prepare
from homekeep.sync.server.ops import DeleteOp, FileOp, LinkOp, MkdirOp, RenameOp, TopOp
from homekeep.sync.server.target import Target
from homekeep.sync.wire.chunking import Digest
from homekeep.sync.wire.chunklist import Chunks, ListFile, decode_chunks
from homekeep.sync.wire.delta import DeltaTooBig, apply_delta
from homekeep.sync.wire.protocol import CHUNK_MIN, check_hash

MAX_HUGE = 4  # file ops per request whose chunk list is a huge one (the client sends one)


@dataclass(frozen=True)
class Upload:
    """A whole file streamed into ``tmp`` (by an HTTP upload or the data port)."""

    spec: FileSpec
    tmp: Path
    wire_bytes: int
    digest: Digest | None = None  # taken while it arrived; without it the file is read again


AnyOp = MkdirOp | LinkOp | DeleteOp | RenameOp | FileOp | TopOp | Upload


def apply(
    target: Target,
    client: str,
    ops: Sequence[AnyOp],
    inline: dict[str, tuple[bytes, int]] | None = None,
) -> list[Result]:
    """Apply ``ops`` of ``client`` in order (``inline``: chunks sent with them); one answer
    per op. Uploads are checked against their ids first, outside the client's lock."""
    digests = {
        id(op): check_upload(target, op.spec, op.tmp, op.digest)
        for op in ops
        if isinstance(op, Upload)
    }
    results: list[Result] = []
    with target.lock(client):
        batch = begin(target, client, inline)
        try:
            _apply_ops(batch, ops, results, digests)
        finally:
            try:
                settle(batch)
            finally:
                batch.close()
            touched = [
                op.path for op in ops if isinstance(op, MkdirOp | LinkOp | DeleteOp | RenameOp)
            ]
            touched += [op.dest for op in ops if isinstance(op, RenameOp)]
            top = any(isinstance(op, TopOp) for op in ops)
            target.restore_dir_times(client, touched, top=top)
    return results


def _apply_ops(
    batch: Batch, ops: Sequence[AnyOp], results: list[Result], digests: dict[int, Digest]
) -> None:
    """Apply ops in order; runs of file ops are looked up together and placed together,
    runs of folder ops that only move mtimes are recorded together."""
    target, client = batch.target, batch.client
    start = 0
    huge = 0  # file ops in this request with a huge chunk list: each holds a temp file
    while start < len(ops):
        op = ops[start]
        if isinstance(op, MkdirOp):
            end = start
            while end < len(ops) and isinstance(ops[end], MkdirOp):
                end += 1
            settle(batch)
            folders = [
                (o.path, o.mode, o.mtime_ns) for o in ops[start:end] if isinstance(o, MkdirOp)
            ]
            for path, mode, mtime_ns in tree.touch_dirs(target, client, folders):
                tree.mkdir(target, client, path, mode, mtime_ns)
            results.extend(DONE for _ in range(start, end))
            start = end
            continue
        if isinstance(op, Upload):
            place_upload(batch, op.spec, op.tmp, op.wire_bytes, digests[id(op)])
            results.append(Result("done", via="upload", data_bytes=op.wire_bytes))
            start += 1
            continue
        if not isinstance(op, FileOp):
            settle(batch)
            results.append(_apply_other(target, client, op))
            batch.forget()  # what the batch knew of entries and folders may have changed
            start += 1
            continue
        end = start
        while end < len(ops) and isinstance(ops[end], FileOp):
            end += 1
        specs: list[FileSpec | None] = []
        for file_op in ops[start:end]:
            assert isinstance(file_op, FileOp)
            spec = _spec(target, client, file_op)
            if spec is not None and isinstance(spec.chunks, ListFile):
                huge += 1
                if huge > MAX_HUGE:  # each holds a temp file: a few per request
                    raise InvalidInput(
                        f"more than {MAX_HUGE} files with huge chunk lists in one request"
                    )
            specs.append(spec)
        prepare(batch, [spec for spec in specs if spec is not None])
        for spec in specs:
            results.append(RESEND if spec is None else commit_file(batch, spec))
        start = end


def _spec(target: Target, client: str, op: FileOp) -> FileSpec | None:
    """The file an op describes; None when its delta's base is gone (the client resends)."""
    limit = (op.size // CHUNK_MIN) + 2
    chunks: Chunks | None = None
    if op.chunks is not None:
        chunks = decode_chunks(op.chunks, max_chunks=limit)
        op.chunks = None  # the text is megabytes for a huge file; the packed list is enough
    elif op.delta is not None:
        old = base_chunks(target, client, op.path, check_hash(op.base or ""))
        if old is None:
            return None
        try:
            chunks = apply_delta(
                old, op.delta, max_chunks=limit, max_size=op.size, spill_dir=target.tmp
            )
        except DeltaTooBig:
            return None  # "resend": the client sends the whole list, which has no such bound
    return FileSpec(op.path, op.size, op.mode, op.mtime_ns, op.hash.lower(), chunks)


def _apply_other(target: Target, client: str, op: LinkOp | DeleteOp | RenameOp | TopOp) -> Result:
    if isinstance(op, LinkOp):
        tree.symlink(target, client, op.path, op.target, op.mtime_ns)
    elif isinstance(op, DeleteOp):
        tree.delete(target, client, op.path)
    elif isinstance(op, TopOp):
        tree.set_top(target, client, op.mode, op.mtime_ns)
    elif not tree.rename(target, client, op.path, op.dest):
        return Result("absent")
    return DONE
