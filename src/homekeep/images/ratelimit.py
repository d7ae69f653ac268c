"""A token bucket per client key (a token's id or a client address), in memory."""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from homekeep.core.errors import RateLimited

MAX_KEYS = 10_000


def client_key(host: str) -> str:
    """The bucket of a client address: an IPv6 client's whole /64 (one home or host has them
    all, and could otherwise take a fresh address for every request), an IPv4 address as is.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"addr:{host}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"addr:{ip}"


class RateLimiter:
    """Allows ``burst`` requests at once, refilled at ``per_minute``; 0 turns it off.

    Threads: guarded by a lock, so a bucket's read, refill and write back are one step
    whichever thread calls (the server calls it from the event loop only).
    """

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Take one request from ``key``'s bucket, or raise 429 with the wait in seconds."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1 - tokens) / self.rate)
                raise RateLimited(f"too many uploads; try again in {wait} s", retry_after=wait)
            self._buckets[key] = (tokens - 1, now)
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
