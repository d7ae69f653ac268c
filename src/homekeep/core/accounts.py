"""Users, sessions and tokens together: who a caller is, what they may use, logging in.

``Accounts`` is what ``homekeep serve`` keeps on ``app.state.accounts`` and what the
``homekeep user`` commands open. Its methods block (SQLite, argon2): async code runs
them with ``await accounts.db.run(...)``. The HTTP side (cookies, bearer headers, CSRF)
is ``core/auth.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from homekeep.core.config import WebSection
from homekeep.core.db import Database
from homekeep.core.errors import AuthError, Conflict, Forbidden, RateLimited
from homekeep.core.paths import DataDir
from homekeep.core.sessions import Session, SessionStore
from homekeep.core.throttle import LoginThrottle
from homekeep.core.tokens import ALL_SCOPES, Token, TokenStore
from homekeep.core.users import MIGRATIONS, User, UserStore

log = logging.getLogger(__name__)

MAX_TOKENS_PER_USER = 50
WRONG = "wrong user name or password"


@dataclass(frozen=True)
class Caller:
    """Who makes a request, and what they may use.

    ``kind`` says how they proved it: a login session, or a token (a CLI token, or a
    user's personal one). ``id`` names what the caller owns: ``user:<id>`` for a user,
    whether they come with a session or with one of their tokens, else the token's id.
    ``areas`` None means every area.
    """

    kind: Literal["session", "token"]
    name: str
    id: str
    areas: frozenset[str] | None
    admin: bool = False
    user: User | None = None
    token: Token | None = None
    session: Session | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        """The areas as a token lists them: ``("all",)`` for every area."""
        return (ALL_SCOPES,) if self.areas is None else tuple(sorted(self.areas))

    def allows(self, area: str) -> bool:
        """True if the caller may use ``area``."""
        return self.areas is None or area in self.areas

    def acts_for(self, client: str) -> bool:
        """True if the caller may act as the sync client ``client``.

        A token says so itself (its client bindings); a logged-in user acts as the client
        of their own name, an admin as any.
        """
        if self.token is not None:
            return self.token.acts_for(client)
        return self.admin or (self.user is not None and self.user.name == client)

    def to_json(self) -> dict[str, object]:
        """What ``/api/whoami`` answers."""
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "kind": self.kind,
            "user": self.user.name if self.user else None,
            "admin": self.admin,
        }


def session_caller(user: User, session: Session) -> Caller:
    """The caller of a request that carries a user's session cookie."""
    return Caller(
        kind="session",
        name=user.name,
        id=f"user:{user.id}",
        areas=None if user.admin else frozenset(user.areas),
        admin=user.admin,
        user=user,
        session=session,
    )


def token_caller(token: Token, user: User | None) -> Caller:
    """The caller of a request with a bearer token: a personal token acts within its user's
    areas (never as an admin), a CLI token within its scopes."""
    scopes = None if ALL_SCOPES in token.scopes else frozenset(token.scopes)
    if user is None:
        return Caller(kind="token", name=token.name, id=token.id, areas=scopes, token=token)
    if not user.admin:
        mine = frozenset(user.areas)
        scopes = mine if scopes is None else scopes & mine
    return Caller(
        kind="token", name=token.name, id=f"user:{user.id}", areas=scopes, user=user, token=token
    )


class Accounts:
    """The users, sessions, tokens and login backoff of one data directory."""

    def __init__(
        self,
        data: DataDir,
        web: WebSection,
        areas: Sequence[str],
        tokens: TokenStore | None = None,
    ) -> None:
        data.ensure()
        self.db = Database(data.core_db, area="accounts", migrations=MIGRATIONS)
        self.users = UserStore(self.db)
        self.sessions = SessionStore(
            self.db,
            idle=timedelta(days=web.session_idle_days),
            lifetime=timedelta(days=web.session_lifetime_days),
        )
        self._own_tokens = tokens is None
        self.tokens = tokens if tokens is not None else TokenStore(data.core_db)
        self.throttle = LoginThrottle()
        self.areas = tuple(areas)

    def prove(self, name: str, password: str, address: str) -> User:
        """The user if the password is theirs; 401 if not, 429 while backing off.

        An unknown name and a wrong password get the same answer after the same work.
        Every password check (the login page, a password change, later the Subsonic API)
        goes through here, so all of them share the backoff.
        """
        shown = name[:64]
        wait = self.throttle.wait(name, address)
        if wait > 0:
            count = self.throttle.failed(name, address)
            wait = max(wait, self.throttle.wait(name, address))
            log.warning(
                "login as %r from %s refused: %d failures in a row, locked for %.0f s",
                shown,
                address,
                count,
                wait,
            )
            raise RateLimited(
                f"too many failed logins; try again in {math.ceil(wait)} s",
                retry_after=math.ceil(wait),
            )
        user = self.users.check_password(name, password)
        if user is None:
            count = self.throttle.failed(name, address)
            log.warning("failed login as %r from %s (%d in a row)", shown, address, count)
            raise AuthError(WRONG)
        self.throttle.succeeded(name)
        return user

    def login(self, name: str, password: str, address: str) -> User:
        """``prove``, then 403 for a disabled user; records the login."""
        user = self.prove(name, password, address)
        if not user.enabled:
            log.warning("login as %r from %s refused: the user is disabled", user.name, address)
            raise Forbidden(f"the user {user.name!r} is disabled; ask an admin to enable it")
        self.users.touch_login(user.id)
        log.info("%s logged in from %s", user.name, address)
        return user

    def start_session(self, user: User, address: str, user_agent: str) -> tuple[str, Caller]:
        """Open a session for a user who just proved who they are; return the cookie secret."""
        secret, session = self.sessions.create(user.id, address, user_agent)
        return secret, session_caller(user, session)

    def session_caller(self, secret: str) -> Caller | None:
        """The caller whose session cookie holds ``secret``, or None (expired, revoked, forged)."""
        session = self.sessions.find(secret)
        if session is None:
            return None
        user = self.users.by_id(session.user_id)
        if user is None or not user.enabled:
            return None
        return session_caller(user, session)

    def token_caller(self, secret: str) -> Caller:
        """The caller of a bearer token, or 401; a personal token dies with its user's access."""
        token = self.tokens.verify(secret)
        if token.user_id is None:
            return token_caller(token, None)
        user = self.users.by_id(token.user_id)
        if user is None:
            raise AuthError("invalid token: its user was removed")
        if not user.enabled:
            raise AuthError(f"token of disabled user {user.name!r}")
        return token_caller(token, user)

    def create_token(self, user: User, name: str, scopes: Iterable[str]) -> str:
        """A personal token for ``user``, scoped within the areas they may use."""
        active = [t for t in self.tokens.list(user_id=user.id) if t.revoked_at is None]
        if len(active) >= MAX_TOKENS_PER_USER:
            raise Conflict(
                f"you have {len(active)} tokens, the most one user may have; revoke one first"
            )
        mine = self.areas if user.admin else user.areas
        return self.tokens.create(name, scopes, mine, user_id=user.id)

    def remove_user(self, name: str) -> User:
        """Remove a user, their sessions, and revoke their tokens."""
        user = self.users.remove(name)
        self.tokens.revoke_user(user.id)
        return user

    def close(self) -> None:
        self.db.close()
        if self._own_tokens:
            self.tokens.close()
