"""pool: a dispatcher that starts server processes on demand and hands clients a ticket."""

from __future__ import annotations

from homekeep.core.area import Area, LongRunning

AREA = Area(
    name="pool",
    title="Pool",
    summary="Server processes started on demand; clients get a port and a single-use ticket.",
    config_ref="homekeep.pool.config:PoolConfig",
    cli_ref="homekeep.pool.cli:group",
    web_ref="homekeep.pool.api:build",
    long_running=(
        LongRunning("pool-serve", ("pool", "serve"), "the pool's dispatcher on its own"),
    ),
)
