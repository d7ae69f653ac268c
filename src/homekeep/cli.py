"""The one CLI: global options, core commands, and one group per area."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from homekeep import __version__
from homekeep.areas import AREAS, by_name
from homekeep.core.area import LongRunning
from homekeep.core.errors import Conflict, HomekeepError
from homekeep.core.output import print_table
from homekeep.core.paths import default_config_path
from homekeep.core.runtime import Runtime, pass_runtime, tls_options
from homekeep.core.units_cli import service_group
from homekeep.core.users_cli import user_group

if TYPE_CHECKING:
    from homekeep.core.config import Section


def _sections() -> dict[str, type[Section]]:
    """Every config section, core's and each area's (this imports their models)."""
    from homekeep.core.config import CORE_SECTIONS

    return {**CORE_SECTIONS, **{area.name: area.config for area in AREAS}}


class _Root(click.Group):
    """The root group: core commands first, then the areas, loaded only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(area.name for area in AREAS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        area = by_name().get(cmd_name)
        if area is not None:
            return area.cli()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands; an area shows its summary, so its CLI is not imported."""
        width = formatter.width - 6 if formatter.width else 74
        rows = []
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(width)))
        rows += [(area.name, area.summary) for area in AREAS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homekeep")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="HOMEKEEP_CONFIG",
    help="Config file (default: ~/.config/homekeep/config.toml if present).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="HOMEKEEP_DATA_DIR",
    help="Data directory (default: ~/.local/share/homekeep).",
)
@click.option("-v", "--verbose", count=True, help="More output: -v info, -vv debug.")
@click.option("--debug", is_flag=True, help="Debug logging, and tracebacks on errors.")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, data_dir: Path | None, verbose: int, debug: bool
) -> None:
    """homekeep: a home server's file and media chores in one tool."""
    _state["debug"] = debug
    ctx.obj = Runtime(
        sections=_sections,
        area_names=tuple(area.name for area in AREAS),
        config_path=config_path,
        data_dir=data_dir,
        verbose=verbose,
        debug=debug,
    )


@cli.command()
@click.option("--host", help="Address to listen on (default from [server] host: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="TCP port (default 8080; 0: any).")
@tls_options
@pass_runtime
def serve(
    rt: Runtime,
    host: str | None,
    port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Start the web server: every area's API under /api/, its pages, and /docs."""
    # The web stack (FastAPI, uvicorn) loads only for this command: every other command
    # starts faster without it.
    from homekeep.app import create_app
    from homekeep.core.server import serve as serve_app

    rt.settings.validate()  # a mistake in any section stops the server before it starts
    settings = rt.override_server(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)
    rt.setup_logging()
    server = settings.server
    app = create_app(settings)
    fresh = app.state.accounts.users.count() == 0

    def ready(url: str) -> None:
        click.echo(f"homekeep {__version__} serving at {url}/ (Ctrl-C stops)")
        if fresh:
            click.echo(
                "no user yet: create the first admin with 'homekeep user add NAME --admin', "
                f"or open {url}/setup in a browser on this machine"
            )

    serve_app(
        app,
        host=server.host,
        port=server.port,
        tls_cert=server.tls_cert,
        tls_key=server.tls_key,
        limits=server.limits(),
        on_ready=ready,
    )


@cli.group()
def config() -> None:
    """Write, and show, the configuration file."""


@config.command("init")
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_init(path: Path | None, force: bool) -> None:
    """Write a commented config file with every key at its default."""
    from homekeep.core.config import default_config_text
    from homekeep.core.files import write_atomic

    target = path or default_config_path()
    if target.exists() and not force:
        raise Conflict(f"{target} already exists; pass --force to overwrite it")
    write_atomic(target, default_config_text(_sections()).encode("utf-8"))
    click.echo(f"wrote {target}")


@config.command("show")
@pass_runtime
def config_show(rt: Runtime) -> None:
    """Print the effective config as TOML (file, environment and defaults; secrets masked)."""
    settings = rt.settings
    settings.validate()
    source = settings.path or "embedded defaults"
    click.echo(f"# effective config; file: {source}; data dir: {settings.data.root}")
    click.echo(settings.to_toml(), nl=False)


@cli.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="AREA",
    help="An area this token may write to (or an area's extra scope, e.g. convert-worker); "
    "repeat for more, or 'all'.",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="NAME",
    help="A client this token may act as (sync: the client's folder); repeat for more, "
    "or '*' for any. Without it: only the client named like the token.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def token_create(
    rt: Runtime, name: str, scopes: tuple[str, ...], clients: tuple[str, ...], as_json: bool
) -> None:
    """Create a token; its secret is printed once and stored only as a hash."""
    store = rt.tokens()
    try:
        scopes_known = [*rt.area_names, *(s for area in AREAS for s in area.scopes)]
        secret = store.create(name, scopes, scopes_known, clients)
    finally:
        store.close()
    if as_json:
        click.echo(
            json.dumps(
                {"name": name, "scopes": list(scopes), "clients": list(clients), "token": secret}
            )
        )
        return
    click.echo(secret)
    acting = f" as {', '.join(clients)}" if clients else ""
    click.echo(
        f"token {name!r} for {', '.join(scopes)}{acting}: store it now, it is not shown again",
        err=True,
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def token_list(rt: Runtime, as_json: bool) -> None:
    """List tokens (never their secrets), with the user a personal token belongs to."""
    accounts = rt.accounts()
    try:
        tokens = accounts.tokens.list()
        owners = {u.id: u.name for u in accounts.users.list()}
    finally:
        accounts.close()

    def owner(user_id: int | None) -> str | None:
        return None if user_id is None else owners.get(user_id, "(removed)")

    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "scopes": list(t.scopes),
                        "clients": list(t.clients),
                        "user": owner(t.user_id),
                        "created_at": t.created_at,
                        "last_used_at": t.last_used_at,
                        "revoked_at": t.revoked_at,
                    }
                    for t in tokens
                ],
                indent=2,
            )
        )
        return
    print_table(
        [
            (
                t.name,
                ",".join(t.scopes),
                ",".join(t.clients) or f"{t.name} (its name)",
                owner(t.user_id),
                t.created_at,
                t.last_used_at,
                f"revoked {t.revoked_at}" if t.revoked_at else "active",
            )
            for t in tokens
        ],
        ("name", "scopes", "clients", "user", "created", "last used", "state"),
    )


@token.command("revoke")
@click.argument("name")
@pass_runtime
def token_revoke(rt: Runtime, name: str) -> None:
    """Revoke a token: requests that present it get 401 from now on."""
    store = rt.tokens()
    try:
        store.revoke(name)
    finally:
        store.close()
    click.echo(f"revoked {name}")


def _long_running() -> list[LongRunning]:
    serve_cmd = LongRunning("serve", ("serve",), "the web server with every area")
    return [serve_cmd, *(c for area in AREAS for c in area.long_running)]


cli.add_command(service_group(_long_running))
cli.add_command(user_group)

_state: dict[str, bool] = {"debug": False}


def main() -> None:
    """Entry point: one top-level handler turns every error into one line and an exit code."""
    try:
        cli.main(prog_name="homekeep", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "homekeep"
        click.echo(f"error: {exc.format_message()}; see '{where} --help'", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except HomekeepError as exc:
        if _state["debug"]:
            raise
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc}; "
            "rerun with --debug for the traceback",
            err=True,
        )
        sys.exit(1)
