"""How an area plugs in: what it declares, and what it is handed at run time.

An area is a subpackage ``homekeep/<name>/`` whose ``__init__.py`` defines ``AREA``.
``homekeep/areas.py`` lists the areas that exist; the CLI and the app read only that list.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from homekeep.core.accounts import Accounts, Caller
    from homekeep.core.config import Section, Settings
    from homekeep.core.db import Database
    from homekeep.core.paths import DataDir
    from homekeep.core.tokens import TokenStore

S = TypeVar("S", bound="Section")
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
class LongRunning:
    """A command that runs until stopped, and so can be a service.

    ``args`` follow ``homekeep`` on the command line; ``needs`` names the arguments the
    person must add (e.g. ``FOLDER``), empty when the command takes none.
    """

    name: str
    args: tuple[str, ...]
    description: str
    needs: str = ""


def load(ref: str) -> Any:
    """Import ``"package.module:name"`` and return the name."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Area:
    """An area's declaration: names of what it provides, imported only when used.

    ``config``, ``cli`` and ``web`` are references ``"module:name"`` to its config
    section, its click group and its ``build(ctx) -> WebParts``: so listing the areas
    (``homekeep --help``, ``--version``) imports none of them.
    ``debian_packages`` maps each Debian package the area drives or tests with to why;
    scripts/debian-packages.txt is generated from them.
    """

    name: str
    title: str
    summary: str
    config_ref: str
    cli_ref: str
    web_ref: str | None = None
    debian_packages: Mapping[str, str] = field(default_factory=dict)
    # Token scopes beyond the area's own name (e.g. "convert-worker").
    scopes: tuple[str, ...] = ()
    # Commands that run until stopped: `homekeep service install` makes units of them.
    long_running: tuple[LongRunning, ...] = ()

    @property
    def config(self) -> type[Section]:
        """The area's config section model."""
        model: type[Section] = load(self.config_ref)
        return model

    def cli(self) -> click.Group:
        """The area's click group."""
        group: click.Group = load(self.cli_ref)
        return group

    def web(self, ctx: AreaContext) -> WebParts:
        """What the area mounts into ``homekeep serve``."""
        if self.web_ref is None:
            return WebParts()
        parts: WebParts = load(self.web_ref)(ctx)
        return parts


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
        from homekeep.core.db import Database

        return Database(
            self.settings.data.area_db(self.name), area=self.name, migrations=migrations
        )
