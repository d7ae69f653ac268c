"""The restart guard: backoff that doubles, a cap, and a halt while failures loop."""

from __future__ import annotations

from homekeep.pool.restarts import RestartGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap_then_starts_halt_until_the_window_clears() -> None:
    clock = Clock()
    guard = RestartGuard(base=0.5, cap=4, window=60, halt_after=6, clock=clock)
    assert guard.may_start()
    delays = []
    for _ in range(5):
        guard.failed("exited with code 1")
        delays.append(guard.delay())
        assert not guard.may_start()
        clock.now += guard.delay()
        assert guard.may_start()
    assert delays == [0.5, 1, 2, 4, 4]
    guard.failed("port range used up")
    assert guard.halted()
    assert guard.last_reason == "port range used up"
    first = 1000.0
    clock.now = first + 59.9
    assert not guard.may_start()
    clock.now = first + 60.1  # the oldest failure left the window: 5 remain, no halt
    assert not guard.halted()
    assert guard.recent == 5


def test_failures_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    guard = RestartGuard(window=60, clock=clock)
    guard.failed("hung")
    guard.failed("hung")
    clock.now += 61
    assert guard.recent == 0
    assert guard.delay() == 0
    assert guard.may_start()
