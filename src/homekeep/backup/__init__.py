"""backup: scheduled backups and drive mirrors through rsync and rclone."""

from __future__ import annotations

from homekeep.core.area import Area, LongRunning

AREA = Area(
    name="backup",
    title="Backup",
    summary="Scheduled backups and drive mirrors through rsync and rclone, with run history.",
    config_ref="homekeep.backup.config:BackupConfig",
    cli_ref="homekeep.backup.cli:group",
    web_ref="homekeep.backup.api:build",
    debian_packages={
        "rsync": "backup: mirrors and snapshots",
        "rclone": "backup: cloud targets",
    },
    long_running=(LongRunning("backup-daemon", ("backup", "daemon"), "the backup scheduler"),),
)
