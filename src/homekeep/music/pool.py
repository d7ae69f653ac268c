"""The worker processes of a scan: started before it or during it, fed chunk by chunk."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def prestart_pool(workers: int) -> ProcessPoolExecutor | None:
    """Fork ``workers`` tag readers now, while this process has one thread.

    A progress display draws from its own thread, and forking then could copy a held
    lock, so a pool started during the scan comes from a fork server: a fresh
    interpreter importing the package, measured at 0.44 s before the first result against
    14 ms for a fork. The CLI forks its readers before the display starts instead. An
    unused pool costs the two forks. None when forking is not possible or not needed.
    """
    if (
        workers <= 1
        or threading.active_count() != 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    pool.submit(int).result()  # with fork, the first task starts every worker at once
    return pool


class Workers:
    """The processes one scan uses: a pool started beforehand, else a new one per step."""

    def __init__(self, count: int, started: ProcessPoolExecutor | None) -> None:
        self.count = count
        self._started = started  # owned by the caller, who shuts it down

    @contextmanager
    def pool(self) -> Iterator[ProcessPoolExecutor]:
        """The pool started beforehand (left running for its owner), else a new one."""
        if self._started is not None:
            yield self._started
            return
        with ProcessPoolExecutor(max_workers=self.count, mp_context=_context()) as pool:
            yield pool


def as_finished(
    pool: ProcessPoolExecutor,
    fn: Callable[..., T],
    items: Iterable[Any],
    *args: Any,
    in_flight: int,
) -> Iterator[T]:
    """Yield ``fn(item, *args)`` for every item as each finishes, ``in_flight`` at a time.

    The next item is submitted as one finishes, so the workers never wait while the
    caller handles a result, and no more than ``in_flight`` results are held at once.
    """
    queue = iter(items)
    running: set[Future[T]] = set()
    for item in queue:
        running.add(pool.submit(fn, item, *args))
        if len(running) >= in_flight:
            break
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            following = next(queue, _END)
            if following is not _END:
                running.add(pool.submit(fn, following, *args))
            yield future.result()


def _context() -> multiprocessing.context.BaseContext:
    """Fork when this process has one thread (cheap, no re-imports); else a fork server.

    With a progress bar drawing from its own thread, forking could copy a held lock,
    so the workers then come from a clean fork server instead.
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["homekeep.music.tags"])
    return ctx
