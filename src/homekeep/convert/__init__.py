"""convert: a media conversion queue for clients that are not always online (ffmpeg workers)."""

from __future__ import annotations

import click

from homekeep.convert.config import ConvertConfig
from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.core.units import LongRunning


def _cli() -> click.Group:
    from homekeep.convert.cli import group

    return group


def _web(ctx: AreaContext) -> WebParts:
    from homekeep.convert.api import build

    return build(ctx)


AREA = Area(
    name="convert",
    title="Convert",
    summary="A media conversion queue (ffmpeg) with offline clients and workers on other machines.",
    config=ConvertConfig,
    cli=_cli,
    web=_web,
    debian_packages=("ffmpeg", "redis-server"),
    scopes=("convert-worker",),
    long_running=(
        LongRunning("convert-server", ("convert", "server"), "the convert queue's own server"),
        LongRunning("convert-worker", ("convert", "worker"), "convert workers (ffmpeg)"),
        LongRunning("convert-watch", ("convert", "watch"), "the convert client watching folders"),
    ),
)
