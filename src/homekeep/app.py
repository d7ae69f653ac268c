"""The one ASGI app: core routes plus every area's routers, pages and hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from homekeep import __version__
from homekeep.areas import AREAS
from homekeep.core import account_pages, landing, login_pages
from homekeep.core.accounts import Accounts
from homekeep.core.area import Area, AreaContext, WebParts
from homekeep.core.auth import Caller, LoginRequired, TokenStore, authenticate, require_page
from homekeep.core.config import Settings
from homekeep.core.hosts import TrustedHosts, trusted_names
from homekeep.core.proxies import ForwardedClients, is_loopback, networks
from homekeep.core.web import add_docs, add_health, install_error_handlers, templates


def create_app(settings: Settings, areas: Sequence[Area] = AREAS) -> FastAPI:
    """Build the app for ``homekeep serve``; area hooks run in its lifespan."""
    data = settings.data
    data.ensure()
    tokens = TokenStore(data.core_db)
    names = tuple(area.name for area in areas)
    accounts = Accounts(data, settings.web, names, tokens)
    mounted: list[tuple[Area, WebParts]] = []
    for area in areas:
        if area.web_ref is not None:
            ctx = AreaContext(name=area.name, settings=settings, tokens=tokens, accounts=accounts)
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
            accounts.close()
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
    app.state.accounts = accounts
    app.state.nav = [area for area, parts in mounted if parts.pages is not None]
    page_templates = templates()
    install_error_handlers(app, page_templates)

    async def to_login(request: Request, exc: Exception) -> RedirectResponse:
        assert isinstance(exc, LoginRequired)
        fresh = await accounts.db.run(accounts.users.count) == 0
        client = request.client.host if request.client else ""
        if fresh and is_loopback(client):
            return RedirectResponse("/setup", status_code=302)
        target = "/login" if exc.next_url == "/" else f"/login?next={quote(exc.next_url)}"
        return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})

    app.add_exception_handler(LoginRequired, to_login)

    add_health(app, {"version": __version__, "areas": [a.name for a, _ in mounted]})

    @app.get("/api/whoami", tags=["core"])
    async def whoami(caller: Caller = Depends(_any_caller)) -> dict[str, object]:  # noqa: B008
        """Who the caller is: a user with a session or a token, and the areas it may use."""
        return caller.to_json()

    add_docs(app, "homekeep API")
    app.include_router(landing.router(page_templates, mounted, __version__))
    app.include_router(login_pages.router(page_templates))
    app.include_router(account_pages.router(page_templates, names))

    for area, parts in mounted:
        if parts.api is not None:
            app.include_router(parts.api, prefix=f"/api/{area.name}", tags=[area.name])
        if parts.pages is not None:
            app.include_router(
                parts.pages,
                prefix=f"/{area.name}",
                include_in_schema=False,
                dependencies=[Depends(require_page(area.name))],
            )
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
    # outermost: everything inside sees the client a trusted proxy names
    app.add_middleware(ForwardedClients, proxies=networks(settings.web.trusted_proxies))
    return app


async def _any_caller(request: Request) -> Caller:
    """Any valid caller, whatever its areas."""
    caller = await authenticate(request, None)
    assert caller is not None
    return caller
