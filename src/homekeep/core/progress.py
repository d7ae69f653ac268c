"""Progress bars drawn with rich on a terminal, and nothing at all when output is piped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # rich loads only when bars are drawn: piped output never pays for it
    from rich.progress import Progress, TaskID


class Task(Protocol):
    """One bar."""

    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...


class Display(Protocol):
    """A set of bars shown together."""

    def task(self, description: str, total: float | None = None, *, bytes: bool = False) -> Task:
        """Add a bar; ``bytes=True`` shows sizes and speed instead of counts."""
        ...


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self._progress.update(self._id, total=total, description=description)


class _RichDisplay:
    def __init__(self, count: Progress, size: Progress) -> None:
        self._count = count
        self._size = size

    def task(self, description: str, total: float | None = None, *, bytes: bool = False) -> Task:
        progress = self._size if bytes else self._count
        return _RichTask(progress, progress.add_task(description, total=total))


class _SilentTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        pass


class _SilentDisplay:
    def task(self, description: str, total: float | None = None, *, bytes: bool = False) -> Task:
        return _SilentTask()


@contextmanager
def progress(*, enabled: bool | None = None) -> Iterator[Display]:
    """Show bars on stderr while the block runs; silent unless stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _SilentDisplay()
        return
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    count = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    size = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with Live(Group(count, size), console=console, refresh_per_second=8):
        yield _RichDisplay(count, size)
