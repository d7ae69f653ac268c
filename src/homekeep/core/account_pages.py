"""The account page (password, sessions, personal tokens) and the admin's users page."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from homekeep.core import passwords
from homekeep.core.accounts import Accounts, Caller
from homekeep.core.auth import PageForbidden, client_address, require_admin, require_page
from homekeep.core.errors import AuthError, HomekeepError, InvalidInput, NotFound
from homekeep.core.forms import choices, field, page, read_form, redirect
from homekeep.core.users import NAME_RE, User

log = logging.getLogger(__name__)

NOTICES = {
    "password": "Password changed. Your other sessions have ended.",
    "session-ended": "Session ended.",
    "others-ended": "Every other session has ended.",
    "token-revoked": "Token revoked.",
    "added": "User added.",
    "saved": "Access saved.",
    "disabled": "User disabled: their sessions have ended and their tokens stop working.",
    "enabled": "User enabled.",
    "removed": "User removed, with their sessions and tokens.",
}
_TOKEN_ID_RE = re.compile(r"^[0-9a-f]{12}$")


async def _session_caller(request: Request) -> Caller:
    caller = await require_page(None)(request)
    if caller.kind != "session":
        raise PageForbidden("the account page needs a login session, not a token")
    return caller


def _user_of(caller: Caller) -> User:
    assert caller.user is not None  # a session always has its user
    return caller.user


async def _run_form(
    request: Request,
    action: Callable[[FormData], Awaitable[Response]],
    on_error: Callable[[HomekeepError, FormData], Awaitable[Response]],
) -> Response:
    """Run a form's action; a bad form answers ``on_error``'s page, nothing written."""
    form = await read_form(request)
    try:
        return await action(form)
    except HomekeepError as exc:
        return await on_error(exc, form)


def router(templates: Jinja2Templates, areas: tuple[str, ...]) -> APIRouter:
    """The routes under ``/account`` and ``/admin/users``."""
    routes = APIRouter(include_in_schema=False)
    Session = Depends(_session_caller)
    Admin = Depends(require_admin)

    def accounts_of(request: Request) -> Accounts:
        found: Accounts = request.app.state.accounts
        return found

    async def account_page(
        request: Request,
        caller: Caller,
        *,
        error: str = "",
        status: int = 200,
        new_token: dict[str, str] | None = None,
    ) -> Response:
        accounts = accounts_of(request)
        user = _user_of(caller)
        sessions = await accounts.db.run(accounts.sessions.list, user.id)
        tokens = await accounts.db.run(lambda: accounts.tokens.list(user_id=user.id))
        assert caller.session is not None
        context: dict[str, Any] = {
            "user": user,
            "sessions": sessions,
            "current_session": caller.session.id,
            "tokens": [t for t in tokens if t.revoked_at is None],
            "token_areas": areas if user.admin else user.areas,
            "new_token": new_token,
            "error": error,
            "notice": NOTICES.get(request.query_params.get("done", ""), ""),
            "min_length": passwords.MIN_LENGTH,
        }
        return page(templates, request, "account.html", context, status)

    @routes.get("/account")
    async def account(request: Request, caller: Caller = Session) -> Response:
        return await account_page(request, caller)

    async def account_action(
        request: Request, caller: Caller, action: Callable[[FormData], Awaitable[Response]]
    ) -> Response:
        """Run a form's action; a bad form shows the page again with the error."""

        async def again(exc: HomekeepError, form: FormData) -> Response:
            return await account_page(request, caller, error=exc.message, status=exc.status_code)

        return await _run_form(request, action, again)

    @routes.post("/account/password")
    async def change_password(request: Request, caller: Caller = Session) -> Response:
        accounts = accounts_of(request)
        user = _user_of(caller)
        assert caller.session is not None
        keep = caller.session.id

        async def action(form: FormData) -> Response:
            current = field(form, "current", 4096)
            new = field(form, "password", 4096)
            if new != field(form, "password2", 4096):
                raise InvalidInput("the two new passwords differ; type the same one twice")
            passwords.check_text(new)
            try:
                await accounts.db.run(accounts.prove, user.name, current, client_address(request))
            except AuthError as exc:
                if exc.status_code == 401:
                    raise AuthError("the current password is wrong") from exc
                raise
            await accounts.db.run(accounts.users.set_password, user.name, new)
            ended = await accounts.db.run(lambda: accounts.sessions.revoke_all(user.id, keep=keep))
            log.info("%s changed their password; %d other sessions ended", user.name, ended)
            return redirect("/account?done=password")

        return await account_action(request, caller, action)

    @routes.post("/account/sessions/{session_id}/revoke")
    async def end_session(
        session_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],  # SQLite's integers
        request: Request,
        caller: Caller = Session,
    ) -> Response:
        accounts = accounts_of(request)
        user = _user_of(caller)
        assert caller.session is not None
        if not await accounts.db.run(accounts.sessions.revoke, user.id, session_id):
            raise NotFound("no such session of yours; it may have ended already")
        if session_id == caller.session.id:
            return redirect("/login?done=logged-out", clear_session=True)
        return redirect("/account?done=session-ended")

    @routes.post("/account/sessions/revoke-others")
    async def end_others(request: Request, caller: Caller = Session) -> Response:
        accounts = accounts_of(request)
        user = _user_of(caller)
        assert caller.session is not None
        keep = caller.session.id
        await accounts.db.run(lambda: accounts.sessions.revoke_all(user.id, keep=keep))
        return redirect("/account?done=others-ended")

    @routes.post("/account/tokens")
    async def create_token(request: Request, caller: Caller = Session) -> Response:
        accounts = accounts_of(request)
        user = _user_of(caller)
        mine = areas if user.admin else user.areas

        async def action(form: FormData) -> Response:
            name = field(form, "name", 64).strip()
            scopes = choices(form, "scope", mine)
            if not scopes:
                raise InvalidInput("tick at least one area for the token")
            secret = await accounts.db.run(accounts.create_token, user, name, scopes)
            log.info("%s created the token %r for %s", user.name, name, ", ".join(scopes))
            return await account_page(
                request, caller, new_token={"name": name, "secret": secret}, status=201
            )

        return await account_action(request, caller, action)

    @routes.post("/account/tokens/{token_id}/revoke")
    async def revoke_token(token_id: str, request: Request, caller: Caller = Session) -> Response:
        accounts = accounts_of(request)
        user = _user_of(caller)
        if not _TOKEN_ID_RE.match(token_id) or not await accounts.db.run(
            accounts.tokens.revoke_id, token_id, user.id
        ):
            raise NotFound("no such active token of yours")
        return redirect("/account?done=token-revoked")

    async def users_page(
        request: Request, *, error: str = "", name: str = "", status: int = 200
    ) -> Response:
        accounts = accounts_of(request)
        context = {
            "users": await accounts.db.run(accounts.users.list),
            "areas": areas,
            "error": error,
            "name": name,
            "notice": NOTICES.get(request.query_params.get("done", ""), ""),
            "min_length": passwords.MIN_LENGTH,
        }
        return page(templates, request, "users.html", context, status)

    @routes.get("/admin/users")
    async def users(request: Request, caller: Caller = Admin) -> Response:
        return await users_page(request)

    async def admin_action(
        request: Request, caller: Caller, action: Callable[[FormData], Awaitable[str]]
    ) -> Response:
        """Run an admin's form; success goes back to the list with a notice, a bad form
        shows the list again with the error."""

        async def done(form: FormData) -> Response:
            return redirect(f"/admin/users?done={await action(form)}")

        async def again(exc: HomekeepError, form: FormData) -> Response:
            typed = form.get("name")
            shown = typed[:32] if isinstance(typed, str) else ""
            return await users_page(request, error=exc.message, name=shown, status=exc.status_code)

        return await _run_form(request, done, again)

    def target(name: str) -> str:
        if not NAME_RE.match(name):
            raise NotFound("no such user")
        return name

    @routes.post("/admin/users")
    async def add_user(request: Request, caller: Caller = Admin) -> Response:
        accounts = accounts_of(request)

        async def action(form: FormData) -> str:
            name = field(form, "name", 256).strip()
            password = field(form, "password", 4096)
            admin = field(form, "admin", 8) == "1"
            granted = choices(form, "area", areas)
            added = await accounts.db.run(
                lambda: accounts.users.add(
                    name, password, admin=admin, areas=granted, known_areas=areas
                )
            )
            log.info("%s added the %s %r", caller.name, added.role, added.name)
            return "added"

        return await admin_action(request, caller, action)

    @routes.post("/admin/users/{name}/access")
    async def set_access(name: str, request: Request, caller: Caller = Admin) -> Response:
        accounts = accounts_of(request)
        who = target(name)

        async def action(form: FormData) -> str:
            admin = field(form, "admin", 8) == "1"
            granted = choices(form, "area", areas)
            await accounts.db.run(
                lambda: accounts.users.set_access(
                    who, admin=admin, areas=granted, known_areas=areas
                )
            )
            log.info("%s set %r to admin=%s, areas=%s", caller.name, who, admin, granted)
            return "saved"

        return await admin_action(request, caller, action)

    def state_change(verb: str, done: str) -> None:
        @routes.post(f"/admin/users/{{name}}/{verb}", name=f"user-{verb}")
        async def change(name: str, request: Request, caller: Caller = Admin) -> Response:
            accounts = accounts_of(request)
            who = target(name)
            run = {
                "disable": accounts.users.disable,
                "enable": accounts.users.enable,
                "remove": accounts.remove_user,
            }[verb]

            async def action(form: FormData) -> str:
                await accounts.db.run(run, who)
                log.info("%s: %s %r", caller.name, verb, who)
                return done

            return await admin_action(request, caller, action)

    state_change("disable", "disabled")
    state_change("enable", "enabled")
    state_change("remove", "removed")
    return routes
