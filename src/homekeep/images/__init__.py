"""images: image upload and hosting with short random ids, safe against hostile files."""

from __future__ import annotations

import click

from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.images.config import ImagesConfig


def _cli() -> click.Group:
    from homekeep.images.cli import group

    return group


def _web(ctx: AreaContext) -> WebParts:
    from homekeep.images.api import build

    return build(ctx)


AREA = Area(
    name="images",
    title="Images",
    summary="Upload images (JSON, multipart, ShareX) and share them by short links.",
    config=ImagesConfig,
    cli=_cli,
    web=_web,
)
