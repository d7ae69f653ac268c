"""A real homekeep server with one extra test area, "probe", whose routes provoke errors.

Run as ``python tests/core/probe_server.py DATA_DIR MARKER_DIR``: it prints the URL, then
serves until SIGTERM. The probe area's startup and shutdown hooks write marker files.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from homekeep.app import create_app
from homekeep.areas import AREAS
from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.core.auth import Caller, require_scope
from homekeep.core.config import CORE_SECTIONS, Section, load_settings
from homekeep.core.errors import Conflict
from homekeep.core.server import serve


class ProbeConfig(Section):
    """Nothing to configure."""


class Item(BaseModel):
    name: str
    count: int


def probe_web(markers: Path) -> WebParts:
    api = APIRouter()

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @api.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there")

    @api.post("/items")
    async def items(item: Item, token: Caller = Depends(require_scope("probe"))) -> dict[str, str]:  # noqa: B008
        return {"name": item.name, "by": token.name}

    @api.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(1.5)
        return {"finished": True}

    async def started() -> None:
        (markers / "started").write_text("yes")

    async def stopped() -> None:
        (markers / "stopped").write_text("yes")

    return WebParts(api=api, pages=APIRouter(), startup=[started], shutdown=[stopped])


group = click.Group("probe")


def build(ctx: AreaContext) -> WebParts:
    """The probe area's parts; the marker folder comes from the command line."""
    return probe_web(Path(sys.argv[2]))


def main() -> None:
    data_dir = Path(sys.argv[1])
    probe = Area(
        name="probe",
        title="Probe",
        summary="Routes that provoke errors, for tests.",
        config_ref="__main__:ProbeConfig",
        cli_ref="__main__:group",
        web_ref="__main__:build",
    )
    areas = (*AREAS, probe)
    sections = {**CORE_SECTIONS, **{a.name: a.config for a in areas}}
    settings = load_settings(None, sections, env={}, data_dir=data_dir)
    app = create_app(settings, areas)
    serve(app, host="127.0.0.1", port=0, on_ready=lambda url: print(url, flush=True))


if __name__ == "__main__":
    main()
