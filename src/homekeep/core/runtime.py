"""What every CLI command is handed: the global options, the settings, loaded once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from homekeep.core.area import AreaContext

if TYPE_CHECKING:
    from homekeep.core.config import Section, Settings
    from homekeep.core.tokens import TokenStore

if TYPE_CHECKING:
    from homekeep.core.accounts import Accounts


@dataclass
class Runtime:
    """Global CLI state; settings load on first use so ``--help`` never reads a file."""

    sections: Callable[[], Mapping[str, type[Section]]]  # imports every config model
    area_names: tuple[str, ...]
    config_path: Path | None = None
    data_dir: Path | None = None
    verbose: int = 0
    debug: bool = False
    _logging_ready: bool = field(default=False, repr=False)

    @cached_property
    def settings(self) -> Settings:
        from homekeep.core.config import load_settings

        settings = load_settings(
            self.config_path, self.sections(), data_dir=self.data_dir, validate=False
        )
        for warning in settings.warnings:
            click.echo(f"warning: {warning}", err=True)
        return settings

    def setup_logging(self) -> None:
        """Console at WARNING (INFO with -v, DEBUG with -vv or --debug) plus the log file."""
        if self._logging_ready:
            return
        from homekeep.core.logs import level_from_name, setup_logging

        settings = self.settings
        console = logging.WARNING
        if self.verbose == 1:
            console = logging.INFO
        if self.verbose >= 2 or self.debug:
            console = logging.DEBUG
        settings.data.ensure()
        setup_logging(
            console_level=console,
            file=settings.logging.file or settings.data.logs / "homekeep.log",
            file_level=logging.DEBUG if self.debug else level_from_name(settings.logging.level),
            max_bytes=settings.logging.max_bytes,
            backup_count=settings.logging.backup_count,
        )
        self._logging_ready = True

    def override_server(self, **options: object) -> Settings:
        """Apply a serve command's ``--host/--port/--tls-*`` (those given) to [server]."""
        given = {key: value for key, value in options.items() if value is not None}
        server = self.settings.server.model_copy(update=given)
        self.settings = self.settings.with_section("server", server)
        return self.settings

    def tokens(self) -> TokenStore:
        """Open the token store in the data directory."""
        from homekeep.core.tokens import TokenStore

        self.settings.data.ensure()
        return TokenStore(self.settings.data.core_db)

    def accounts(self) -> Accounts:
        """Open the users, sessions and tokens of the data directory."""
        from homekeep.core.accounts import Accounts

        return Accounts(self.settings.data, self.settings.web, self.area_names)

    def area(self, name: str) -> AreaContext:
        """Return the context handed to one area's commands."""
        self.setup_logging()
        return AreaContext(name=name, settings=self.settings)


pass_runtime = click.make_pass_decorator(Runtime)


def tls_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tls-cert`` and ``--tls-key``: the PEM certificate and key of a server's HTTPS."""
    existing = click.Path(path_type=Path, dir_okay=False, exists=True)
    command = click.option("--tls-key", type=existing, help="Its private key (PEM).")(command)
    return click.option(
        "--tls-cert", type=existing, help="Serve HTTPS with this certificate (PEM)."
    )(command)
