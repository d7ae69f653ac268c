"""`convert watch`: observe folders for new media, send them, fetch what is finished.

The media type of a file found here is guessed from its name only to choose what to
send; the server probes every input with ffprobe and refuses what is not as named.
The watchdog thread only records paths (under one lock); the loop thread does the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from homekeep.convert.config import WatchEntry
from homekeep.convert.outbox import Outbox
from homekeep.core.errors import HomekeepError

log = logging.getLogger("homekeep.convert.client")
EXTENSIONS = {
    "video": {
        ".mp4",
        ".mkv",
        ".mov",
        ".avi",
        ".webm",
        ".m4v",
        ".ts",
        ".mts",
        ".mpg",
        ".mpeg",
        ".wmv",
    },
    "image": {".png", ".jpg", ".jpeg", ".gif", ".apng"},
    "audio": {".flac", ".wav", ".mp3", ".m4a", ".ogg", ".oga", ".aiff", ".aif", ".wma", ".ape"},
}
SETTLE_SECONDS = 2.0


def media_type_of(path: Path) -> str | None:
    """The media type a file's name suggests, or None."""
    suffix = path.suffix.lower()
    return next((kind for kind, exts in EXTENSIONS.items() if suffix in exts), None)


class _Seen(FileSystemEventHandler):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: dict[Path, float] = {}

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                with self.lock:
                    self.paths[Path(str(raw))] = time.monotonic()

    def settled(self) -> list[Path]:
        now = time.monotonic()
        with self.lock:
            ready = [p for p, t in self.paths.items() if now - t >= SETTLE_SECONDS]
            for p in ready:
                del self.paths[p]
        return ready


def watch(
    outbox: Outbox,
    entries: Sequence[WatchEntry],
    conversions: dict[str, str],
    *,
    fetch_dir: Path | None,
    poll_seconds: float,
    stop: threading.Event,
    report: Callable[[str], None],
) -> None:
    """Run until ``stop``: add new media of the watched folders, send, check, fetch."""
    skip = fetch_dir.resolve() if fetch_dir else None

    def consider(path: Path, entry: WatchEntry) -> None:
        kind = media_type_of(path)
        if kind is None or kind not in entry.media_types or kind not in conversions:
            return
        if skip is not None and path.resolve().is_relative_to(skip):
            return  # our own fetched outputs
        if path.name.startswith(".") or path.name.endswith(".part"):
            return
        try:
            item, new = outbox.add(path, conversions[kind])
        except HomekeepError as exc:
            log.warning("%s: %s", path, exc.message)
            return
        if new:
            report(f"queued {path} for {item['conversion']} (item {item['id']})")

    seen = _Seen()
    observer = Observer()
    for entry in entries:
        entry.path.mkdir(parents=True, exist_ok=True)
        observer.schedule(seen, str(entry.path), recursive=True)
    observer.start()
    try:
        for entry in entries:
            for path in sorted(entry.path.rglob("*")):
                if path.is_file():
                    consider(path, entry)
        next_poll = 0.0
        while not stop.wait(0.5):
            for path in seen.settled():
                owner = next((e for e in entries if path.is_relative_to(e.path)), None)
                if owner is not None and path.is_file():
                    consider(path, owner)
            if time.monotonic() < next_poll:
                continue
            next_poll = time.monotonic() + poll_seconds
            try:
                outbox.send_all(
                    force=False,
                    on_item=lambda i: report(
                        f"sent {i['file_path']}: item {i['item_id']} {i['status']}"
                    ),
                )
                outbox.refresh(force=False)
                if fetch_dir is not None:
                    for item in outbox.fetch(fetch_dir):
                        report(f"fetched {item['output_path']}")
            except HomekeepError as exc:
                log.warning("%s", exc.message)
    finally:
        observer.stop()
        observer.join(timeout=10)
