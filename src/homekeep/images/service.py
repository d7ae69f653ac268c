"""The images area at run time: config, store, limiter and caches of served images.

The caches never outlive a deletion made by another process (``homekeep images delete``):
every use of a cached record first checks, with one stat, that its file is still the
same file (inode, mtime, size); a deleted or replaced file drops the entry.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homekeep.core.area import AreaContext
from homekeep.core.config import Settings
from homekeep.images.config import ImagesConfig
from homekeep.images.formats import supported_types
from homekeep.images.ids import IdGenerator
from homekeep.images.ratelimit import RateLimiter
from homekeep.images.store import MIGRATIONS, ImageRecord, ImageStore

CACHE_SIZE = 4096
BLOB_MAX = 512 * 1024  # files up to this size are kept in memory once served
BLOB_BUDGET = 64 * 1024 * 1024
Stamp = tuple[int, int, int]
WILDCARDS = ("", "0.0.0.0", "::")  # listen on every address: no one host to link to


def stamp(stat: os.stat_result) -> Stamp:
    """What tells one file from another at the same path: inode, mtime and size."""
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def cpu_count() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def open_store(ctx: AreaContext, config: ImagesConfig) -> ImageStore:
    """Open the area's database and files folder."""
    return ImageStore(
        ctx.database(MIGRATIONS),
        ctx.dir / "files",
        IdGenerator(config.id_alphabet, config.id_length),
    )


@dataclass
class Images:
    """Everything the routes share.

    Threads: the caches (``records``, ``blobs``, ``blob_bytes``), the limiter and the
    ``decoding`` semaphore belong to the event loop's thread: only route code and the
    expiry sweep touch them, never a worker thread, so they need no lock. Work handed to
    worker threads (decoding, cleaning, storing, thumbnails) gets bytes and paths, never
    these objects; the store it uses is safe across threads (see ``ImageStore``).
    """

    config: ImagesConfig
    settings: Settings
    store: ImageStore
    limiter: RateLimiter
    allowed: tuple[str, ...]
    decoding: asyncio.Semaphore
    records: OrderedDict[str, tuple[ImageRecord, Stamp]] = field(default_factory=OrderedDict)
    blobs: OrderedDict[str, tuple[Stamp, bytes]] = field(default_factory=OrderedDict)
    blob_bytes: int = 0

    @property
    def folder(self) -> Path:
        return self.store.files

    def base_url(self, local: tuple[str, int] | None) -> str:
        """The base URL of links: [images] public_url, [server] public_url, else [server]
        host and port, never the request's Host header (any client can send any Host).

        ``local`` is the address the connection came in on, from the socket: it gives the
        port when the configured one is 0 (any free port), and the host when the server
        listens on every address (0.0.0.0 or ::).
        """
        for configured in (self.config.public_url, self.settings.server.public_url):
            if configured:
                return configured.rstrip("/")
        server = self.settings.server
        if local is None:
            return server.base_url()
        host = local[0] if server.host in WILDCARDS else server.host
        return server.model_copy(update={"host": host}).base_url(server.port or local[1])

    def cached(self, image_id: str) -> tuple[ImageRecord, os.stat_result] | None:
        """Return a remembered record and its file's stat, if that file is still the same."""
        kept = self.records.get(image_id)
        if kept is None:
            return None
        record, seen = kept
        try:
            stat = (self.folder / record.file).stat()  # one syscall: fine on the event loop
        except FileNotFoundError:
            stat = None
        if stat is None or stamp(stat) != seen:
            self.forget(image_id)
            return None
        self.records.move_to_end(image_id)
        return record, stat

    def remember(self, record: ImageRecord, stat: os.stat_result) -> None:
        self.records[record.id] = (record, stamp(stat))
        self.records.move_to_end(record.id)
        while len(self.records) > CACHE_SIZE:
            self.records.popitem(last=False)

    def forget(self, image_id: str) -> None:
        self.records.pop(image_id, None)
        self.forget_blob(image_id)

    def blob(self, image_id: str, seen: Stamp) -> bytes | None:
        """Return a small file's bytes from memory if the file has not changed since."""
        kept = self.blobs.get(image_id)
        if kept is None or kept[0] != seen:
            return None
        self.blobs.move_to_end(image_id)
        return kept[1]

    def keep_blob(self, image_id: str, seen: Stamp, data: bytes) -> None:
        """Keep a small file's bytes, dropping the least recently served past the budget."""
        self.forget_blob(image_id)
        self.blobs[image_id] = (seen, data)
        self.blob_bytes += len(data)
        while self.blob_bytes > BLOB_BUDGET:
            _, (_, old) = self.blobs.popitem(last=False)
            self.blob_bytes -= len(old)

    def forget_blob(self, image_id: str) -> None:
        _, blob = self.blobs.pop(image_id, ((0, 0, 0), b""))
        self.blob_bytes -= len(blob)

    def view(self, record: ImageRecord, base: str) -> dict[str, Any]:
        """The JSON of one image: its record and its public URL."""
        return {
            **record.to_dict(),
            "url": f"{base}/i/{record.file}",
            "thumbnail_url": f"{base}/api/images/{record.id}/thumbnail",
        }


def open_service(ctx: AreaContext) -> Images:
    """What the routes share, opened from the area's config and data folder."""
    config = ctx.config(ImagesConfig)
    return Images(
        config=config,
        settings=ctx.settings,
        store=open_store(ctx, config),
        limiter=RateLimiter(config.rate_limit_per_minute, config.rate_limit_burst),
        allowed=supported_types(config.allowed_types),
        decoding=asyncio.Semaphore(config.decode_slots or cpu_count()),
    )
