"""The backup daemon: the scheduler plus the WebSocket control API (seed 002)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from homekeep.backup import schedule
from homekeep.backup.config import JobSpec, cron_problem
from homekeep.backup.protocol import Commands
from homekeep.backup.service import Service
from homekeep.core.errors import AuthError, Conflict, HomekeepError, InvalidInput, UsageError
from homekeep.core.tokens import TokenStore

log = logging.getLogger("homekeep.backup")
MAX_MESSAGE = 1024 * 1024
TICK = 0.2


class Daemon:
    """Runs due jobs, answers WebSocket requests, pushes run events to every client."""

    def __init__(
        self, svc: Service, *, verbose: bool = False, tokens: TokenStore | None = None
    ) -> None:
        self.svc = svc
        self.tokens = tokens
        self.verbose = verbose
        self.clients: set[ServerConnection] = set()
        self.running: dict[str, threading.Event] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.due: dict[str, datetime | None] = {}
        self.known: dict[str, JobSpec] = {}
        self.commands = Commands(self)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(fn)

    # -- events ----------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Push an event to every client (callable from any thread)."""
        if self.loop is None:
            return
        text = json.dumps(event)
        self.loop.call_soon_threadsafe(lambda: broadcast(self.clients, text))

    # -- runs ------------------------------------------------------------------------

    def start_run(self, name: str, trigger: str = "api") -> bool:
        if name in self.running:
            return False
        cancel = threading.Event()
        self.running[name] = cancel
        task = asyncio.get_running_loop().create_task(self._run(name, trigger, cancel))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run(self, name: str, trigger: str, cancel: threading.Event) -> None:
        try:
            job = await asyncio.to_thread(self.svc.jobs.get, name)
            self.emit({"event": "RunStarted", "Name": name, "Trigger": trigger})
            run = await asyncio.to_thread(
                lambda: self.svc.backups.run(
                    job, trigger=trigger, verbose=self.verbose, on_event=self.emit, cancel=cancel
                )
            )
            self.emit(
                {
                    "event": "RunFinished",
                    "Name": name,
                    "Run": run.id,
                    "Result": run.result,
                    "Summary": _summary(run),
                    "Errors": run.errors[-5:],
                }
            )
        except Conflict as exc:
            self.emit(
                {
                    "event": "RunFinished",
                    "Name": name,
                    "Result": "skipped",
                    "Error": "Already Running",
                    "Message": exc.message,
                }
            )
        except HomekeepError as exc:
            self.emit(
                {
                    "event": "RunFinished",
                    "Name": name,
                    "Result": "error",
                    "Error": "Run Failed",
                    "Message": exc.message,
                }
            )
        except Exception as exc:
            log.exception("%s: run crashed", name)
            self.emit(
                {
                    "event": "RunFinished",
                    "Name": name,
                    "Result": "error",
                    "Error": "Run Failed",
                    "Message": f"{type(exc).__name__}: {exc}",
                }
            )
        finally:
            self.running.pop(name, None)

    # -- scheduler -------------------------------------------------------------------

    def _refresh(self, now: datetime, *, initial: bool) -> None:
        """Track the job list: at start from the run history, later from now."""
        jobs = {j.name: j for j in self.svc.jobs.all()}
        for name in list(self.due):
            if name not in jobs:
                del self.due[name]
                self.known.pop(name, None)
        for name, job in jobs.items():
            if self.known.get(name) == job:
                continue
            if job.cron and (problem := cron_problem(job.cron)):
                log.error("%s: %s; the job is not scheduled", name, problem)
                self.due[name] = None
            elif initial:
                last = self.svc.backups.store.last(name)
                started = datetime.fromisoformat(last.started_at) if last else None
                self.due[name] = schedule.first_due(job, started, now)
            else:  # added or edited while running
                self.due[name] = (
                    schedule.next_after(job, now) if schedule.has_schedule(job) else None
                )
            self.known[name] = job

    async def scheduler(self) -> None:
        initial = True
        while True:
            now = datetime.now(UTC)
            try:
                await asyncio.to_thread(self._refresh, now, initial=initial)
                initial = False
            except HomekeepError as exc:
                log.error("cannot read the jobs: %s", exc.message)
            for name, due in list(self.due.items()):
                if due is None or due > now:
                    continue
                job = self.known[name]
                self.due[name] = schedule.next_after(job, now)
                if name in self.running:
                    log.info("%s: still running, skipping this scheduled run", name)
                    continue
                self.start_run(name, "schedule")
            await asyncio.sleep(TICK)

    # -- WebSocket -------------------------------------------------------------------

    def check_token(self, conn: ServerConnection, request: Request) -> Response | None:
        """Admit the handshake only with a token scoped for backup (when tokens are on)."""
        if self.tokens is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        if not token:
            return conn.respond(401, "missing token: send 'Authorization: Bearer <token>'\n")
        try:
            record = self.tokens.verify(token.strip())
        except AuthError as exc:
            return conn.respond(401, exc.message + "\n")
        if not record.allows("backup"):
            return conn.respond(403, f"token {record.name!r} has no access to backup\n")
        return None

    async def handler(self, conn: ServerConnection) -> None:
        self.clients.add(conn)
        try:
            async for message in conn:
                try:
                    answer = await self.commands.answer(message)
                except Exception as exc:  # a bug must not drop the client
                    log.exception("request failed")
                    answer = {
                        "response": "Error",
                        "Result": "Failure",
                        "Error": "Internal Error",
                        "Message": f"{type(exc).__name__}",
                    }
                await conn.send(json.dumps(answer))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(conn)

    async def main(self, host: str, port: int, announce: Callable[[str], None]) -> None:
        self.loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, stop.set)
        try:
            server = await serve(
                self.handler, host, port, max_size=MAX_MESSAGE, process_request=self.check_token
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port"
            ) from exc
        async with server:
            bound = sorted({s.getsockname()[1] for s in server.sockets})
            shown = f"[{host}]" if ":" in host else host
            announce(f"ws://{shown}:{bound[0]}")
            sched = asyncio.create_task(self.scheduler())
            await stop.wait()
            sched.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sched
            for cancel in self.running.values():
                cancel.set()
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=30)


def _summary(run: Any) -> str:
    from homekeep.backup.runner import summary

    return summary(run)


LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def run_daemon(
    svc: Service, *, host: str, port: int, verbose: bool, tokens: TokenStore | None
) -> None:
    """Serve until SIGINT or SIGTERM; running jobs are cancelled and recorded as such.

    ``tokens`` None lets every client in; the CLI always passes it beyond loopback.
    """
    import click

    for job in svc.jobs.all():
        if job.cron and (problem := cron_problem(job.cron)):
            raise InvalidInput(f"job {job.name}: cron: {problem}; fix it in {svc.jobs.path}")

    def announce(url: str) -> None:
        click.echo(f"homekeep backup daemon listening on {url} (Ctrl-C stops)")
        log.info("backup daemon listening on %s", url)

    asyncio.run(Daemon(svc, verbose=verbose, tokens=tokens).main(host, port, announce))
    log.info("backup daemon stopped")
