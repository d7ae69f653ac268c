"""sync: live folder sync over the network, deduplicating whole and partial files."""

from __future__ import annotations

from homekeep.core.area import Area, LongRunning

AREA = Area(
    name="sync",
    title="Sync",
    summary="Live one-way folder sync to a server, deduplicating whole and partial files.",
    config_ref="homekeep.sync.config:SyncConfig",
    cli_ref="homekeep.sync.cli:group",
    web_ref="homekeep.sync.api:build",
    long_running=(
        LongRunning("sync-server", ("sync", "server"), "the sync server", needs="FOLDER"),
        LongRunning("sync-watch", ("sync", "watch"), "the sync client", needs="FOLDER"),
    ),
)
