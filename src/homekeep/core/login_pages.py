"""The pages before a session: log in, log out, and the first admin on a fresh server."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from homekeep.core import csrf, passwords
from homekeep.core.accounts import Accounts
from homekeep.core.auth import authenticate, client_address, safe_next
from homekeep.core.errors import Forbidden, HomekeepError, InvalidInput
from homekeep.core.forms import (
    check_anonymous_form,
    field,
    form_token,
    page,
    read_form,
    redirect,
    set_form_cookie,
    set_session_cookie,
)
from homekeep.core.proxies import is_loopback
from homekeep.core.users import User

log = logging.getLogger(__name__)

NOTICES = {"logged-out": "You are logged out."}
NOT_LOCAL = (
    "the first admin can be created only from the server itself: open this page in a "
    "browser on the server (http://127.0.0.1:PORT/setup), or run "
    "'homekeep user add NAME --admin' there"
)


def router(templates: Jinja2Templates) -> APIRouter:
    """The routes ``/login``, ``/logout`` and ``/setup``."""
    routes = APIRouter(include_in_schema=False)

    def accounts_of(request: Request) -> Accounts:
        found: Accounts = request.app.state.accounts
        return found

    async def login_page(
        request: Request, *, error: str = "", name: str = "", next_url: str = "/", status: int = 200
    ) -> Response:
        accounts = accounts_of(request)
        token = form_token(request)
        response = page(
            templates,
            request,
            "login.html",
            {
                "error": error,
                "name": name,
                "next": next_url,
                "form_token": token,
                "no_users": await accounts.db.run(accounts.users.count) == 0,
                "notice": NOTICES.get(request.query_params.get("done", ""), ""),
            },
            status=status,
        )
        set_form_cookie(response, request, token)
        return response

    async def start(request: Request, accounts: Accounts, user: User, target: str) -> Response:
        address = client_address(request)
        agent = request.headers.get("user-agent", "")
        secret, _ = await accounts.db.run(accounts.start_session, user, address, agent)
        response = redirect(target)
        lifetime = int(accounts.sessions.lifetime.total_seconds())
        set_session_cookie(response, request, secret, lifetime)
        return response

    @routes.get("/login")
    async def login_form(request: Request) -> Response:
        next_url = safe_next(request.query_params.get("next"))
        if await authenticate(request, None, required=False) is not None:
            return redirect(next_url)
        return await login_page(request, next_url=next_url)

    @routes.post("/login")
    async def login(request: Request) -> Response:
        accounts = accounts_of(request)
        form = await read_form(request)
        check_anonymous_form(request, form)
        next_url = safe_next(field(form, "next", 4096))
        # any name or password up to the form's bound gets the same answer as a wrong one
        name = field(form, "name", csrf.MAX_FORM_BYTES).strip()
        password = field(form, "password", csrf.MAX_FORM_BYTES)
        if not name or not password:
            return await login_page(
                request,
                error="give your user name and your password",
                name=name[:64],
                next_url=next_url,
                status=422,
            )
        try:
            user = await accounts.db.run(accounts.login, name, password, client_address(request))
        except HomekeepError as exc:
            response = await login_page(
                request,
                error=exc.message,
                name=name[:64],
                next_url=next_url,
                status=exc.status_code,
            )
            response.headers.update(exc.headers())
            return response
        return await start(request, accounts, user, next_url)

    @routes.get("/logout")
    async def logout_form(request: Request) -> Response:
        caller = await authenticate(request, None, required=False)
        if caller is None or caller.session is None:
            return redirect("/login")
        return page(templates, request, "logout.html", {})

    @routes.post("/logout")
    async def logout(request: Request) -> Response:
        accounts = accounts_of(request)
        caller = await authenticate(request, None, required=False)
        if caller is not None and caller.session is not None and caller.user is not None:
            await accounts.db.run(accounts.sessions.revoke, caller.user.id, caller.session.id)
            log.info("%s logged out", caller.name)
        return redirect("/login?done=logged-out", clear_session=True)

    async def setup_allowed(request: Request) -> Response | None:
        """A redirect once a user exists; 403 to a client not on this machine."""
        accounts = accounts_of(request)
        if await accounts.db.run(accounts.users.count) > 0:
            return redirect("/login")
        address = client_address(request)
        if not is_loopback(address):
            log.warning("first-admin page refused to %s: not a loopback client", address)
            raise Forbidden(NOT_LOCAL)
        return None

    def setup_page(
        request: Request, *, error: str = "", name: str = "", status: int = 200
    ) -> Response:
        token = form_token(request)
        response = page(
            templates,
            request,
            "setup.html",
            {
                "error": error,
                "name": name,
                "form_token": token,
                "min_length": passwords.MIN_LENGTH,
            },
            status=status,
        )
        set_form_cookie(response, request, token)
        return response

    @routes.get("/setup")
    async def setup_form(request: Request) -> Response:
        return await setup_allowed(request) or setup_page(request)

    @routes.post("/setup")
    async def setup(request: Request) -> Response:
        accounts = accounts_of(request)
        refused = await setup_allowed(request)
        if refused is not None:
            return refused
        form = await read_form(request)
        check_anonymous_form(request, form)
        name = field(form, "name", 256).strip()
        try:
            password = field(form, "password", 4096)
            if password != field(form, "password2", 4096):
                raise InvalidInput("the two passwords differ; type the same one twice")
            user = await accounts.db.run(
                lambda: accounts.users.add(name, password, admin=True, only_if_first=True)
            )
        except HomekeepError as exc:
            return setup_page(request, error=exc.message, name=name[:32], status=exc.status_code)
        log.warning("first admin %r created from %s", user.name, client_address(request))
        return await start(request, accounts, user, "/")

    return routes
