"""What the server is receiving right now, and when each device last called: for the page.

Every upload route (``PUT /files``, ``POST /commit``) and the data port announce a
transfer here while its bytes arrive; the sync page polls :meth:`Transfers.current`.
Every call of the protocol notes its device (the token's name and the caller's address)
per folder in :class:`Contacts`, which writes to the index at most every
``CONTACT_WRITE`` seconds per device, so a busy client costs no write per request.

Both live in memory, one pair per target folder (:func:`live`): the HTTP routes, the
data port's threads and the page all reach the same pair through the target they share.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from homekeep.core.db import utcnow
from homekeep.sync.server.target import Target
from homekeep.sync.store import ServerIndex

CONTACT_WRITE = 10.0  # seconds between index writes of one device's last contact
MAX_TRANSFERS = 256  # shown at once; more are counted, not listed
MAX_DEVICES = 4096  # devices remembered in memory between writes (the oldest go first)


@dataclass(slots=True)
class Transfer:
    """One upload in flight; ``done`` moves as bytes arrive (guarded by its registry's lock)."""

    id: int
    folder: str
    device: str
    address: str
    path: str
    total: int
    via: str
    started_at: str = field(default_factory=utcnow)
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def as_dict(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-3)
        return {
            "id": self.id,
            "folder": self.folder,
            "device": self.device,
            "address": self.address,
            "path": self.path,
            "bytes_done": self.done,
            "bytes_total": self.total,
            "via": self.via,
            "started_at": self.started_at,
            "bytes_per_second": round(self.done / elapsed),
        }


class Progress:
    """The handle a route moves its transfer with."""

    def __init__(self, registry: Transfers, transfer: Transfer) -> None:
        self._registry = registry
        self._transfer = transfer

    def update(self, done: int, *, path: str | None = None, total: int | None = None) -> None:
        """Bytes received so far (and, once known, what they are)."""
        with self._registry.lock:
            self._transfer.done = done
            if path is not None:
                self._transfer.path = path
            if total is not None:
                self._transfer.total = total


class Transfers:
    """The uploads in flight of one target folder; any thread may call it (``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards _running and every Transfer in it
        self._running: dict[int, Transfer] = {}
        self._ids = itertools.count(1)

    @contextmanager
    def tracking(
        self, folder: str, device: str, address: str, path: str, total: int, via: str
    ) -> Iterator[Progress]:
        """Show an upload while the block runs."""
        with self.lock:
            transfer = Transfer(next(self._ids), folder, device, address, path, total, via)
            self._running[transfer.id] = transfer
        try:
            yield Progress(self, transfer)
        finally:
            with self.lock:
                self._running.pop(transfer.id, None)

    def current(self, folders: set[str] | None = None) -> tuple[list[dict[str, Any]], int]:
        """The transfers (into ``folders``, or all), oldest first, and how many in all."""
        with self.lock:
            found = [
                t.as_dict()
                for t in self._running.values()
                if folders is None or t.folder in folders
            ]
        return found[:MAX_TRANSFERS], len(found)


class Contacts:
    """When each device last called, per folder; any thread may call it (``_lock``).

    ``note`` is cheap and runs on the event loop; it says when the index is due a write,
    which the caller then makes on a worker thread (``write``).
    """

    def __init__(self, index: ServerIndex) -> None:
        self.index = index
        self._lock = threading.Lock()  # guards _seen
        # (folder, device, address) -> (last contact as text, monotonic time last written)
        self._seen: dict[tuple[str, str, str], tuple[str, float]] = {}

    def note(self, folder: str, device: str, address: str) -> tuple[str, str, str, str] | None:
        """Remember a call; returns the row to write when the last write is old enough."""
        key = (folder, device, address)
        now, at = time.monotonic(), utcnow()
        with self._lock:
            previous = self._seen.pop(key, None)  # re-inserted last: the dict stays in age order
            due = previous is None or now - previous[1] >= CONTACT_WRITE
            self._seen[key] = (at, now if due else previous[1] if previous else now)
            while len(self._seen) > MAX_DEVICES:
                del self._seen[next(iter(self._seen))]
        return (folder, device, address, at) if due else None

    def write(self, row: tuple[str, str, str, str]) -> None:
        self.index.record_contact(*row)

    def latest(self) -> dict[tuple[str, str, str], str]:
        """The last contact of every device seen since the server started (fresher than
        the index by up to ``CONTACT_WRITE`` seconds)."""
        with self._lock:
            return {key: at for key, (at, _) in self._seen.items()}


@dataclass(frozen=True)
class Live:
    """The in-memory state of one target folder the page shows."""

    transfers: Transfers
    contacts: Contacts


_LIVE: weakref.WeakKeyDictionary[Target, Live] = weakref.WeakKeyDictionary()
_LIVE_GUARD = threading.Lock()  # guards _LIVE: routes, data port threads and pages ask


def live(target: Target) -> Live:
    """The live state of ``target``, made on first use, gone with it."""
    with _LIVE_GUARD:
        found = _LIVE.get(target)
        if found is None:
            found = _LIVE[target] = Live(Transfers(), Contacts(target.index))
        return found
