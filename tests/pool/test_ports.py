"""Ports: a server binds a random port of its range and retries the taken ones."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from homekeep.pool.ports import BindError, bind_listener


def free_range(size: int) -> tuple[int, int]:
    """A run of ``size`` ports none of which is listened on right now."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(20000, 60000)
        if all(_free(port) for port in range(low, low + size)):
            return low, low + size - 1
    raise AssertionError("no free run of ports on this machine")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def occupy(stack: ExitStack, ports: Iterator[int]) -> list[int]:
    taken = []
    for port in ports:
        sock = stack.enter_context(socket.socket())
        sock.bind(("127.0.0.1", port))
        sock.listen()
        taken.append(port)
    return taken


def test_a_taken_port_is_retried_until_a_free_one_binds() -> None:
    low, high = free_range(6)
    with ExitStack() as stack:
        taken = occupy(stack, iter(range(low, high)))  # all but the last
        for seed in range(5):
            listener = bind_listener("127.0.0.1", (low, high), rng=random.Random(seed))
            port = listener.getsockname()[1]
            listener.close()
            assert port == high
            assert port not in taken


def test_a_range_with_no_free_port_says_what_to_change() -> None:
    low, high = free_range(3)
    with ExitStack() as stack:
        occupy(stack, iter(range(low, high + 1)))
        with pytest.raises(BindError, match=r"no free port .* after 3 tries; widen \[pool\]"):
            bind_listener("127.0.0.1", (low, high))


def test_without_a_range_any_free_port_is_taken() -> None:
    first = bind_listener("127.0.0.1", None)
    second = bind_listener("127.0.0.1", None)
    assert first.getsockname()[1] != second.getsockname()[1]
    first.close()
    second.close()
