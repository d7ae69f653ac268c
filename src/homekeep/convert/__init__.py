"""convert: a media conversion queue for clients that are not always online (ffmpeg workers)."""

from __future__ import annotations

from homekeep.core.area import Area, LongRunning

AREA = Area(
    name="convert",
    title="Convert",
    summary="A media conversion queue (ffmpeg) with offline clients and workers on other machines.",
    config_ref="homekeep.convert.config:ConvertConfig",
    cli_ref="homekeep.convert.cli:group",
    web_ref="homekeep.convert.api:build",
    debian_packages={
        "ffmpeg": "convert: probing and conversions",
        "redis-server": "convert: the broker for workers on other machines (tests start one)",
    },
    scopes=("convert-worker",),
    long_running=(
        LongRunning("convert-server", ("convert", "server"), "the convert queue's own server"),
        LongRunning("convert-worker", ("convert", "worker"), "convert workers (ffmpeg)"),
        LongRunning("convert-watch", ("convert", "watch"), "the convert client watching folders"),
    ),
)
