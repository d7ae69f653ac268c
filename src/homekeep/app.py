"""The one ASGI app: core routes plus every area's routers, pages and hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from homekeep import __version__
from homekeep.areas import AREAS
from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.core.auth import Token, TokenStore, authenticate
from homekeep.core.config import Settings
from homekeep.core.hosts import TrustedHosts, trusted_names
from homekeep.core.web import add_docs, add_health, install_error_handlers, templates


async def _any_token(request: Request) -> Token:
    record = await authenticate(request, None)
    assert record is not None
    return record


def create_app(settings: Settings, areas: Sequence[Area] = AREAS) -> FastAPI:
    """Build the app for ``homekeep serve``; area hooks run in its lifespan."""
    data = settings.data
    data.ensure()
    tokens = TokenStore(data.core_db)
    mounted: list[tuple[Area, WebParts]] = []
    for area in areas:
        if area.web_ref is not None:
            ctx = AreaContext(name=area.name, settings=settings, tokens=tokens)
            mounted.append((area, area.web(ctx)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started: list[WebParts] = []
        try:
            for _, parts in mounted:
                for hook in parts.startup:
                    await hook()
                started.append(parts)
            yield
        finally:
            for parts in reversed(started):
                for hook in parts.shutdown:
                    await hook()
            tokens.close()

    app = FastAPI(
        title="homekeep",
        version=__version__,
        summary="A home server's file and media chores behind one API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.nav = [area for area, parts in mounted if parts.pages is not None]
    install_error_handlers(app)
    page_templates = templates()

    add_health(app, {"version": __version__, "areas": [a.name for a, _ in mounted]})

    @app.get("/api/whoami", tags=["core"])
    async def whoami(token: Token = Depends(_any_token)) -> dict[str, object]:  # noqa: B008
        """The calling token's name and scopes."""
        return {"name": token.name, "scopes": list(token.scopes)}

    add_docs(app, "homekeep API")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def landing(request: Request) -> HTMLResponse:
        return page_templates.TemplateResponse(
            request,
            "landing.html",
            {
                "areas": [
                    (area, f"/{area.name}/" if parts.pages else f"/docs#/{area.name}")
                    for area, parts in mounted
                ],
                "version": __version__,
            },
        )

    for area, parts in mounted:
        if parts.api is not None:
            app.include_router(parts.api, prefix=f"/api/{area.name}", tags=[area.name])
        if parts.pages is not None:
            app.include_router(parts.pages, prefix=f"/{area.name}", include_in_schema=False)
        if parts.root is not None:
            app.include_router(parts.root, tags=[area.name])
        if parts.static_dir is not None:
            app.mount(
                f"/{area.name}/static",
                StaticFiles(directory=parts.static_dir),
                name=f"{area.name}-static",
            )
    server = settings.server
    app.add_middleware(
        TrustedHosts,
        names=trusted_names(server.host, server.public_url, server.trusted_hosts),
    )
    return app
