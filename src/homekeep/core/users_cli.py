"""``homekeep user ...``: add, list, change and remove the people who log in."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from homekeep.core import passwords
from homekeep.core.errors import InvalidInput, UsageError
from homekeep.core.output import json_option, print_json, print_table
from homekeep.core.runtime import Runtime, pass_runtime

if TYPE_CHECKING:
    from homekeep.core.accounts import Accounts
    from homekeep.core.users import User

log = logging.getLogger(__name__)
_STDIN_HELP = "Read the password from the first line of standard input (for scripts)."


def read_password(from_stdin: bool) -> str:
    """The new password: asked twice on a terminal, or one line of standard input."""
    if from_stdin:
        line = sys.stdin.readline(passwords.MAX_LENGTH + 2)
        password = line.removesuffix("\n").removesuffix("\r")
        if len(password) > passwords.MAX_LENGTH:
            raise InvalidInput(
                f"the password is too long: use at most {passwords.MAX_LENGTH} characters"
            )
    else:
        if not sys.stdin.isatty():
            raise UsageError(
                "no terminal to ask for the password on; pipe it in with --password-stdin"
            )
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Password again", err=True
        )
    return passwords.check_text(password)


def _describe(user: User) -> str:
    if user.admin:
        return f"admin {user.name!r} (every area)"
    return f"user {user.name!r} (areas: {', '.join(user.areas) or 'none'})"


def _with_accounts(rt: Runtime, work: Callable[[Accounts], str]) -> None:
    """Run one change on the accounts, print what it did and log it (never a password)."""
    rt.setup_logging()
    accounts = rt.accounts()
    try:
        message = work(accounts)
    finally:
        accounts.close()
    log.info("homekeep user: %s", message)
    click.echo(message)


@click.group("user")
def user_group() -> None:
    """Add, list, change and remove the users who log in to the web pages."""


@user_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="An admin: every area, and manages users.")
@click.option(
    "--area", "areas", multiple=True, metavar="AREA", help="An area the user may use; repeat."
)
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@pass_runtime
def user_add(
    rt: Runtime, name: str, admin: bool, areas: tuple[str, ...], password_stdin: bool
) -> None:
    """Add a user; the password is asked twice (never shown, stored as an argon2id hash)."""
    from homekeep.core.users import check_areas, check_name

    check_name(name)
    check_areas(areas, rt.area_names)
    password = read_password(password_stdin)

    def add(accounts: Accounts) -> str:
        user = accounts.users.add(
            name, password, admin=admin, areas=areas, known_areas=rt.area_names
        )
        return f"added {_describe(user)}"

    _with_accounts(rt, add)


@user_group.command("list")
@json_option()
@pass_runtime
def user_list(rt: Runtime, as_json: bool) -> None:
    """List the users, their role, areas and state (never their passwords)."""
    accounts = rt.accounts()
    try:
        users = accounts.users.list()
    finally:
        accounts.close()
    if as_json:
        print_json([u.to_json() for u in users])
        return
    print_table(
        [
            (
                u.name,
                u.role,
                "all" if u.admin else ", ".join(u.areas) or "-",
                "enabled" if u.enabled else "disabled",
                u.created_at[:16].replace("T", " "),
                (u.last_login_at or "never")[:16].replace("T", " "),
            )
            for u in users
        ],
        ("name", "role", "areas", "state", "created (UTC)", "last login"),
    )


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@pass_runtime
def user_passwd(rt: Runtime, name: str, password_stdin: bool) -> None:
    """Set a user's password; their sessions end (their tokens stay)."""
    accounts = rt.accounts()
    try:
        user = accounts.users.get(name)  # before asking: an unknown name fails at once
    finally:
        accounts.close()
    password = read_password(password_stdin)

    def change(accounts: Accounts) -> str:
        accounts.users.set_password(user.name, password)
        ended = accounts.sessions.revoke_all(user.id)
        return f"changed the password of {user.name!r}; {ended} sessions ended"

    _with_accounts(rt, change)


@user_group.command("access")
@click.argument("name")
@click.option("--admin/--no-admin", default=None, help="Make an admin, or a plain user.")
@click.option(
    "--area",
    "areas",
    multiple=True,
    metavar="AREA",
    help="An area the user may use; repeat. The areas given replace the old ones.",
)
@pass_runtime
def user_access(rt: Runtime, name: str, admin: bool | None, areas: tuple[str, ...]) -> None:
    """Set a user's role and areas."""

    def change(accounts: Accounts) -> str:
        current = accounts.users.get(name)
        user = accounts.users.set_access(
            current.name,
            admin=current.admin if admin is None else admin,
            areas=areas,
            known_areas=rt.area_names,
        )
        return f"{_describe(user)}"

    _with_accounts(rt, change)


@user_group.command("disable")
@click.argument("name")
@pass_runtime
def user_disable(rt: Runtime, name: str) -> None:
    """Disable a user: no login, their sessions end, their tokens stop working."""
    _with_accounts(rt, lambda a: f"disabled {a.users.disable(name).name!r}")


@user_group.command("enable")
@click.argument("name")
@pass_runtime
def user_enable(rt: Runtime, name: str) -> None:
    """Let a disabled user log in again."""
    _with_accounts(rt, lambda a: f"enabled {a.users.enable(name).name!r}")


@user_group.command("remove")
@click.argument("name")
@pass_runtime
def user_remove(rt: Runtime, name: str) -> None:
    """Remove a user with their sessions; their tokens are revoked."""
    _with_accounts(rt, lambda a: f"removed {a.remove_user(name).name!r}")
