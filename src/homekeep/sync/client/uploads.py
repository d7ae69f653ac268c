"""Sending file content: chunk packs (two in flight), or a whole file as one stream."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from homekeep.core.errors import InvalidInput
from homekeep.sync.client.index import ClientIndex
from homekeep.sync.client.scan import Local
from homekeep.sync.client.transport import Connection
from homekeep.sync.wire.chunking import Digest, FileChanged, chunk_id
from homekeep.sync.wire.chunklist import ChunkRef, Chunks
from homekeep.sync.wire.compression import patcher
from homekeep.sync.wire.delta import DELTA_LITERALS, Delta, make_delta
from homekeep.sync.wire.pack import RECORD_HEAD, encode_record
from homekeep.sync.wire.protocol import HASH_BYTES

log = logging.getLogger(__name__)

PACK_BYTES = 8 << 20
COMPRESS_MIN_GAIN = 0.95
COMPRESS_TRIES = 4  # after this many chunks in a row that do not shrink, stop trying...
COMPRESS_PROBE = 32  # ...but for one chunk in this many
UPLOADS = 2
RAW_LIMIT = 32 << 20  # chunk bytes in one request once decompressed (the server takes 128)
WHOLE_MIN = 4 << 20  # new content from this size streams whole instead of in chunk packs


@dataclass
class Outgoing:
    """A file on its way: where it is, what it is, and its previous chunk list."""

    path: str
    local: Local
    digest: Digest
    action: str
    base: tuple[str, Chunks] | None = None  # (content id, chunk list) the server has
    lacking: set[str] | None = None  # chunk ids the server asked for; None: all of them
    lacking_total: int | None = None  # bytes the server lacks, as it counted them
    more: bool = False  # the server lacks more chunks than it listed
    listed: bool = False  # a huge file's chunk list was sent on its own
    held: bool = False  # the server holds this content at this path: only metadata changed
    prior: str | None = None  # the other content the server holds at this path
    prior_data: bytes | None = None  # that content, while chunks are compressed against it
    dense: bool = False  # a chunk went plain (did not shrink, or in a run that did not)
    _delta: Delta | None = None

    def delta(self) -> Delta | None:
        """The chunk list as a delta against ``base``; None without a base, or when too
        much changed (the base is then dropped and the list goes whole)."""
        if self.base is None:
            return None
        if self._delta is None:
            self._delta = make_delta(self.base[1], self.digest.chunks, literals=DELTA_LITERALS)
            if self._delta is None:
                self.base = None
        return self._delta

    def drop_base(self) -> None:
        """The server no longer has the base: send the whole list next time."""
        self.base = self._delta = None
        self.listed = False

    def needs(self, chunk_id: str) -> bool:
        return self.lacking is None or chunk_id in self.lacking

    def lacking_bytes(self) -> int:
        if self.lacking is None:
            return self.local.size
        if self.lacking_total is not None:
            return self.lacking_total
        return sum(c.length for c in self.digest.chunks if c.chunk_id in self.lacking)


class Uploader:
    """Sends the content the server lacks, reading it back from the local files."""

    def __init__(self, root: Path, conn: Connection, index: ClientIndex) -> None:
        self.root = root
        self.conn = conn
        self.index = index
        self._local = threading.local()  # a zstd compressor per thread: they are not shared
        self.pack_bytes = PACK_BYTES  # lowered to fit a server that takes smaller packs
        self.patching = False  # the server takes chunks compressed against a base (hello)

    def _compressor(self) -> zstandard.ZstdCompressor:
        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=3)
        return cctx

    @staticmethod
    def whole_is_cheaper(item: Outgoing) -> bool:
        """Mostly new big content streams whole: no staging, one pass on the server."""
        if item.local.size < WHOLE_MIN:
            return False
        return item.lacking_bytes() * 2 >= item.local.size

    def packs(
        self, items: list[Outgoing], limit: int, changed: list[Outgoing]
    ) -> Iterator[tuple[list[Outgoing], bytes, int]]:
        """Group files with the chunks the server lacks, about ``limit`` bytes a group.

        Each group goes in one commit request with its files' ops. A chunk goes once per
        round: once its file is made the server reads it from there. Files that change
        while they are read go to ``changed``.
        """
        group: list[Outgoing] = []
        pack: list[bytes] = []
        size = data = raw = 0
        sent: set[str] = set()
        for item in items:
            try:
                records = list(self._records(item, sent))
            except (FileChanged, OSError):
                log.info("%s changed while it was sent; it will be sent again", item.path)
                self.index.forget_cache([item.path])
                changed.append(item)
                continue
            group.append(item)
            for sent_id, record, body, length in records:
                sent.add(sent_id)
                pack.append(record)
                size += len(record)
                data += body
                raw += length
            if size >= limit or raw >= RAW_LIMIT:
                yield group, b"".join(pack), data
                group, pack, size, data, raw = [], [], 0, 0, 0
        if group:
            yield group, b"".join(pack), data

    def _records(self, item: Outgoing, sent: set[str]) -> Iterator[tuple[str, bytes, int, int]]:
        """(chunk id, pack record, data bytes, chunk length) of the chunks of ``item`` to send.

        A chunk is compressed when that saves 5% (see ``squeeze``), against the file's
        previous version when it is kept here (``prior_data``).
        """
        wanted = {c for c in item.digest.chunks.ids() if item.needs(c) and c not in sent}
        base = item.prior if item.prior_data is not None else None
        patch = patcher(item.prior_data) if item.prior_data is not None else None
        for ref, data in self._read_chunks(item, wanted):
            if patch is not None:  # against the old version: an edit costs about its size
                patched = patch.compress(data)
                if len(patched) + HASH_BYTES < len(data) * COMPRESS_MIN_GAIN:
                    wanted.discard(ref.chunk_id)
                    record = encode_record(ref.chunk_id, patched, compressed=True, base=base)
                    yield ref.chunk_id, record, len(record) - RECORD_HEAD, ref.length
                    continue
            compressed = self.squeeze(data, COMPRESS_MIN_GAIN)
            item.dense = item.dense or compressed is None
            body = compressed if compressed is not None else data
            wanted.discard(ref.chunk_id)
            record = encode_record(ref.chunk_id, body, compressed=compressed is not None)
            yield ref.chunk_id, record, len(body), ref.length

    def squeeze(self, data: bytes, gain: float, *, always: bool = False) -> bytes | None:
        """``data`` as zstd if that is under ``gain`` times its size, else None.

        Unless ``always``: after COMPRESS_TRIES in a row that do not shrink (in this thread,
        across files: a thousand small JPEGs are one run), only every COMPRESS_PROBE-th is
        tried, until one shrinks again.
        """
        misses: int = getattr(self._local, "misses", 0)
        if not always and misses >= COMPRESS_TRIES and misses % COMPRESS_PROBE:
            self._local.misses = misses + 1
            return None
        compressed: bytes | None = self._compressor().compress(data)
        if compressed is not None and len(compressed) >= len(data) * gain:
            compressed = None
        if not always:
            self._local.misses = 0 if compressed is not None else misses + 1
        return compressed

    def whole(self, item: Outgoing) -> dict[str, Any] | None:
        """Stream one file whole; return the server's answer, or None if the file changed."""
        params = {
            "path": item.path,
            "size": item.local.size,
            "mode": item.local.mode,
            "mtime_ns": item.local.mtime_ns,
            "hash": item.digest.file_hash,
        }
        path = self.root / item.path
        try:
            with path.open("rb") as fh:
                sample = fh.read(256 * 1024)
            compress = len(self._compressor().compress(sample)) < len(sample) * COMPRESS_MIN_GAIN
            result = None if compress else self.conn.send_file(params, path)
            if result is None:
                result = self.conn.upload(params, _stream(path, compress), compressed=compress)
        except (InvalidInput, OSError):
            log.info("%s changed while it was sent; it will be sent again", item.path)
            self.index.forget_cache([item.path])
            return None
        return result

    def chunks(self, items: list[Outgoing]) -> list[Outgoing]:
        """Stage the chunks the server lacks; return the files that changed meanwhile."""
        changed: list[Outgoing] = []
        pack: list[bytes] = []
        pack_size = 0
        pack_data = 0
        pack_raw = 0
        with ThreadPoolExecutor(max_workers=UPLOADS, thread_name_prefix="upload") as pool:
            flying: list[Future[Any]] = []

            def send(body: bytes, data: int) -> None:
                # keep a bounded number of packs in flight: reading overlaps sending
                while len(flying) >= UPLOADS:
                    flying.pop(0).result()
                flying.append(pool.submit(self.conn.chunks, body, data))

            sent: set[str] = set()
            for item in items:
                try:
                    for chunk_id, record, body, length in self._records(item, sent):
                        sent.add(chunk_id)
                        pack.append(record)
                        pack_size += len(record)
                        pack_data += body
                        pack_raw += length
                        if pack_size >= self.pack_bytes or pack_raw >= RAW_LIMIT:
                            send(b"".join(pack), pack_data)
                            pack, pack_size, pack_data, pack_raw = [], 0, 0, 0
                except (FileChanged, OSError):
                    log.info("%s changed while it was sent; it will be sent again", item.path)
                    self.index.forget_cache([item.path])
                    changed.append(item)
            if pack:
                send(b"".join(pack), pack_data)
            for future in flying:
                future.result()
        return changed

    def _read_chunks(self, item: Outgoing, wanted: set[str]) -> Iterator[tuple[ChunkRef, bytes]]:
        kept = item.digest.data
        if kept is not None:  # read with the digest: the content that was hashed
            view = memoryview(kept)
            for ref, start, length in _spans(item.digest.chunks):
                if ref.chunk_id in wanted:
                    yield ref, bytes(view[start : start + length])
            return
        offset = 0
        with (self.root / item.path).open("rb") as fh:
            for ref in item.digest.chunks:
                if ref.chunk_id in wanted:
                    fh.seek(offset)
                    data = fh.read(ref.length)
                    if chunk_id(data) != ref.chunk_id:
                        raise FileChanged(item.path)
                    yield ref, data
                offset += ref.length


def _spans(chunks: Chunks) -> Iterator[tuple[ChunkRef, int, int]]:
    offset = 0
    for ref in chunks:
        yield ref, offset, ref.length
        offset += ref.length


def _stream(path: Path, compress: bool) -> Iterator[bytes]:
    """Yield a file in blocks, as one zstd stream when ``compress``; constant memory."""
    packer = zstandard.ZstdCompressor(level=3).compressobj() if compress else None
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            out = packer.compress(block) if packer is not None else block
            if out:
                yield out
    if packer is not None:
        yield packer.flush()
