"""music: the library scanner, its reports, artwork and the API the player stands on."""

from __future__ import annotations

import click

from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.music.config import MusicConfig


def _cli() -> click.Group:
    from homekeep.music.cli import group  # loaded only when the command is used

    return group


def _web(ctx: AreaContext) -> WebParts:
    from homekeep.music.api import build

    return build(ctx)


AREA = Area(
    name="music",
    title="Music",
    summary="Scan music folders into a library of artists, albums, tracks and covers.",
    config=MusicConfig,
    cli=_cli,
    web=_web,
)
