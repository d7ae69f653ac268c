"""What the sync commands and routes open: the config, and the server side on a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from homekeep.core.area import AreaContext
from homekeep.sync.config import SyncConfig
from homekeep.sync.server.adopt import adopt as index_existing
from homekeep.sync.server.target import Target


@dataclass(frozen=True)
class Service:
    """The [sync] settings and the area's context; the server opens on a chosen folder."""

    config: SyncConfig
    ctx: AreaContext

    def open_server(self, root: Path, *, adopt: bool = False) -> Target:
        """The server side receiving into ``root``: `homekeep serve` and `sync server` alike;
        with ``adopt``, the files already there are indexed for dedup."""
        target = Target.open(
            root,
            adopt=adopt,
            staging_ttl=self.config.staging_ttl_seconds,
            dedup_across_clients=self.config.dedup_across_clients,
            keep_group_and_other_write=self.config.keep_group_and_other_write,
        )
        if adopt:
            index_existing(target)
        return target


def open_service(ctx: AreaContext) -> Service:
    """The sync area's service for a command or `homekeep serve`."""
    return Service(ctx.config(SyncConfig), ctx)
