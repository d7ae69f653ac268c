"""What every CLI command prints with: sizes and durations for people, tables or JSON.

Rich loads only when a table is printed, so commands that print none start faster.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: float | None) -> str:
    """A byte count for people: ``0 B``, ``1.2 MiB``; None is ``-``."""
    if size is None:
        return "-"
    value = float(size)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """A duration for people: ``85.2 ms``, ``2.35 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def plural(count: int, noun: str, nouns: str = "") -> str:
    """``1 file``, ``2 files`` (``nouns`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def json_option(text: str = "Print JSON.") -> Callable[[F], F]:
    """The ``--json`` flag every listing command takes; the value arrives as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=text)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or 200 columns when the output is piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=200)


def new_table(*columns: str, title: str | None = None) -> Table:
    """A table in the house style; add rows, then ``console().print``.

    Cells given as strings are shown as plain text, never read as rich markup: a file
    named ``[red]x`` shows as it is.
    """
    from rich.table import Table
    from rich.text import Text

    class PlainTable(Table):
        def add_row(self, *cells: Any, **options: Any) -> None:
            super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **options)

    return PlainTable(*columns, header_style="bold", title=title)


def print_table(rows: Sequence[Sequence[object]], columns: Sequence[str]) -> None:
    """Print ``rows`` under ``columns`` as a table (cells shown with ``str``)."""
    grid = new_table(*columns)
    for row in rows:
        grid.add_row(*("-" if cell is None else str(cell) for cell in row))
    console().print(grid)
