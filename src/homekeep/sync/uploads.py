"""Sending file content: chunk packs (two in flight), or a whole file as one stream."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from homekeep.core.errors import InvalidInput
from homekeep.sync.chunking import Digest, FileChanged, chunk_id
from homekeep.sync.index import ClientIndex
from homekeep.sync.protocol import ChunkRef, encode_record
from homekeep.sync.scan import Local
from homekeep.sync.transport import Connection

log = logging.getLogger(__name__)

PACK_BYTES = 8 << 20
COMPRESS_MIN_GAIN = 0.95
COMPRESS_TRIES = 4  # after this many chunks in a row that do not shrink, send the file raw
UPLOADS = 2
WHOLE_MIN = 4 << 20  # new content from this size streams whole instead of in chunk packs


@dataclass
class Outgoing:
    """A file on its way: where it is, what it is, and its previous chunk list."""

    path: str
    local: Local
    digest: Digest
    action: str
    base: tuple[str, list[ChunkRef]] | None = None


class Uploader:
    """Sends the content the server lacks, reading it back from the local files."""

    def __init__(self, root: Path, conn: Connection, index: ClientIndex) -> None:
        self.root = root
        self.conn = conn
        self.index = index
        self._cctx = zstandard.ZstdCompressor(level=3)

    @staticmethod
    def whole_is_cheaper(item: Outgoing, missing: dict[str, None]) -> bool:
        """Mostly new big content streams whole: no staging, one pass on the server."""
        if item.local.size < WHOLE_MIN:
            return False
        lacking = sum(c.length for c in item.digest.chunks if c.chunk_id in missing)
        return lacking * 2 >= item.local.size

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
            compress = len(self._cctx.compress(sample)) < len(sample) * COMPRESS_MIN_GAIN
            result = self.conn.upload(params, _stream(path, compress), compressed=compress)
        except (InvalidInput, OSError):
            log.info("%s changed while it was sent; it will be sent again", item.path)
            self.index.forget_cache([item.path])
            return None
        return result

    def chunks(self, items: list[Outgoing], missing: dict[str, None]) -> list[Outgoing]:
        """Send the chunks the server lacks; return the files that changed meanwhile."""
        changed: list[Outgoing] = []
        pack: list[bytes] = []
        pack_size = 0
        pack_data = 0
        with ThreadPoolExecutor(max_workers=UPLOADS, thread_name_prefix="upload") as pool:
            flying: list[Future[Any]] = []

            def send(body: bytes, data: int) -> None:
                # keep a bounded number of packs in flight: reading overlaps sending
                while len(flying) >= UPLOADS:
                    flying.pop(0).result()
                flying.append(pool.submit(self.conn.chunks, body, data))

            for item in items:
                misses = 0
                try:
                    for ref, data in self._read_chunks(item, missing):
                        small = False
                        if misses < COMPRESS_TRIES:
                            compressed = self._cctx.compress(data)
                            small = len(compressed) < len(data) * COMPRESS_MIN_GAIN
                            misses = 0 if small else misses + 1
                        body = compressed if small else data
                        pack.append(encode_record(ref.chunk_id, body, compressed=small))
                        pack_size += len(pack[-1])
                        pack_data += len(body)
                        missing.pop(ref.chunk_id, None)
                        if pack_size >= PACK_BYTES:
                            send(b"".join(pack), pack_data)
                            pack, pack_size, pack_data = [], 0, 0
                except (FileChanged, OSError):
                    log.info("%s changed while it was sent; it will be sent again", item.path)
                    self.index.forget_cache([item.path])
                    changed.append(item)
            if pack:
                send(b"".join(pack), pack_data)
            for future in flying:
                future.result()
        return changed

    def _read_chunks(
        self, item: Outgoing, missing: dict[str, None]
    ) -> Iterator[tuple[ChunkRef, bytes]]:
        offset = 0
        with (self.root / item.path).open("rb") as fh:
            for ref in item.digest.chunks:
                if ref.chunk_id in missing:
                    fh.seek(offset)
                    data = fh.read(ref.length)
                    if chunk_id(data) != ref.chunk_id:
                        raise FileChanged(item.path)
                    yield ref, data
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
