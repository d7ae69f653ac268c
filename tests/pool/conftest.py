"""Fixtures: a real `homekeep pool serve` on loopback, its token, and raw line clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from homekeep.pool.client import Dispatch, RoomClient
from homekeep.pool.seats import Seat
from tests.support import HOMEKEEP, Server, clean_env, create_token

T = TypeVar("T")
# Fast clocks for tests: a silent client or server is found within a second.
FAST = {"ping_interval_seconds": "0.4", "ticket_ttl_seconds": "10", "allocate_wait_seconds": "1"}


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run one coroutine to its end on a fresh loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@dataclass
class Pool(Server):
    """A running dispatcher, a pool token, and what it printed."""

    data_dir: Path
    token: str = ""
    env: dict[str, str] = field(default_factory=dict)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def dispatch(self, ca: Path | None = None) -> Dispatch:
        return Dispatch(self.url, self.token, ca=ca)

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/pool/servers", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def server(self, server_id: str) -> dict[str, Any]:
        for shown in self.status()["servers"]:
            if shown["id"] == server_id:
                return dict(shown)
        raise AssertionError(f"no server {server_id}")

    def wait_until(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 20, what: str = ""
    ) -> dict[str, Any]:
        """Poll the status until ``check`` holds (at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        status = self.status()
        while not check(status):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {json.dumps(status)[:2000]}")
            time.sleep(0.1)
            status = self.status()
        return status

    def events(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/api/pool/events?limit=100", headers=self.headers, timeout=10
        )
        result: list[dict[str, Any]] = response.json()
        return result

    def descendants(self) -> list[psutil.Process]:
        """Every process below the dispatcher (the forkserver and the servers)."""
        return psutil.Process(self.process.pid).children(recursive=True)


def _drain(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@contextmanager
def pool_server(tmp: Path, **config: object) -> Iterator[Pool]:
    """Start `homekeep pool serve --port 0` with ``[pool]`` keys from ``config``."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    env = {"XDG_CONFIG_HOME": str(tmp / "config")}
    env.update({f"HOMEKEEP_POOL_{k.upper()}": str(v) for k, v in {**FAST, **config}.items()})
    token = create_token(data, "tester", "pool")
    proc = subprocess.Popen(
        [*HOMEKEEP, "--data-dir", str(data), "pool", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
        start_new_session=True,  # its own process group, for the tests that signal it
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    pool: Pool | None = None
    try:
        first = proc.stdout.readline()  # the dispatcher announces its URL first
        if "http://" not in first:
            proc.kill()
            raise RuntimeError(f"pool serve did not start: {first}{proc.stderr.read()}")
        url = first.split(" at ", 1)[1].split("/ ", 1)[0]
        pool = Pool(proc, url, data, token=token, env=env)
        for stream, into in ((proc.stdout, pool.stdout), (proc.stderr, pool.stderr)):
            threading.Thread(target=_drain, args=(stream, into), daemon=True).start()
        yield pool
    finally:
        leftovers = pool.descendants() if pool is not None and proc.poll() is None else []
        if pool is not None:
            pool.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        for child in leftovers:  # a failed test must not leave its servers behind
            if child.is_running():
                child.kill()


@pytest.fixture(scope="package")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One dispatcher for the tests that leave it as they found it.

    4 clients a server, up to 6 servers, one idle, tickets valid 3 s.
    """
    with pool_server(
        tmp_path_factory.mktemp("pool"),
        max_clients=4,
        max_servers=6,
        min_idle=1,
        ticket_ttl_seconds=3,
    ) as running:
        yield running


class Raw:
    """A bare line client: sends what it is told, reads what comes, parses nothing itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", **kwargs: Any) -> Raw:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22, **kwargs)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = 5) -> dict[str, Any]:
        data = await asyncio.wait_for(self.reader.readline(), timeout)
        assert data, "connection closed"
        result: dict[str, Any] = json.loads(data)
        return result

    async def next_of(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        """The next line of type ``kind`` (others, such as relayed messages, skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (line := await self.line(deadline - asyncio.get_running_loop().time()))[
            "type"
        ] != kind:
            pass
        return line

    async def raw_line(self, timeout: float = 5) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def closed(self, timeout: float = 5) -> bool:
        """True once the server closed the connection (lines before that are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                data = await asyncio.wait_for(self.reader.read(65536), max(left, 0.01))
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            if not data:
                return True

    async def hello(self, seat: Seat) -> dict[str, Any]:
        await self.send(json.dumps({"type": "hello", "ticket": seat.ticket}).encode() + b"\n")
        return await self.line()

    def close(self) -> None:
        self.writer.close()


async def joined(pool: Pool, count: int, name: str = "c") -> list[RoomClient]:
    """``count`` clients joined through the dispatcher."""
    clients = [RoomClient(pool.dispatch(), f"{name}{i}") for i in range(count)]
    await asyncio.gather(*(client.join() for client in clients))
    return clients


async def leave(clients: list[RoomClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients))
    for client in clients:
        await client.dispatch.aclose()


def env_of(config: Mapping[str, object]) -> dict[str, str]:
    return {f"HOMEKEEP_POOL_{k.upper()}": str(v) for k, v in config.items()}
