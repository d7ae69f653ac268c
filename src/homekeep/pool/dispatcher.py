"""The dispatcher: starts server processes with demand, allocates seats, keeps servers alive.

Capacity follows Agones' fleet with a buffer: ``min_idle`` empty servers stand ready
ahead of demand, allocations pack into the fullest server that has a seat (so empty ones
stay empty and can be stopped after ``idle_timeout_seconds``), and a full pool starts
another server up to ``max_servers``. Health follows gunicorn's arbiter: every server is
pinged over its channel, one that dies or misses two pings is killed and started again
after a backoff, and starts stop altogether while failures loop.

Everything here runs on one event loop; no state is shared with another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from homekeep.core.errors import Unavailable
from homekeep.pool.config import PoolConfig
from homekeep.pool.lines import printable
from homekeep.pool.restarts import RestartGuard
from homekeep.pool.room import RoomSettings
from homekeep.pool.seats import Seat
from homekeep.pool.servers import ServerProcess, StartFailed
from homekeep.pool.tickets import mint, server_key

log = logging.getLogger("homekeep.pool")
messages_log = logging.getLogger("homekeep.pool.messages")

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
PROPERTIES_TIMEOUT_SECONDS = 1.0
PROPERTIES_CACHE_SECONDS = 0.5

State = Literal["starting", "ready", "stopping", "restarting"]
Record = Callable[[str, str, str], Awaitable[None]]


@dataclass
class Slot:
    """A place for one server in the pool; its process is replaced when it fails."""

    id: str
    state: State = "starting"
    proc: ServerProcess | None = None
    restarts: int = 0
    clients: set[str] = field(default_factory=set)
    reserved: dict[str, float] = field(default_factory=dict)  # ticket id -> expiry
    empty_since: float = field(default_factory=time.monotonic)
    restart_at: float = 0.0
    last_ping: float = 0.0
    last_failure: str = ""

    @property
    def load(self) -> int:
        """Seats taken: clients in, plus tickets handed out and not used yet."""
        return len(self.clients) + len(self.reserved)


class Dispatcher:
    """The pool of server processes and the allocations into it."""

    def __init__(
        self,
        config: PoolConfig,
        secret: bytes,
        *,
        public_host: str,
        tls: tuple[str, str] | None = None,
        record: Record | None = None,
    ) -> None:
        self.config = config
        self.public_host = public_host
        self.tls = tls
        self.guard = RestartGuard()
        self.slots: dict[str, Slot] = {}
        self.state: Literal["new", "running", "draining", "stopped"] = "new"
        self.allocations = 0
        self.started_at = time.monotonic()
        self._secret = secret
        self._record = record
        self._serial = 0
        self._waiting = 0
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._policy: asyncio.Task[None] | None = None
        self._cache: tuple[float, dict[str, Any]] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the policy loop; ``min_idle`` servers start at once."""
        if self.state != "new":
            return
        self.state = "running"
        self.started_at = time.monotonic()
        self._policy = asyncio.create_task(self._run_policy())
        self._tick()

    async def stop(self, reason: str = "the pool is shutting down") -> None:
        """Drain: refuse new allocations, tell every client, let every server end cleanly."""
        if self.state != "running":
            return
        self.state = "draining"
        self._notify()
        if self._policy is not None:
            self._policy.cancel()
        stopping = []
        for slot in list(self.slots.values()):
            if slot.proc is None:
                del self.slots[slot.id]
            elif slot.state != "starting":  # a starting one is stopped once it is up
                slot.state = "stopping"
                stopping.append(slot.proc.stop(reason, STOP_TIMEOUT_SECONDS))
        await asyncio.gather(*stopping, return_exceptions=True)
        while self._tasks:  # launches in flight, exit handlers, records
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.state = "stopped"
        log.info("pool drained: %s", reason)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _note(self, kind: str, server: str, detail: str) -> None:
        if self._record is not None:
            self._spawn(self._safe_record(kind, server, detail))

    async def _safe_record(self, kind: str, server: str, detail: str) -> None:
        assert self._record is not None
        try:
            await self._record(kind, server, detail)
        except Exception:
            log.exception("could not record pool event %s of %s", kind, server)

    def _notify(self) -> None:
        """Wake every allocation waiting for a seat."""
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    # -- servers -------------------------------------------------------------------

    def _new_slot(self) -> Slot:
        self._serial += 1
        slot = Slot(id=f"s{self._serial}")
        self.slots[slot.id] = slot
        self._spawn(self._launch(slot))
        return slot

    async def _launch(self, slot: Slot) -> None:
        instance = f"{slot.id}.{secrets.token_hex(6)}"
        settings = RoomSettings(
            server_id=slot.id,
            instance=instance,
            key=server_key(self._secret, instance),
            host=self.config.host,
            ports=self.config.ports,
            max_clients=self.config.max_clients,
            ping_interval=self.config.ping_interval_seconds,
            max_line_bytes=self.config.max_line_bytes,
            tls_cert=self.tls[0] if self.tls else None,
            tls_key=self.tls[1] if self.tls else None,
        )
        proc = ServerProcess(settings, self._on_event, self._on_exit)
        slot.proc, slot.state = proc, "starting"
        try:
            await proc.start(START_TIMEOUT_SECONDS)
        except StartFailed as exc:
            proc.failure = proc.failure or str(exc)  # reported again when it exits
            return
        except Exception as exc:
            if proc.process is not None:
                proc.failure = f"could not start: {exc}"
                proc.kill()
                return
            slot.proc = None
            self._failed(slot, f"could not start: {exc}")
            return
        if slot.proc is not proc:
            return
        if self.state != "running":
            slot.state = "stopping"
            await proc.stop("the pool is shutting down", STOP_TIMEOUT_SECONDS)
            return
        slot.state, slot.empty_since, slot.last_ping = "ready", time.monotonic(), time.monotonic()
        log.info(
            "server %s ready on port %s (pid %s, %.0f ms)",
            slot.id,
            proc.port,
            proc.pid,
            (proc.start_seconds or 0) * 1000,
        )
        self._note(
            "started" if slot.restarts == 0 else "restarted",
            slot.id,
            f"port {proc.port}, pid {proc.pid}, {(proc.start_seconds or 0) * 1000:.0f} ms",
        )
        self._notify()

    def _on_event(self, proc: ServerProcess, event: dict[str, Any]) -> None:
        slot = self.slots.get(proc.settings.server_id)
        if slot is None or slot.proc is not proc:
            return
        kind = event.get("event")
        if kind == "joined":
            slot.reserved.pop(str(event.get("ticket")), None)
            slot.clients.add(str(event.get("client")))
        elif kind == "left":
            slot.clients.discard(str(event.get("client")))
            if slot.load == 0:
                slot.empty_since = time.monotonic()
            self._notify()
        elif kind == "messages":
            for entry in event.get("lines") or []:
                client, name, text = (str(part) for part in entry)
                messages_log.info(
                    "%s %s (%s): %s", slot.id, printable(name, 40), client, printable(text)
                )
            if event.get("dropped"):
                messages_log.info("%s: %s more messages not logged", slot.id, event["dropped"])

    def _on_exit(self, proc: ServerProcess) -> None:
        slot = self.slots.get(proc.settings.server_id)
        if slot is None or slot.proc is not proc:
            return
        slot.proc = None
        slot.clients.clear()
        slot.reserved.clear()
        if slot.state == "stopping" or self.state != "running":
            del self.slots[slot.id]
            log.info("server %s stopped", slot.id)
            self._note("stopped", slot.id, f"exit code {proc.exitcode}")
            self._notify()
            return
        self._failed(slot, proc.failure or f"exited with code {proc.exitcode}")

    def _failed(self, slot: Slot, reason: str) -> None:
        self.guard.failed(f"{slot.id}: {reason}")
        slot.last_failure = reason
        log.error("server %s failed: %s", slot.id, reason)
        self._note("failed", slot.id, reason)
        if self.guard.halted():
            del self.slots[slot.id]
            log.error(
                "servers keep failing (%d in %.0f s): no server starts until %.0f s from now",
                self.guard.recent,
                self.guard.window,
                self.guard.start_at() - time.monotonic(),
            )
            self._note("halted", slot.id, self.guard.last_reason)
        else:
            slot.state, slot.restart_at = "restarting", self.guard.start_at()
        self._notify()

    # -- policy --------------------------------------------------------------------

    async def _run_policy(self) -> None:
        period = min(0.2, self.config.ping_interval_seconds / 4)
        while True:
            await asyncio.sleep(period)
            try:
                self._tick()
            except Exception:
                log.exception("pool policy tick failed")

    def _tick(self) -> None:
        """One pass of the policy: health, restarts, the idle buffer, idle stops."""
        if self.state != "running":
            return
        now = time.monotonic()
        if self._expire(now):
            self._notify()
        interval = self.config.ping_interval_seconds
        for slot in self.slots.values():
            proc = slot.proc
            if slot.state != "ready" or proc is None:
                continue
            if proc.silent_for() > 2 * interval:
                proc.failure = f"hung: no answer to pings for {proc.silent_for():.1f} s"
                proc.kill()
            elif now - slot.last_ping >= interval:
                proc.send({"op": "ping"})
                slot.last_ping = now
        for slot in list(self.slots.values()):
            if slot.state == "restarting" and now >= slot.restart_at and self.guard.may_start():
                slot.restarts += 1
                self._spawn(self._launch(slot))
        self._keep_idle()
        self._grow()
        self._stop_idle(now)

    def _keep_idle(self) -> None:
        """Start servers until ``min_idle`` empty ones stand ready (or are coming)."""
        while (
            self._idle() < self.config.min_idle
            and len(self.slots) < self.config.max_servers
            and self.guard.may_start()
        ):
            self._new_slot()

    def _idle(self) -> int:
        """Servers that are, or will come up, empty."""
        return sum(
            1
            for slot in self.slots.values()
            if slot.state in ("starting", "restarting") or (slot.state == "ready" and not slot.load)
        )

    def _grow(self) -> None:
        """Start servers while more allocations wait than the starting ones can seat."""
        coming = sum(
            self.config.max_clients - slot.load
            for slot in self.slots.values()
            if slot.state in ("starting", "restarting")
        )
        while (
            self._waiting > coming
            and len(self.slots) < self.config.max_servers
            and self.guard.may_start()
        ):
            self._new_slot()
            coming += self.config.max_clients

    def _stop_idle(self, now: float) -> None:
        spare = self._idle() - self.config.min_idle
        if spare <= 0:
            return
        horizon = now - self.config.idle_timeout_seconds
        quiet = sorted(
            (
                s
                for s in self.slots.values()
                if s.state == "ready" and not s.load and s.empty_since <= horizon
            ),
            key=lambda s: s.empty_since,
        )
        for slot in quiet[:spare]:
            assert slot.proc is not None
            slot.state = "stopping"
            log.info("server %s idle for %.0f s: stopping it", slot.id, now - slot.empty_since)
            self._spawn(slot.proc.stop("server idle", STOP_TIMEOUT_SECONDS))

    def _expire(self, now: float) -> int:
        """Forget reservations whose tickets expired; return how many."""
        expired = 0
        for slot in self.slots.values():
            gone = [tid for tid, until in slot.reserved.items() if until <= now]
            for tid in gone:
                del slot.reserved[tid]
            expired += len(gone)
            if gone and not slot.load:
                slot.empty_since = now
        return expired

    # -- allocation ----------------------------------------------------------------

    async def allocate(self, name: str) -> Seat:
        """A seat for client ``name``: start a server if needed, wait briefly when full."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        self._waiting += 1
        try:
            while True:
                if self.state != "running":
                    raise Unavailable(
                        "the pool is shutting down; try again once it is back",
                        code="shutting_down",
                    )
                now = loop.time()
                self._expire(time.monotonic())
                slot = self._pick()
                if slot is not None:
                    return self._reserve(slot, name)
                self._grow()
                # A server on its way is worth waiting for; one in backoff after a failure
                # is not (the allocation would only wait out the backoff).
                coming = any(s.state == "starting" for s in self.slots.values())
                limit = began + self.config.allocate_wait_seconds
                if coming:
                    limit = max(limit, began + START_TIMEOUT_SECONDS)
                if now >= limit:
                    raise self._refusal()
                wakeup = self._wakeup
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), limit - now)
        finally:
            self._waiting -= 1

    def _pick(self) -> Slot | None:
        best: Slot | None = None
        for slot in self.slots.values():
            if slot.state != "ready" or slot.load >= self.config.max_clients:
                continue
            if best is None or slot.load > best.load:
                best = slot
        return best

    def _reserve(self, slot: Slot, name: str) -> Seat:
        proc = slot.proc
        assert proc is not None
        assert proc.port is not None
        ttl = self.config.ticket_ttl_seconds
        client = "c" + secrets.token_hex(4)
        text, ticket = mint(
            proc.settings.key, server=proc.settings.instance, client=client, name=name, ttl=ttl
        )
        slot.reserved[ticket.id] = time.monotonic() + ttl
        self.allocations += 1
        self._keep_idle()  # the seat may have used up the idle buffer
        return Seat(
            host=self.public_host,
            port=proc.port,
            ticket=text,
            server=slot.id,
            client=client,
            name=name,
            expires_at=datetime.fromtimestamp(ticket.expires, UTC).isoformat(timespec="seconds"),
            tls=self.tls is not None,
            ping_interval_seconds=self.config.ping_interval_seconds,
        )

    def _refusal(self) -> Unavailable:
        if self.guard.halted():
            wait = self.guard.start_at() - time.monotonic()
            return Unavailable(
                f"server processes keep failing ({self.guard.recent} failures within "
                f"{self.guard.window:.0f} s; last: {self.guard.last_reason}); starts resume "
                f"in {wait:.0f} s; see the log",
                code="servers_failing",
            )
        if len(self.slots) >= self.config.max_servers:
            return Unavailable(
                f"pool full: all {self.config.max_servers} servers hold "
                f"{self.config.max_clients} clients each; try again later",
                code="pool_full",
            )
        last = f"; last failure: {self.guard.last_reason}" if self.guard.last_reason else ""
        return Unavailable(f"no server became ready in time{last}", code="no_server")

    # -- status --------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """The pool and every server with its properties (asked over its channel)."""
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < PROPERTIES_CACHE_SECONDS:
            return self._cache[1]
        slots = sorted(self.slots.values(), key=lambda s: int(s.id[1:]))
        asked = await asyncio.gather(
            *(
                slot.proc.properties(PROPERTIES_TIMEOUT_SECONDS)
                if slot.proc is not None and slot.state == "ready"
                else _nothing()
                for slot in slots
            )
        )
        servers = [self._describe(slot, props) for slot, props in zip(slots, asked, strict=True)]
        result = {"pool": self.summary(), "servers": servers}
        self._cache = (time.monotonic(), result)
        return result

    def _describe(self, slot: Slot, props: dict[str, Any] | None) -> dict[str, Any]:
        proc = slot.proc
        shown: dict[str, Any] = {
            "id": slot.id,
            "state": slot.state,
            "pid": proc.pid if proc else None,
            "port": proc.port if proc else None,
            "restarts": slot.restarts,
            "started_at": (
                datetime.fromtimestamp(proc.started_at, UTC).isoformat(timespec="seconds")
                if proc
                else None
            ),
            "start_seconds": round(proc.start_seconds, 4) if proc and proc.start_seconds else None,
            "client_count": len(slot.clients),
            "reserved": len(slot.reserved),
            "max_clients": self.config.max_clients,
            "answering": props is not None,
            "last_failure": slot.last_failure or None,
            "clients": [],
            "messages_in": None,
            "messages_out": None,
            "rate_in": None,
            "rate_out": None,
            "uptime_seconds": None,
            "memory_rss_bytes": None,
        }
        if props is not None:
            shown.update({key: props.get(key) for key in shown if key in props})
            shown.update(
                {k: props.get(k) for k in ("bytes_in", "bytes_out", "refused", "dropped_lines")}
            )
            shown["client_count"] = props.get("client_count", shown["client_count"])
        return shown

    def summary(self) -> dict[str, Any]:
        """The pool as the dispatcher sees it, without asking any server."""
        slots = self.slots.values()
        return {
            "state": self.state,
            "host": self.public_host,
            "tls": self.tls is not None,
            "servers": len(slots),
            "ready": sum(1 for slot in slots if slot.state == "ready"),
            "clients": sum(len(slot.clients) for slot in slots),
            "reserved": sum(len(slot.reserved) for slot in slots),
            "capacity": self.config.max_servers * self.config.max_clients,
            "max_servers": self.config.max_servers,
            "max_clients": self.config.max_clients,
            "min_idle": self.config.min_idle,
            "ping_interval_seconds": self.config.ping_interval_seconds,
            "allocations": self.allocations,
            "recent_failures": self.guard.recent,
            "halted": self.guard.halted(),
            "last_failure": self.guard.last_reason or None,
            "uptime_seconds": round(time.monotonic() - self.started_at, 1),
        }


async def _nothing() -> None:
    return None
