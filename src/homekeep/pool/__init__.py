"""pool: a dispatcher that starts server processes on demand and hands clients a ticket."""

from __future__ import annotations

import click

from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.pool.config import PoolConfig


def _cli() -> click.Group:
    from homekeep.pool.cli import group

    return group


def _web(ctx: AreaContext) -> WebParts:
    from homekeep.pool.api import build

    return build(ctx)


AREA = Area(
    name="pool",
    title="Pool",
    summary="Server processes started on demand; clients get a port and a single-use ticket.",
    config=PoolConfig,
    cli=_cli,
    web=_web,
)
