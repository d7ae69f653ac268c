"""Notice edits made on the server's copy of shared folders: events, and a periodic rescan.

A person or a program on the server may change a shared folder directly. A watchdog
observer marks a folder dirty on any event under it (our own files aside), and the
loop takes the edits in once the folder has been quiet for ``settle`` seconds; every
``interval`` seconds every shared folder is rescanned anyway, for what events miss
(network filesystems, an overflowing inotify queue, changes while the server was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time

import anyio.to_thread
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from homekeep.core.errors import HomekeepError
from homekeep.sync.server.sharing import Sharing
from homekeep.sync.versions import prune
from homekeep.sync.wire.folder import RESERVED

log = logging.getLogger(__name__)

MAX_DELAY = 3.0  # seconds an edit on the server waits at most for the folder to be quiet


class _Dirty(FileSystemEventHandler):
    """Marks one shared folder dirty; the observer's thread sets, the loop reads."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.Lock()  # guards ``first`` and ``since``
        self.first: float | None = None  # the first event not yet taken in
        self.since: float | None = None  # the last one

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        path = os.fsdecode(event.src_path)
        rel = path[len(self.root) + 1 :] if path.startswith(self.root + os.sep) else ""
        if rel.split(os.sep, 1)[0] in RESERVED:
            return  # our own files: versions kept, files being received
        with self.lock:
            self.since = time.monotonic()
            if self.first is None:
                self.first = self.since

    def take(self, settle: float) -> bool:
        """Whether the folder changed and has been quiet for ``settle`` seconds, or busy
        for ``MAX_DELAY`` (a folder written to all the time is still taken in); clears it."""
        with self.lock:
            if self.since is None or self.first is None:
                return False
            now = time.monotonic()
            if now - self.since < settle and now - self.first < MAX_DELAY:
                return False
            self.since = self.first = None
            return True


class SharedWatch:
    """Runs in the server's event loop; one per target folder."""

    def __init__(
        self, sharing: Sharing, *, interval: float, keep_days: float, settle: float = 0.5
    ) -> None:
        self.sharing = sharing
        self.interval = interval
        self.keep_days = keep_days  # versions older than this are pruned at a full rescan
        self.settle = settle
        self._handlers: dict[str, _Dirty] = {}
        self._observer: BaseObserver | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._task = asyncio.create_task(self._loop(), name="sync-shared-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._observer is not None:
            self._observer.stop()
            await anyio.to_thread.run_sync(self._observer.join, 5)

    def _watch_new(self) -> None:
        """Start watching shared folders made since (by `sync share`, maybe elsewhere)."""
        assert self._observer is not None
        for name in self.sharing.index.shared():
            if name in self._handlers:
                continue
            folder = self.sharing.target.client_dir(name)
            if not folder.is_dir():
                continue
            handler = _Dirty(os.fsdecode(folder))
            try:
                self._observer.schedule(handler, os.fsdecode(folder), recursive=True)
            except OSError as exc:
                log.warning("cannot watch shared folder %s (%s); rescanning it only", name, exc)
            self._handlers[name] = handler

    async def _loop(self) -> None:
        last_full = 0.0
        while True:
            try:
                await anyio.to_thread.run_sync(self._watch_new)
                full = time.monotonic() - last_full >= self.interval
                if full:
                    last_full = time.monotonic()
                for name, handler in list(self._handlers.items()):
                    if handler.take(self.settle) or full:
                        await anyio.to_thread.run_sync(self._rescan, name)
                    if full:
                        await anyio.to_thread.run_sync(self._prune, name)
            except Exception:
                log.exception("watching the shared folders failed; trying again")
            await asyncio.sleep(self.settle / 2)

    def _prune(self, name: str) -> None:
        folder = self.sharing.target.client_dir(name)
        removed = prune(folder, self.keep_days)
        if removed:
            log.info("shared folder %s: pruned %d old versions", name, removed)

    def _rescan(self, name: str) -> None:
        try:
            self.sharing.rescan(name)
        except HomekeepError as exc:  # unmounted: said once per rescan, nothing deleted
            log.error("shared folder %s: %s", name, exc.message)
