"""`homekeep service install|uninstall|list`: systemd units for every long-running command."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from homekeep.core import units
from homekeep.core.area import LongRunning
from homekeep.core.errors import UsageError
from homekeep.core.output import json_option, print_json, print_table
from homekeep.core.runtime import Runtime, pass_runtime


def service_group(commands: Callable[[], Sequence[LongRunning]]) -> click.Group:
    """The `service` group over the long-running commands that ``commands`` lists."""

    def find(name: str) -> LongRunning:
        known = {c.name: c for c in commands()}
        if name not in known:
            raise UsageError(f"no long-running command {name!r}; choose from: {', '.join(known)}")
        return known[name]

    def where(system: bool, unit_dir: Path | None) -> Path:
        return unit_dir or units.unit_dir(system=system)

    options = [
        click.option("--system", is_flag=True, help="A system unit (root) instead of a user unit."),
        click.option(
            "--unit-dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Write the unit here instead of systemd's folder.",
        ),
        click.option("--instance", default="", help="Suffix for a second unit of one command."),
    ]

    def with_options(fn: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    @click.group("service")
    def group() -> None:
        """Run homekeep's long-running commands as systemd services."""

    @group.command("list")
    @json_option()
    @click.option("--system", is_flag=True, help="Look at system units.")
    @pass_runtime
    def list_cmd(rt: Runtime, as_json: bool, system: bool) -> None:
        """The commands that can be services, and which are installed."""
        folder = units.unit_dir(system=system)
        rows = []
        for c in commands():
            unit = folder / units.unit_name(c)
            rows.append(
                {
                    "name": c.name,
                    "command": " ".join(["homekeep", *c.args, *([c.needs] if c.needs else [])]),
                    "description": c.description,
                    "unit": str(unit),
                    "installed": unit.is_file(),
                }
            )
        if as_json:
            print_json(rows)
            return
        print_table(
            [(r["name"], r["command"], "yes" if r["installed"] else "no") for r in rows],
            ("name", "command", "installed"),
        )

    @group.command("install")
    @click.argument("name")
    @click.argument("extra", nargs=-1)
    @with_options
    @click.option("--no-start", is_flag=True, help="Only write the unit; do not enable it.")
    @click.option("--run-as", default="", help="System units: the user to run as.")
    @pass_runtime
    def install_cmd(
        rt: Runtime,
        name: str,
        extra: tuple[str, ...],
        system: bool,
        unit_dir: Path | None,
        instance: str,
        no_start: bool,
        run_as: str,
    ) -> None:
        """Write a unit for NAME (e.g. serve, convert-worker), enable and start it.

        EXTRA arguments go to the command (sync-watch needs its FOLDER).
        """
        command = find(name)
        settings = rt.settings
        text = units.render(
            command,
            data_dir=settings.data.root.resolve(),
            config=settings.path.resolve() if settings.path else None,
            extra=extra,
            system=system,
            run_as=run_as,
        )
        unit = units.unit_name(command, instance)
        path = units.install(
            text, unit, folder=where(system, unit_dir), start=not no_start, system=system
        )
        state = "written" if no_start else "enabled and started"
        click.echo(f"{unit} {state}: {path}")

    @group.command("uninstall")
    @click.argument("name")
    @with_options
    @click.option("--no-stop", is_flag=True, help="Only remove the file; do not call systemctl.")
    def uninstall_cmd(
        name: str, system: bool, unit_dir: Path | None, instance: str, no_stop: bool
    ) -> None:
        """Stop, disable and remove the unit of NAME."""
        unit = units.unit_name(find(name), instance)
        path = units.uninstall(
            unit, folder=where(system, unit_dir), stop=not no_stop, system=system
        )
        click.echo(f"{unit} removed: {path}")

    return group
