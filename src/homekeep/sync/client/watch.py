"""`sync watch`: a full sync, then live updates from filesystem events, riding out outages."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirModifiedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileModifiedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from homekeep.core.errors import AuthError, HomekeepError
from homekeep.sync.client.engine import Syncer
from homekeep.sync.client.summary import Scope, Summary
from homekeep.sync.client.transport import Offline
from homekeep.sync.wire.folder import TMP, VERSIONS

log = logging.getLogger(__name__)

WRITER_GRACE = 5.0  # a file kept open for writing is sent after this much quiet anyway


class Events(FileSystemEventHandler):
    """Collects dirty paths (relative to the root) with the time they last changed."""

    def __init__(self, root: Path) -> None:
        self.root = os.fsdecode(root)
        # the observer's thread adds, the loop's takes: dirty, writing and lost under lock
        self.lock = threading.Lock()
        self.dirty: dict[str, tuple[float, bool]] = {}
        self.writing: set[str] = set()
        self.wakeup = threading.Event()
        self.lost = False  # the kernel dropped events: only a full rescan can tell what changed

    def _rel(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if text == self.root:
            return ""
        if not text.startswith(self.root + os.sep):
            return None
        return text[len(self.root) + 1 :]

    def _mark(self, path: str | bytes, *, deep: bool = True) -> None:
        rel = self._rel(path)
        if rel is None or rel.split(os.sep, 1)[0] in (TMP, VERSIONS):
            return  # our own work (a pass makes and removes TMP): not a change to send
        now = time.monotonic()
        prev = self.dirty.get(rel)
        self.dirty[rel] = (now, deep or (prev[1] if prev else False))
        self.wakeup.set()

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self.lock:
            if isinstance(event, DirModifiedEvent) and event.event_type == "modified":
                return  # a folder's mtime moves with its contents; the contents have events
            if isinstance(event, FileOpenedEvent | FileClosedNoWriteEvent):
                return
            rel = self._rel(event.src_path)
            if isinstance(event, FileModifiedEvent) and rel is not None:
                self.writing.add(rel)
            if isinstance(event, FileClosedEvent) and rel is not None:
                self.writing.discard(rel)
            if event.event_type == "attrib" and event.is_directory:
                self._mark(event.src_path, deep=False)
            else:
                self._mark(event.src_path)
            dest = getattr(event, "dest_path", "")
            if dest:
                self._mark(dest)

    def take(self, settle: float) -> list[Scope] | None:
        """Return the paths quiet for ``settle`` seconds, or None while something is settling."""
        now = time.monotonic()
        with self.lock:
            if not self.dirty:
                return None
            if now - max(t for t, _ in self.dirty.values()) < settle:
                return None
            ready = {}
            for rel, (t, deep) in list(self.dirty.items()):
                if rel in self.writing and now - t < WRITER_GRACE:
                    continue
                ready[rel] = deep
                del self.dirty[rel]
                self.writing.discard(rel)
            if not ready:
                return None
        return _minimal(ready)


class _Overflow(logging.Handler):
    """Turns watchdog's "events were lost" warning (inotify overflow) into a rescan request.

    watchdog rebuilds its watches after an overflow but tells the handler nothing; its log
    record is the only signal, so a handler on its logger raises our flag.
    """

    LOGGER = "watchdog.observers.inotify_c"

    def __init__(self, events: Events) -> None:
        super().__init__(logging.WARNING)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            with self.events.lock:  # the observer's thread; the loop reads and clears it
                self.events.lost = True
            self.events.wakeup.set()


def _minimal(paths: dict[str, bool]) -> list[Scope]:
    """Drop paths already covered by a deep ancestor in the set."""
    deep = {p for p, d in paths.items() if d}
    out = []
    for rel in sorted(paths):
        parts = rel.split("/")
        ancestors = ["", *("/".join(parts[:i]) for i in range(1, len(parts)))]
        if any(a in deep for a in ancestors if a != rel) or ("" in deep and rel != ""):
            continue
        out.append(Scope(rel, paths[rel]))
    return out


def watch(
    syncer: Syncer,
    root: Path,
    *,
    settle: float,
    backoff_max: float,
    on_summary: Callable[[Summary], None],
    stop: threading.Event,
    rescan_interval: float = 3600,
) -> None:
    """Keep the server's copy equal to ``root`` until ``stop`` is set.

    Besides the live events, the whole folder is compared again every ``rescan_interval``
    seconds (0: never) and at once when the kernel reports lost events.
    """
    events = Events(root)
    overflow = _Overflow(events)
    logging.getLogger(_Overflow.LOGGER).addHandler(overflow)
    observer = Observer()
    observer.schedule(events, os.fsdecode(root), recursive=True)
    observer.start()
    try:
        _loop(
            syncer,
            events,
            settle=settle,
            backoff_max=backoff_max,
            on_summary=on_summary,
            stop=stop,
            rescan_interval=rescan_interval,
        )
    finally:
        logging.getLogger(_Overflow.LOGGER).removeHandler(overflow)
        observer.stop()
        observer.join(timeout=5)


def _loop(
    syncer: Syncer,
    events: Events,
    *,
    settle: float,
    backoff_max: float,
    on_summary: Callable[[Summary], None],
    stop: threading.Event,
    rescan_interval: float = 3600,
) -> None:
    need_full = True
    delay = 0.5
    pending: list[Scope] = []
    last_full = time.monotonic()
    while not stop.is_set():
        try:
            with events.lock:
                lost = events.lost
            if lost:
                log.warning("the kernel dropped file events; rescanning the whole folder")
                need_full = True
            elif rescan_interval and time.monotonic() - last_full >= rescan_interval:
                log.info("periodic rescan of the whole folder")
                need_full = True
            if need_full:
                with events.lock:
                    events.dirty.clear()
                    events.lost = False
                last_full = time.monotonic()
                on_summary(syncer.full())
                need_full = False
                pending = []
            else:
                taken = events.take(settle)
                if taken:
                    pending = _merge(pending, taken)
                if pending:
                    summary = syncer.paths(pending)
                    pending = []
                    on_summary(summary)
            delay = 0.5
        except AuthError:
            raise
        except Offline as exc:
            log.warning("%s; retrying in %.1f s", exc.message, delay)
            need_full = True
            stop.wait(delay)
            delay = min(delay * 2, backoff_max)
            continue
        except HomekeepError as exc:
            log.error("sync failed: %s; a full sync follows", exc.message)
            need_full = True
            stop.wait(delay)
            delay = min(delay * 2, backoff_max)
            continue
        events.wakeup.wait(timeout=max(settle, 0.02))
        events.wakeup.clear()
        with events.lock:
            settling = bool(events.dirty)
        if settling:
            stop.wait(settle / 2 if settle else 0.01)


def _merge(a: list[Scope], b: list[Scope]) -> list[Scope]:
    merged: dict[str, bool] = {}
    for sc in [*a, *b]:
        merged[sc.path] = merged.get(sc.path, False) or sc.deep
    return _minimal(merged)
