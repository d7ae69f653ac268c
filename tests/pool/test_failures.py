"""Failures: a killed or hung server is replaced and its clients come back; a dispatcher
killed with -9 leaves no process behind; SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from homekeep.pool.client import RoomClient
from tests.pool.conftest import Pool, joined, leave, pool_server, run


def gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after waiting up to ``timeout`` seconds for them to exit."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(pid)]
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def rejoined(clients: list[RoomClient], timeout: float = 20) -> None:
    """Wait until every client has joined a second time."""
    await asyncio.gather(*(c.wait_for("rejoined", timeout) for c in clients))


async def chat_works(clients: list[RoomClient]) -> None:
    """A message from the first client reaches the others on its server."""
    sender = clients[0]
    await sender.send("still here?")
    for other in clients[1:]:
        if other.welcome["server"] == sender.welcome["server"]:
            message = await other.wait_for("message", 10)
            assert message["text"] == "still here?"


def broken_server(pool: Pool, how: signal.Signals, kind: str, tmp: Path) -> None:
    """Break the server of three clients with ``how``; check they come back and chat."""

    async def scenario() -> None:
        clients = await joined(pool, 3)
        server_id = clients[0].welcome["server"]
        assert {c.welcome["server"] for c in clients} == {server_id}
        before = pool.server(server_id)
        os.kill(before["pid"], how)
        await rejoined(clients)
        assert all(c.joins == 2 for c in clients)
        assert all(c.seat is not None and c.seat.ticket for c in clients)
        await chat_works(clients)
        after = await asyncio.to_thread(
            pool.wait_until,
            lambda s: any(
                x["id"] == server_id and x["state"] == "ready" and x["pid"] != before["pid"]
                for x in s["servers"]
            ),
            20,
            f"{server_id} restarted",
        )
        restarted = next(x for x in after["servers"] if x["id"] == server_id)
        assert restarted["restarts"] == 1
        assert restarted["last_failure"].startswith(kind)
        await leave(clients)
        assert gone([before["pid"]], 10) == []

    run(scenario())
    kinds = [(e["kind"], e["server"]) for e in pool.events()]
    assert ("failed", "s1") in kinds
    assert ("restarted", "s1") in kinds


def test_a_server_killed_with_9_is_replaced_and_its_clients_reallocated(tmp_path: Path) -> None:
    with pool_server(tmp_path, max_clients=3, min_idle=1) as pool:
        broken_server(pool, signal.SIGKILL, "exited with code -9", tmp_path)


def test_a_stopped_server_is_found_hung_killed_and_replaced(tmp_path: Path) -> None:
    with pool_server(tmp_path, max_clients=3, min_idle=1) as pool:
        broken_server(pool, signal.SIGSTOP, "hung: no answer to pings", tmp_path)


def test_no_process_outlives_a_dispatcher_killed_with_9(tmp_path: Path) -> None:
    with pool_server(tmp_path, max_clients=2, min_idle=2, max_servers=4) as pool:

        async def scenario() -> None:
            clients = await joined(pool, 3)
            status = pool.wait_until(lambda s: s["pool"]["ready"] >= 3, what="servers")
            servers = [s["pid"] for s in status["servers"] if s["pid"]]
            descendants = [p.pid for p in pool.descendants()]
            assert set(servers) <= set(descendants)
            os.kill(servers[0], signal.SIGSTOP)  # even a stopped server must go
            os.kill(pool.process.pid, signal.SIGKILL)
            assert gone(descendants, 15) == []
            await leave(clients)

        run(scenario())


@pytest.mark.parametrize("group", [False, True], ids=["dispatcher", "process-group"])
def test_sigterm_drains_clients_are_told_and_every_server_ends(tmp_path: Path, group: bool) -> None:
    """SIGTERM to the dispatcher, or to its whole process group as `systemctl stop` does."""
    with pool_server(tmp_path, max_clients=2, min_idle=1) as pool:

        async def scenario() -> None:
            clients = await joined(pool, 3)
            descendants = [p.pid for p in pool.descendants()]
            if group:
                os.killpg(pool.process.pid, signal.SIGTERM)
            else:
                pool.process.send_signal(signal.SIGTERM)
            for client in clients:
                closing = await client.wait_for("closing", 15)
                assert "shutting down" in closing["reason"]
            ended = await asyncio.gather(*(c.wait_for("ended", 20) for c in clients))
            assert all("server closing" in e["reason"] for e in ended)
            code = await asyncio.to_thread(pool.process.wait, 20)
            assert code == 0
            assert gone(descendants, 10) == []
            assert not [line for line in pool.stderr if "failed" in line]  # ended, not died
            await leave(clients)

        run(scenario())
