"""The images area at run time: config, store, limiter and a cache of served records."""

from __future__ import annotations

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


def open_store(ctx: AreaContext, config: ImagesConfig) -> ImageStore:
    """Open the area's database and files folder."""
    return ImageStore(
        ctx.database(MIGRATIONS),
        ctx.dir / "files",
        IdGenerator(config.id_alphabet, config.id_length),
    )


@dataclass
class Images:
    """Everything the routes share."""

    config: ImagesConfig
    settings: Settings
    store: ImageStore
    limiter: RateLimiter
    allowed: tuple[str, ...]
    records: OrderedDict[str, ImageRecord] = field(default_factory=OrderedDict)

    @classmethod
    def open(cls, ctx: AreaContext) -> Images:
        config = ctx.config(ImagesConfig)
        return cls(
            config=config,
            settings=ctx.settings,
            store=open_store(ctx, config),
            limiter=RateLimiter(config.rate_limit_per_minute, config.rate_limit_burst),
            allowed=supported_types(config.allowed_types),
        )

    @property
    def folder(self) -> Path:
        return self.store.files

    def base_url(self, request_base: str) -> str:
        """The public base URL: [images] public_url, [server] public_url, else the request's."""
        for configured in (self.config.public_url, self.settings.server.public_url):
            if configured:
                return configured.rstrip("/")
        return request_base.rstrip("/")

    def remember(self, record: ImageRecord) -> None:
        self.records[record.id] = record
        self.records.move_to_end(record.id)
        while len(self.records) > CACHE_SIZE:
            self.records.popitem(last=False)

    def forget(self, image_id: str) -> None:
        self.records.pop(image_id, None)

    def view(self, record: ImageRecord, base: str) -> dict[str, Any]:
        """The JSON of one image: its record and its public URL."""
        return {**record.to_dict(), "url": f"{base}/i/{record.file}"}
