"""The /rest/ router: one route for every endpoint, GET or form POST, with or without .view.

Subsonic clients expect HTTP 200 with ``status="failed"`` and an error code in the body,
so every failure of an endpoint (ours or a library error) becomes a Subsonic error here;
only an unknown endpoint is a 404 (with the same body).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from homekeep.core.accounts import Accounts
from homekeep.core.auth import client_address
from homekeep.core.errors import AuthError, HomekeepError, NotFound
from homekeep.music.service import Service
from homekeep.music.streaming import Transcoder
from homekeep.music.subsonic import browse, media, personal
from homekeep.music.subsonic.auth import authenticate
from homekeep.music.subsonic.calls import Call, Handler, Scans
from homekeep.music.subsonic.params import Params
from homekeep.music.subsonic.responses import (
    GENERIC,
    NOT_AUTHORISED,
    NOT_FOUND,
    SubsonicError,
    error,
    render,
)
from homekeep.music.userdata import UserData

MAX_BODY = 256 * 1024
HANDLERS: dict[str, Handler] = {**browse.HANDLERS, **media.HANDLERS, **personal.HANDLERS}
# web clients (Feishin, Airsonic Refix) call from their own origin; the credentials are in
# the parameters, never in a cookie, so any origin may read the answers
CORS = {"Access-Control-Allow-Origin": "*"}


def translate(exc: HomekeepError) -> SubsonicError:
    """Our error as the Subsonic code that says the same."""
    if isinstance(exc, NotFound):
        return SubsonicError(NOT_FOUND, exc.message)
    if isinstance(exc, AuthError):
        return SubsonicError(NOT_AUTHORISED, exc.message)
    return SubsonicError(GENERIC, exc.message)


async def _items(request: Request) -> list[tuple[str, str]]:
    """The query string's parameters, then a form body's (OpenSubsonic formPost)."""
    items = list(request.query_params.multi_items())
    if request.method != "POST":
        return items
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return items
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise SubsonicError(GENERIC, f"the form is over {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubsonicError(GENERIC, "the form is not UTF-8") from exc
    return items + parse_qsl(text, keep_blank_values=True, max_num_fields=10_000)


def subsonic_router(svc: Service, accounts: Accounts, transcoder: Transcoder) -> APIRouter:
    """The Subsonic API, on the music library and core's users."""
    passwords = svc.subsonic_passwords()
    data = UserData(svc.db)
    scans = Scans(svc)
    router = APIRouter()

    @router.api_route("/rest/{endpoint}", methods=["GET", "POST"], include_in_schema=False)
    async def call(endpoint: str, request: Request) -> Response:
        """Run one Subsonic endpoint for an authenticated user."""
        query = request.query_params
        fmt, callback = query.get("f"), query.get("callback")
        name = endpoint.removesuffix(".view")
        handler = HANDLERS.get(name)
        try:
            if handler is None:
                answer = error(SubsonicError(NOT_FOUND, f"unknown endpoint {name[:60]!r}"),
                               fmt, callback)  # fmt: skip
                answer.status_code = 404
                return answer
            params = Params(await _items(request))
            fmt, callback = params.get("f") or fmt, params.get("callback") or callback
            address = client_address(request)
            user = await run_in_threadpool(authenticate, params, accounts, passwords, address)
            ctx = Call(params, user, svc, data, transcoder, scans, request.headers.get("range"))
            result = await run_in_threadpool(handler, ctx)
        except SubsonicError as exc:
            return _cors(error(exc, fmt, callback))
        except HomekeepError as exc:
            if exc.status_code == 416:
                raise  # a bad Range on a stream is an HTTP answer, not a Subsonic one
            return _cors(error(translate(exc), fmt, callback))
        if isinstance(result, Response):
            return _cors(result)
        return _cors(render(result, fmt, callback))

    return router


def _cors(response: Response) -> Response:
    response.headers.update(CORS)
    return response
