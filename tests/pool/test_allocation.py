"""Allocation and capacity: concurrent seats on distinct ports, new servers when full,
an idle buffer, idle servers stopped, and a clear 'pool full' at the bound."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from homekeep.core.errors import Unavailable
from tests.pool.conftest import Raw, joined, leave, pool_server, run
from tests.pool.test_ports import free_range, occupy


def test_fifty_concurrent_allocations_get_seats_on_distinct_ports(tmp_path: Path) -> None:
    low, high = free_range(24)
    with ExitStack() as stack:
        # Half the range is held by someone else: servers must bind around it, retrying.
        taken = set(occupy(stack, iter(range(low, high + 1, 2))))
        with pool_server(
            tmp_path, max_clients=5, max_servers=13, min_idle=1, port_range=f"{low}-{high}"
        ) as pool:

            async def scenario() -> list[tuple[str, int, str]]:
                clients = await joined(pool, 50)
                try:
                    return [(c.welcome["server"], c.seat.port, c.client) for c in clients if c.seat]
                finally:
                    await leave(clients)

            seats = run(scenario(), timeout=90)
            status = pool.status()
    assert len(seats) == 50
    assert len({client for _, _, client in seats}) == 50
    per_server = Counter(server for server, _, _ in seats)
    assert max(per_server.values()) <= 5
    assert len(per_server) >= 10
    port_of = {server: port for server, port, _ in seats}
    assert len(set(port_of.values())) == len(port_of)  # no two servers share a port
    assert all(low <= port <= high and port not in taken for port in port_of.values())
    assert status["pool"]["allocations"] == 50


def test_a_full_pool_starts_servers_then_answers_pool_full(tmp_path: Path) -> None:
    with pool_server(
        tmp_path,
        max_clients=2,
        max_servers=2,
        min_idle=1,
        idle_timeout_seconds=1,
        allocate_wait_seconds=0.5,
    ) as pool:
        pool.wait_until(lambda s: s["pool"]["ready"] == 1, what="the idle server")

        async def scenario() -> None:
            clients = await joined(pool, 4)
            servers = Counter(c.welcome["server"] for c in clients)
            assert sorted(servers.values()) == [2, 2]  # packed: a second server for 3 and 4
            dispatch = pool.dispatch()
            began = time.monotonic()
            with pytest.raises(Unavailable, match="pool full: all 2 servers hold 2 clients"):
                await dispatch.allocate("fifth")
            assert time.monotonic() - began >= 0.5  # it waited for a seat first
            async with httpx.AsyncClient() as http:
                answer = await http.post(
                    f"{pool.url}/api/pool/allocate", headers=pool.headers, json={"name": "x"}
                )
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "pool_full"
            waiting = asyncio.create_task(dispatch.allocate("patient"))
            await asyncio.sleep(0.1)
            await clients[0].close()  # a seat frees up while the allocation waits
            seat = await waiting
            assert seat.server == clients[0].welcome["server"]
            patient = await Raw.connect(seat.port)
            assert (await patient.hello(seat))["type"] == "welcome"
            patient.close()
            await dispatch.aclose()
            await leave(clients)

        run(scenario())
        # Every client gone: after the idle timeout one server stays (min_idle), one stops.
        status = pool.wait_until(
            lambda s: s["pool"]["servers"] == 1 and not s["pool"]["reserved"],
            timeout=30,
            what="idle servers stopped down to min_idle",
        )
        assert status["servers"][0]["client_count"] == 0
        assert any(e["kind"] == "stopped" for e in pool.events())


def test_servers_keep_an_idle_one_ready_ahead_of_demand(tmp_path: Path) -> None:
    with pool_server(tmp_path, max_clients=3, max_servers=4, min_idle=2) as pool:
        pool.wait_until(lambda s: s["pool"]["ready"] == 2, what="two idle servers")

        async def scenario() -> None:
            clients = await joined(pool, 1)
            status = pool.wait_until(lambda s: s["pool"]["ready"] == 3, what="a third server")
            empty = [s for s in status["servers"] if s["client_count"] == 0 and not s["reserved"]]
            assert len(empty) == 2
            await leave(clients)

        run(scenario())


def test_a_port_range_with_no_free_port_fails_allocation_clearly(tmp_path: Path) -> None:
    low, high = free_range(2)
    with ExitStack() as stack:
        occupy(stack, iter(range(low, high + 1)))
        with pool_server(tmp_path, port_range=f"{low}-{high}", allocate_wait_seconds=0.3) as pool:
            answer = httpx.post(f"{pool.url}/api/pool/allocate", headers=pool.headers, json={})
            assert answer.status_code == 503
            message = answer.json()["error"]["message"]
            assert f"no free port on 127.0.0.1 in port_range {low}-{high}" in message
            status = pool.status()["pool"]
            assert status["recent_failures"] >= 1
            assert any(e["kind"] == "failed" for e in pool.events())


def test_ports_reported_are_really_bound_by_the_servers(tmp_path: Path) -> None:
    with pool_server(tmp_path, min_idle=3, max_servers=3) as pool:
        status = pool.wait_until(lambda s: s["pool"]["ready"] == 3, what="three servers")
        for shown in status["servers"]:
            with socket.socket() as probe:  # something listens there: the connection opens
                probe.settimeout(5)
                probe.connect(("127.0.0.1", shown["port"]))
