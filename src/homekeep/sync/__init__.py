"""sync: live folder sync over the network, deduplicating whole and partial files."""

from __future__ import annotations

import click

from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.core.units import LongRunning
from homekeep.sync.config import SyncConfig


def _cli() -> click.Group:
    from homekeep.sync.cli import group

    return group


def _web(ctx: AreaContext) -> WebParts:
    from homekeep.sync.api import build

    return build(ctx)


AREA = Area(
    name="sync",
    title="Sync",
    summary="Live one-way folder sync to a server, deduplicating whole and partial files.",
    config=SyncConfig,
    cli=_cli,
    web=_web,
    long_running=(
        LongRunning("sync-server", ("sync", "server"), "the sync server", needs="FOLDER"),
        LongRunning("sync-watch", ("sync", "watch"), "the sync client", needs="FOLDER"),
    ),
)
