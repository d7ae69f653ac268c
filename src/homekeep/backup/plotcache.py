"""Growth charts kept between requests: a render costs ~0.3 s of CPU, a lookup nothing."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from homekeep.backup.store import Run, RunStore
from homekeep.core.errors import Unavailable

# Per job: its name, and the id and finish time of its newest run (a chart changes only
# when a run starts or ends).
Key = tuple[tuple[str, int | None, str | None], ...]
Series = dict[str, list[Run]]
MAX_CHARTS = 32
RENDER_WAIT = 30.0  # seconds a request waits for the renderer before a 503


def chart_key(store: RunStore, names: list[str]) -> Key:
    """The cache key of a chart of ``names``."""
    out = []
    for name in names:
        last = store.last(name)
        out.append((name, last.id if last else None, last.finished_at if last else None))
    return tuple(out)


def etag(key: Key) -> str:
    """A strong ETag for a chart key."""
    return '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'


class PlotCache:
    """The newest charts by key, and one render at a time."""

    def __init__(self, render: Callable[[Series], bytes]) -> None:
        self._render = render
        self._charts: OrderedDict[Key, bytes] = OrderedDict()  # guarded by _lock
        self._lock = threading.Lock()
        # One render at a time: each is CPU-bound, and matplotlib's pyplot state is not
        # thread-safe. A request for a chart being drawn waits, then finds it cached.
        self._rendering = threading.Lock()

    def _lookup(self, key: Key) -> bytes | None:
        with self._lock:
            data = self._charts.get(key)
            if data is not None:
                self._charts.move_to_end(key)
            return data

    def get(self, key: Key, series: Callable[[], Series]) -> bytes:
        """The chart for ``key``, rendered from ``series()`` if it is not cached."""
        if (data := self._lookup(key)) is not None:
            return data
        if not self._rendering.acquire(timeout=RENDER_WAIT):
            raise Unavailable("the growth chart is being drawn for others; try again shortly")
        try:
            if (data := self._lookup(key)) is not None:
                return data
            data = self._render(series())
            with self._lock:
                self._charts[key] = data
                while len(self._charts) > MAX_CHARTS:
                    self._charts.popitem(last=False)
            return data
        finally:
            self._rendering.release()
