"""Reading the url-encoded forms of our own pages, bounded, and answering them with pages."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from homekeep.core import csrf
from homekeep.core.auth import SESSION_COOKIE
from homekeep.core.errors import Forbidden, InvalidInput, PayloadTooLarge, UnsupportedMedia

NO_STORE = {"Cache-Control": "no-store"}
FORM_COOKIE_SECONDS = 86_400


async def read_form(request: Request) -> FormData:
    """The request's url-encoded form: 415 for another type, 413 past 64 KiB."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UnsupportedMedia("send the form as application/x-www-form-urlencoded")
    try:
        length = int(request.headers.get("content-length", ""))
    except ValueError:
        raise PayloadTooLarge("a form needs a Content-Length of at most 64 KiB") from None
    if length > csrf.MAX_FORM_BYTES:
        raise PayloadTooLarge("the form is larger than 64 KiB")
    return await request.form(max_fields=64)


def field(form: FormData, name: str, max_length: int) -> str:
    """One text field of a form ('' when missing); 422 when longer than ``max_length``."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text")
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters")
    return value


def choices(form: FormData, name: str, allowed: tuple[str, ...]) -> list[str]:
    """The values of a repeated checkbox field; 422 for one not in ``allowed``."""
    values = form.getlist(name)
    for value in values:
        if not isinstance(value, str) or value not in allowed:
            shown = value[:40] if isinstance(value, str) else "a file"
            raise InvalidInput(f"unknown {name} {shown!r}; choose from: {', '.join(allowed)}")
    return [v for v in values if isinstance(v, str)]


def form_token(request: Request) -> str:
    """The anonymous forms' CSRF token: the double-submit cookie's value, or a new one."""
    current = request.cookies.get(csrf.FORM_COOKIE, "")
    return current if len(current) == 43 else csrf.new_token()


def check_anonymous_form(request: Request, form: FormData) -> None:
    """The CSRF checks of a form sent before any session (login, first admin)."""
    csrf.check_origin(request)
    cookie = request.cookies.get(csrf.FORM_COOKIE, "")
    supplied = form.get(csrf.CSRF_FIELD, "")
    if not cookie or not isinstance(supplied, str) or not supplied:
        raise Forbidden("the form has expired: reload the page and send it again")
    if not hmac.compare_digest(cookie.encode(), supplied.encode()):
        raise Forbidden("the form has expired: reload the page and send it again")


def page(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page that no cache keeps (it may hold a CSRF token or a new token's secret)."""
    return templates.TemplateResponse(
        request, name, dict(context), status_code=status, headers={**NO_STORE, **(headers or {})}
    )


def set_form_cookie(response: Response, request: Request, token: str) -> None:
    """Keep the anonymous forms' CSRF token in its cookie."""
    response.set_cookie(
        csrf.FORM_COOKIE,
        token,
        max_age=FORM_COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def set_session_cookie(response: Response, request: Request, secret: str, seconds: int) -> None:
    """Hand the browser its session: HttpOnly, SameSite=Lax, Secure under TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def redirect(target: str, *, clear_session: bool = False) -> RedirectResponse:
    """303 to ``target`` (a path of ours), optionally dropping the session cookie."""
    response = RedirectResponse(target, status_code=303, headers=NO_STORE)
    if clear_session:
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
    return response
