"""When a failed server may be started again: backoff, and a halt when failures loop."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
WINDOW_SECONDS = 60.0
HALT_AFTER = 8  # failures within the window that stop all starts until the window clears


class RestartGuard:
    """Counts server failures (crashes, hangs, failed starts) over a sliding window.

    After the n-th recent failure, no server starts for ``base * 2**(n-1)`` seconds
    (at most ``cap``); at ``halt_after`` recent failures starts stop altogether until
    the oldest of them leaves the window, so a server that cannot run (a port range
    used up, a broken certificate) is not started again and again.
    """

    def __init__(
        self,
        *,
        base: float = BACKOFF_BASE_SECONDS,
        cap: float = BACKOFF_MAX_SECONDS,
        window: float = WINDOW_SECONDS,
        halt_after: int = HALT_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base, self.cap, self.window, self.halt_after = base, cap, window, halt_after
        self.clock = clock
        self.failures: deque[float] = deque()
        self.last_reason = ""

    def failed(self, reason: str) -> None:
        """Record a failure now."""
        self.failures.append(self.clock())
        self.last_reason = reason
        self._prune()

    def _prune(self) -> None:
        horizon = self.clock() - self.window
        while self.failures and self.failures[0] <= horizon:
            self.failures.popleft()

    @property
    def recent(self) -> int:
        """Failures within the window."""
        self._prune()
        return len(self.failures)

    def delay(self) -> float:
        """The backoff the recent failures call for."""
        recent = self.recent
        return 0.0 if recent == 0 else min(self.base * 2 ** (recent - 1), self.cap)

    def start_at(self) -> float:
        """The earliest clock time a server may start (in the past when nothing holds back)."""
        if self.halted():
            return self.failures[0] + self.window
        return self.failures[-1] + self.delay() if self.failures else 0.0

    def may_start(self) -> bool:
        """True when no backoff or halt holds starts back."""
        return self.clock() >= self.start_at()

    def halted(self) -> bool:
        """True while failures loop: too many within the window."""
        return self.recent >= self.halt_after
