"""backup: scheduled backups and drive mirrors through rsync and rclone."""

from __future__ import annotations

import click

from homekeep.backup.config import BackupConfig
from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.core.units import LongRunning


def _cli() -> click.Group:
    from homekeep.backup.cli import group

    return group


def _web(ctx: AreaContext) -> WebParts:
    from homekeep.backup.api import build

    return build(ctx)


AREA = Area(
    name="backup",
    title="Backup",
    summary="Scheduled backups and drive mirrors through rsync and rclone, with run history.",
    config=BackupConfig,
    cli=_cli,
    web=_web,
    debian_packages=("rsync", "rclone"),
    long_running=(LongRunning("backup-daemon", ("backup", "daemon"), "the backup scheduler"),),
)
