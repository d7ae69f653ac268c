"""Exponential backoff for failed logins, kept per user name and per client address.

A key (a name tried, or an address) may fail a few times freely; from then on each
failure locks it for twice as long as the one before (1 s, 2 s, 4 s ... at most 5 min).
An attempt while locked is refused without looking at the password and counts as one
more failure, so hammering only lengthens the wait. Names that do not exist are counted
like real ones, so the answers tell nothing about who has an account. A day without a
failure forgets a key; the tables are bounded (oldest entries go first), and they live
in memory: a restart forgets them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

FREE_PER_USER = 5
FREE_PER_ADDRESS = 10  # a household behind one NAT address shares it
FIRST_DELAY = 1.0
MAX_DELAY = 300.0
FORGET_AFTER = 86_400.0
MAX_KEYS = 10_000


@dataclass
class _Failures:
    count: int
    last: float


class _Table:
    """Failures per key, least recently failed first."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.rows: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        row = self.rows.get(key)
        if row is None:
            return 0.0
        if now - row.last >= FORGET_AFTER:
            del self.rows[key]
            return 0.0
        return max(0.0, row.last + delay(row.count, self.free) - now)

    def fail(self, key: str, now: float) -> int:
        row = self.rows.pop(key, None)
        if row is None or now - row.last >= FORGET_AFTER:
            row = _Failures(0, now)
        row.count += 1
        row.last = now
        self.rows[key] = row
        while len(self.rows) > MAX_KEYS:
            self.rows.popitem(last=False)
        return row.count


def delay(failures: int, free: int) -> float:
    """How long a key is locked after its ``failures``-th failure in a row."""
    if failures < free:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * float(2 ** min(failures - free, 32)))


class LoginThrottle:
    """The backoff of every login path (the login page, and later the Subsonic API).

    Used from the event loop and from worker threads: a lock guards both tables.
    """

    def __init__(self) -> None:
        self._users = _Table(FREE_PER_USER)
        self._addresses = _Table(FREE_PER_ADDRESS)
        self._lock = threading.Lock()

    def wait(self, name: str, address: str) -> float:
        """Seconds before ``name`` may try again from ``address`` (0: now)."""
        now = time.monotonic()
        with self._lock:
            return max(self._users.wait(_key(name), now), self._addresses.wait(address, now))

    def failed(self, name: str, address: str) -> int:
        """Count a failure; return how many in a row this name has had."""
        now = time.monotonic()
        with self._lock:
            self._addresses.fail(address, now)
            return self._users.fail(_key(name), now)

    def succeeded(self, name: str) -> None:
        """Forget the name's failures (not the address's: one good account must not reset
        the count of an address guessing at others)."""
        with self._lock:
            self._users.rows.pop(_key(name), None)


def _key(name: str) -> str:
    return name.strip().lower()[:64]
