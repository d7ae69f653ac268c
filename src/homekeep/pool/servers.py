"""The dispatcher's handle on one server process: start it, talk to it, stop or kill it.

Processes come from multiprocessing's forkserver: a clean process, forked once at first
use with the server's modules loaded, then forked for each server. A new server is ready
in milliseconds, shares those modules' memory, and inherits none of the dispatcher's
sockets or threads. Each handle belongs to the dispatcher's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

from homekeep.pool import server
from homekeep.pool.lines import encode
from homekeep.pool.room import RoomSettings

log = logging.getLogger("homekeep.pool")

CHANNEL_LIMIT = 64 << 20  # a properties answer lists up to max_clients clients
EXIT_WAIT_SECONDS = 5.0
PRELOAD = ["__main__", "homekeep.pool.forkserver", "homekeep.pool.server", "psutil"]

# Process.start is not safe from two threads at once (it edits a module-level set).
_start_lock = threading.Lock()


class StartFailed(Exception):
    """A server process did not come up; the message says why."""


def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(PRELOAD)
    return context


def _start(process: BaseProcess) -> None:
    with _start_lock:
        process.start()


class ServerProcess:
    """One server process and the dispatcher's end of its channel."""

    def __init__(
        self,
        settings: RoomSettings,
        on_event: Callable[[ServerProcess, dict[str, Any]], None],
        on_exit: Callable[[ServerProcess], None],
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_exit = on_exit
        self.process: BaseProcess | None = None
        self.pid: int | None = None
        self.port: int | None = None
        self.started_at = time.time()
        self.start_seconds: float | None = None
        self.last_heard = time.monotonic()
        self.exitcode: int | None = None
        self.failure = ""  # why it failed, once it has: told to the dispatcher at exit
        self.exited = asyncio.Event()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._requests: dict[int, asyncio.Future[dict[str, Any] | None]] = {}
        self._next_request = 0

    async def start(self, timeout: float) -> None:
        """Start the process and wait until it reports its port (or fails)."""
        began = time.perf_counter()
        ours, theirs = socket.socketpair()
        process = _context().Process(
            target=server.run,
            args=(self.settings, theirs),
            name=f"homekeep-pool-{self.settings.server_id}",
            daemon=True,
        )
        try:
            await asyncio.to_thread(_start, process)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.process, self.pid = process, process.pid
        reader, self._writer = await asyncio.open_connection(sock=ours, limit=CHANNEL_LIMIT)
        self._reader = asyncio.create_task(self._read(reader))
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            self._ready.cancel()
            self.failure = f"not ready within {timeout:g} s of starting"
            self.kill()
            raise StartFailed(self.failure) from None
        self.start_seconds = time.perf_counter() - began
        self.last_heard = time.monotonic()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                self.last_heard = time.monotonic()
                self._dispatch(json.loads(line))
        except (ConnectionError, ValueError) as exc:
            log.warning("server %s: channel broke: %s", self.settings.server_id, exc)
            self.kill()
        finally:
            await self._reap()

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "ready":
            self.port = int(event["port"])
            if not self._ready.done():
                self._ready.set_result(None)
        elif kind == "failed":
            self.failure = f"could not start: {event.get('error')}"
            if not self._ready.done():
                self._ready.set_exception(StartFailed(str(event.get("error"))))
        elif kind == "properties":
            waiter = self._requests.pop(int(event.get("id", -1)), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(dict(event.get("properties") or {}))
        elif kind != "pong":
            self.on_event(self, event)

    async def _reap(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.process is not None:
            await asyncio.to_thread(self.process.join, EXIT_WAIT_SECONDS)
            if self.process.exitcode is None:
                self.kill()
                await asyncio.to_thread(self.process.join, EXIT_WAIT_SECONDS)
            self.exitcode = self.process.exitcode
        if not self._ready.done():
            self._ready.set_exception(StartFailed(f"exited at start (code {self.exitcode})"))
        for waiter in self._requests.values():
            if not waiter.done():
                waiter.set_result(None)
        self._requests.clear()
        self.exited.set()
        self.on_exit(self)

    def send(self, op: dict[str, Any]) -> None:
        """Send one request; a closed channel is noticed by the reader."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(op))

    async def properties(self, timeout: float) -> dict[str, Any] | None:
        """The server's properties, or None when it does not answer in time."""
        if self.exited.is_set():
            return None
        self._next_request += 1
        request = self._next_request
        waiter: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._requests[request] = waiter
        self.send({"op": "properties", "id": request})
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            self._requests.pop(request, None)

    async def stop(self, reason: str, timeout: float) -> None:
        """Ask the server to close its clients and exit; kill it if it does not in time."""
        self.send({"op": "drain", "reason": reason})
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.exited.wait()

    def kill(self) -> None:
        """SIGKILL the process (it works on a stopped one too)."""
        if self.process is not None and self.process.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                self.process.kill()

    def silent_for(self) -> float:
        """Seconds since the server last said anything on its channel."""
        return time.monotonic() - self.last_heard
