"""Web helpers shared by the areas and servers: the error shape, health, docs, templates."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import swagger_ui
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homekeep.core.errors import HomekeepError

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
SWAGGER_UI_DIR = Path(swagger_ui.__file__).parent / "static"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return ``{"error": {"code", "message"}}`` with ``status``."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def wants_page(request: Request) -> bool:
    """True for a browser asking for a page (not under ``/api/``, HTML accepted)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def install_error_handlers(app: FastAPI, pages: Jinja2Templates | None = None) -> None:
    """Make every error, ours and the framework's, answer in the one JSON shape.

    With ``pages``, a browser asking for a page gets the same error as an HTML page
    (``error.html``); API calls always get JSON.
    """

    def answer(
        request: Request, status: int, code: str, message: str, headers: dict[str, str]
    ) -> Response:
        if pages is not None and wants_page(request):
            return pages.TemplateResponse(
                request,
                "error.html",
                {"status": status, "phrase": HTTPStatus(status).phrase, "message": message},
                status_code=status,
                headers={**headers, "Cache-Control": "no-store"},
            )
        return error_response(status, code, message, headers)

    async def on_ours(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HomekeepError)
        if exc.status_code >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return answer(request, exc.status_code, exc.code, exc.message, exc.headers())

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        code = _STATUS_CODES.get(status, "error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        return answer(request, status, code, detail, dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "invalid_input", _validation_message(exc))

    app.add_exception_handler(HomekeepError, on_ours)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_middleware(CrashGuard)


class CrashGuard:
    """Answer an unhandled exception with a JSON 500 and keep the connection alive.

    Starlette's own ``Exception`` handler re-raises after responding, which makes the
    server log the error twice and drop the keep-alive connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(500, "internal", "internal server error; see the server log")
            await response(scope, receive, send)


def page_context(request: Request) -> dict[str, Any]:
    """What every page's template sees: the caller, their CSRF token, the navigation.

    The navigation lists the areas that have a page and that the caller may use.
    """
    caller = getattr(request.state, "caller", None)
    session = getattr(caller, "session", None)
    nav = getattr(request.app.state, "nav", [])
    return {
        "caller": caller,
        "csrf_token": session.csrf_token if session is not None else "",
        "nav": [area for area in nav if caller is not None and caller.allows(area.name)],
    }


def templates(area_templates: Path | None = None) -> Jinja2Templates:
    """Return page templates: the area's own folder first, then core's ``base.html``."""
    loaders = [FileSystemLoader(str(TEMPLATES_DIR))]
    if area_templates is not None:
        loaders.insert(0, FileSystemLoader(str(area_templates)))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True))
    return Jinja2Templates(env=env, context_processors=[page_context])


def add_health(app: FastAPI, details: Mapping[str, Any]) -> None:
    """``/healthz``: ``ok`` to anyone; the version and ``details`` only with a valid token."""
    from homekeep.core.auth import authenticate

    @app.get("/healthz", tags=["core"])
    async def healthz(request: Request) -> dict[str, Any]:
        """Liveness: answers while the server runs (more with a token: version, parts)."""
        if await authenticate(request, None, required=False) is None:
            return {"status": "ok"}
        return {"status": "ok", **details}


def add_docs(app: FastAPI, title: str) -> None:
    """Serve Swagger UI at ``/docs`` from the installed package: a home LAN may be offline,
    and a CDN would see every visit."""
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
