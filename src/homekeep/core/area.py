"""How an area plugs in: what it declares, and what it is handed at run time.

An area is a subpackage ``homekeep/<name>/`` whose ``__init__.py`` defines ``AREA``.
``homekeep/areas.py`` lists the areas that exist; the CLI and the app read only that list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from homekeep.core.config import Section, Settings
from homekeep.core.db import Database
from homekeep.core.paths import DataDir

if TYPE_CHECKING:
    from fastapi import APIRouter

    from homekeep.core.accounts import Accounts, Caller
    from homekeep.core.tokens import TokenStore

S = TypeVar("S", bound=Section)
Hook = Callable[[], Awaitable[None]]
# Labels, in order, and what the landing page shows for each (a short text or a number).
Summary = dict[str, str | int | float | None]


@dataclass(frozen=True)
class WebParts:
    """What an area mounts into ``homekeep serve``.

    ``api`` is mounted under ``/api/<area>`` (its routes authenticate with
    ``core.auth``); ``pages`` under ``/<area>``, where every route needs a logged-in user
    who may use the area (a redirect to the login page otherwise); ``root`` holds the few
    routes a protocol fixes at the top level, public unless they check (short image links
    ``/i/<id>``). ``summary`` gives the landing page the area's live state for a caller
    (counts, last runs): a few labelled values, quick to compute.
    """

    api: APIRouter | None = None
    pages: APIRouter | None = None
    root: APIRouter | None = None
    static_dir: Path | None = None
    startup: Sequence[Hook] = ()
    shutdown: Sequence[Hook] = ()
    summary: Callable[[Caller], Awaitable[Summary]] | None = None


@dataclass(frozen=True)
class Area:
    """An area's declaration. Keep the area's ``__init__`` light: the rest loads lazily."""

    name: str
    title: str
    summary: str
    config: type[Section]
    cli: Callable[[], click.Group]
    web: Callable[[AreaContext], WebParts] | None = None
    debian_packages: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class AreaContext:
    """What an area is handed: its settings, its folder, its database, the token store,
    and under ``homekeep serve`` the accounts (users, sessions, login backoff)."""

    name: str
    settings: Settings
    tokens: TokenStore | None = None
    accounts: Accounts | None = None

    @property
    def data(self) -> DataDir:
        return self.settings.data

    @property
    def dir(self) -> Path:
        """The area's own folder in the data directory (created on first use)."""
        return self.settings.data.area(self.name)

    def config(self, model: type[S]) -> S:
        """Return the area's config section, typed."""
        return self.settings.section(self.name, model)

    def database(self, migrations: Sequence[str]) -> Database:
        """Open (and migrate) the area's SQLite file."""
        return Database(
            self.settings.data.area_db(self.name), area=self.name, migrations=migrations
        )
