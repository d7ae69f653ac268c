"""`sync watch --folder`: two-way passes on local events and on the server's changes.

Local changes are seen by filesystem events (as one-way watching sees them); the
server's by a long poll on the shared folder's change counter, which answers as soon as
another client or an edit on the server moves it. Either starts a pass once quiet, so a
change made on one client reaches the others within about a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from watchdog.observers import Observer

from homekeep.core.errors import AuthError, HomekeepError, Unavailable
from homekeep.sync.client.transport import Connection, Offline
from homekeep.sync.client.twoway import MassDelete, Pass, TwoWay
from homekeep.sync.client.watch import Events

log = logging.getLogger(__name__)

POLL_WAIT = 8.0  # seconds the server holds one long poll (it takes up to 9)


class _RemotePoll(threading.Thread):
    """Waits on the server's change counter; the loop's thread reads ``dirty``.

    ``since`` and ``dirty`` are guarded by ``lock``; ``wakeup`` is the watch loop's.
    """

    def __init__(self, conn: Connection, wakeup: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="sync-remote-poll", daemon=True)
        self.conn = conn
        self.wakeup = wakeup
        self.stop = stop
        self.lock = threading.Lock()
        self.since = 0
        self.dirty = False

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                since = self.since
            try:
                current = self.conn.changes(since, POLL_WAIT)
            except AuthError:
                self.stop.wait(POLL_WAIT)
                continue
            except HomekeepError as exc:
                log.debug("change poll failed: %s", exc.message)
                self.stop.wait(2)
                continue
            if current > since:
                with self.lock:
                    self.dirty = True
                    self.since = max(self.since, current)  # a pass starts after this
                self.wakeup.set()

    def take(self) -> bool:
        with self.lock:
            dirty, self.dirty = self.dirty, False
        return dirty


def watch_shared(
    two: TwoWay,
    *,
    settle: float,
    backoff_max: float,
    rescan_interval: float,
    on_pass: Callable[[Pass], None],
    stop: threading.Event,
    allow_mass_delete: bool = False,
) -> None:
    """Keep the local folder and the shared folder equal both ways until ``stop`` is set."""
    events = Events(two.root)
    observer = Observer()
    observer.schedule(events, os.fsdecode(two.root), recursive=True)
    observer.start()
    remote = _RemotePoll(two.syncer.conn, events.wakeup, stop)
    remote.start()
    try:
        _loop(
            two,
            events,
            remote,
            settle,
            backoff_max,
            rescan_interval,
            on_pass,
            stop,
            allow_mass_delete,
        )
    finally:
        observer.stop()
        observer.join(timeout=5)


def _loop(
    two: TwoWay,
    events: Events,
    remote: _RemotePoll,
    settle: float,
    backoff_max: float,
    rescan_interval: float,
    on_pass: Callable[[Pass], None],
    stop: threading.Event,
    allow_mass_delete: bool,
) -> None:
    need = True
    delay = 0.5
    last_full = time.monotonic()
    while not stop.is_set():
        due = bool(rescan_interval) and time.monotonic() - last_full >= rescan_interval
        local = events.take(settle) is not None
        if need or due or local or remote.take():
            try:
                done = two.run(allow_mass_delete=allow_mass_delete)
                on_pass(done)
                need, delay, last_full = False, 0.5, time.monotonic()
            except (AuthError, MassDelete):
                raise  # a refused token, or a mass delete to confirm: the user must act
            except (Offline, Unavailable) as exc:
                log.warning("%s; retrying in %.1f s", exc.message, delay)
                need = True
                stop.wait(delay)
                delay = min(delay * 2, backoff_max)
                continue
            except HomekeepError as exc:
                log.error("sync failed: %s; trying again", exc.message)
                need = True
                stop.wait(delay)
                delay = min(delay * 2, backoff_max)
                continue
        events.wakeup.wait(timeout=max(settle, 0.05))
        events.wakeup.clear()
