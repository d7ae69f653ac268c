"""Web: JSON under /api/pool/ (allocate, servers, events) and the live page at /pool/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from homekeep import __version__
from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, TokenStore, require_scope
from homekeep.core.errors import InvalidInput, NotFound, PayloadTooLarge
from homekeep.core.hosts import TrustedHosts, trusted_names
from homekeep.core.web import add_docs, add_health, install_error_handlers, templates
from homekeep.pool.service import open_service

NAME_RE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,40}$")
MAX_BODY_BYTES = 4096


class AllocateBody(BaseModel):
    """What a client may say when it asks for a seat."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, description="Shown to the others (default: the token's name)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (not NAME_RE.match(value) or not value.strip()):
            raise ValueError("a name is 1-40 characters, without control characters")
        return value.strip() if value is not None else None


async def _small_body(request: Request) -> bytes:
    """The request body, refused past ``MAX_BODY_BYTES`` before it is all read."""
    declared = request.headers.get("content-length", "0")
    # ASCII digits and a bounded length before int(): "²".isdigit() is true, and int() of
    # thousands of digits raises
    if not re.fullmatch(r"[0-9]{1,12}", declared) or int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"an allocation request holds at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"an allocation request holds at most {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else f"body: {message}"


def build(ctx: AreaContext) -> WebParts:
    """The pool's routes, and the hooks that start and drain its dispatcher."""
    service = open_service(ctx)
    scope = require_scope("pool")
    dispatcher = service.dispatcher
    api = APIRouter(dependencies=[Depends(scope)])

    @api.post(
        "/allocate",
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": AllocateBody.model_json_schema()}},
            }
        },
    )
    async def allocate(request: Request, caller: Caller = Depends(scope)) -> dict[str, Any]:  # noqa: B008
        """A seat on a server: its host, port and a single-use ticket (503 when full).

        The body is optional: ``{"name": "..."}`` names the client (default: the caller's
        name, a user's or a token's).
        """
        body = await _small_body(request)
        try:
            asked = AllocateBody.model_validate_json(body) if body.strip() else AllocateBody()
        except ValidationError as exc:
            raise InvalidInput(_first_problem(exc)) from None
        allocation = await dispatcher.allocate(asked.name or caller.name)
        return allocation.to_json()

    @api.get("/servers")
    async def servers() -> dict[str, Any]:
        """The pool and every server: state, port, clients, messages, rates, memory."""
        return await dispatcher.snapshot()

    @api.get("/servers/{server_id}")
    async def server(server_id: str) -> dict[str, Any]:
        """One server with its clients."""
        for shown in (await dispatcher.snapshot())["servers"]:
            if shown["id"] == server_id:
                return dict(shown)
        raise NotFound(f"no server {server_id[:40]!r} in the pool; list them at /api/pool/servers")

    @api.get("/events")
    async def events(limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        """The newest things that happened to servers (started, stopped, failed), newest first."""
        found = await service.store.db.run(service.store.recent, limit)
        return [event.to_json() for event in found]

    pages = APIRouter()
    page_templates = templates(Path(__file__).parent / "templates")

    @pages.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        """The live page: under `homekeep serve` with the session, alone with a token."""
        return page_templates.TemplateResponse(request, "pool.html", {})

    async def summary(caller: Caller) -> Summary:
        pool = dispatcher.summary()
        return {
            "servers": f"{pool['ready']} ready of {pool['servers']}",
            "clients": f"{pool['clients']} of {pool['capacity']} seats",
            "allocations": pool["allocations"],
        }

    async def start() -> None:
        await dispatcher.start()

    async def stop() -> None:
        try:
            await dispatcher.stop()
        finally:
            service.close()

    return WebParts(api=api, pages=pages, startup=[start], shutdown=[stop], summary=summary)


def standalone_app(ctx: AreaContext, tokens: TokenStore, bind_host: str) -> FastAPI:
    """The app of `homekeep pool serve`: the pool's API and page, /healthz and /docs."""
    mounted = build(ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in mounted.startup:
            await hook()
        try:
            yield
        finally:
            for hook in mounted.shutdown:
                await hook()

    app = FastAPI(
        title="homekeep pool", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.settings = ctx.settings
    app.state.tokens = tokens
    install_error_handlers(app)
    add_health(app, {"version": __version__, "areas": ["pool"]})
    add_docs(app, "homekeep pool API")
    assert mounted.api is not None
    assert mounted.pages is not None
    app.include_router(mounted.api, prefix="/api/pool", tags=["pool"])
    app.include_router(mounted.pages, prefix="/pool", include_in_schema=False)
    server = ctx.settings.server
    app.add_middleware(
        TrustedHosts, names=trusted_names(bind_host, server.public_url, server.trusted_hosts)
    )
    return app
