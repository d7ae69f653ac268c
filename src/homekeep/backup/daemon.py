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

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from homekeep.backup import schedule
from homekeep.backup.access import HOW_TO, Credentials, Gate
from homekeep.backup.config import JobSpec, cron_problem
from homekeep.backup.protocol import BadMessage, Commands, Message, failure, parse
from homekeep.backup.service import Service
from homekeep.core.errors import (
    AuthError,
    Conflict,
    Forbidden,
    HomekeepError,
    InvalidInput,
    UsageError,
)
from homekeep.core.origin import own_origins
from homekeep.core.tokens import TokenStore

log = logging.getLogger("homekeep.backup")
MAX_MESSAGE = 1024 * 1024
TICK = 0.2
AUTH_TIMEOUT = 10.0  # seconds a client without a header has to send its Auth message
CLOSE_POLICY = 1008  # WebSocket close code: policy violation
DENIED = {"Unauthorized", "Forbidden"}


class Daemon:
    """Runs due jobs, answers WebSocket requests, pushes run events to every client."""

    def __init__(self, svc: Service, *, tokens: TokenStore, verbose: bool = False) -> None:
        self.svc = svc
        self.gate = Gate(tokens, svc.config.daemon_origins)
        self.verbose = verbose
        # Both belong to the event loop's thread: clients that may receive events, and
        # the credentials of handshakes waiting for their handler.
        self.clients: set[ServerConnection] = set()
        self.admitted: dict[ServerConnection, Credentials] = {}
        self.open: set[ServerConnection] = set()  # event loop only
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

    async def handshake(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse a token in the URL, a foreign Origin, a bad Authorization header, a flood."""
        refused = self.gate.refusal(conn, request)
        if refused is not None:
            return refused
        # open WebSockets, authenticated or not, count: a flood of idle ones gets 503
        if len(self.open) >= self.svc.config.daemon_max_connections:
            return conn.respond(503, "too many open connections; try again later\n")
        try:
            credentials = self.gate.header_credentials(request)
            if credentials is not None:
                await asyncio.to_thread(self.gate.authorize, credentials)
        except AuthError as exc:
            return conn.respond(exc.status_code, exc.message + "\n")
        if credentials is not None:
            self.admitted[conn] = credentials
        self.open.add(conn)
        return None

    async def handler(self, conn: ServerConnection) -> None:
        credentials = self.admitted.pop(conn, None)
        try:
            if credentials is None:
                credentials = await self.first_message(conn)
                if credentials is None:
                    return
            self.clients.add(conn)  # run events go to authenticated clients only
            async for message in conn:
                answer, credentials = await self.answer(message, credentials)
                await conn.send(json.dumps(answer))
                if answer.get("Error") in DENIED:
                    await conn.close(CLOSE_POLICY, answer["Error"])
                    return
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(conn)
            self.open.discard(conn)

    async def first_message(self, conn: ServerConnection) -> Credentials | None:
        """Authenticate a client that sent no header by its first message, or close it."""
        try:
            text = await asyncio.wait_for(conn.recv(), AUTH_TIMEOUT)
        except TimeoutError:
            await conn.close(CLOSE_POLICY, f"no token within {AUTH_TIMEOUT:.0f} s")
            return None
        try:
            message = parse(text)
        except BadMessage as exc:
            message = exc.answer
        request = str(message.get("request", "Error"))[:100]
        if request != "Auth":
            answer = failure(request, "Unauthorized", Message=f"missing token: {HOW_TO}")
        else:
            answer, credentials = await self.auth(message)
            if credentials is not None:
                await conn.send(json.dumps(answer))
                return credentials
        await conn.send(json.dumps(answer))
        await conn.close(CLOSE_POLICY, answer["Error"])
        return None

    async def auth(self, message: Message) -> tuple[Message, Credentials | None]:
        """Answer an Auth request: its credentials when the token is good."""
        token = message.get("Token")
        credentials = Credentials(token if isinstance(token, str) else None)
        try:
            record = await asyncio.to_thread(self.gate.authorize, credentials)
        except Forbidden as exc:
            return failure("Auth", "Forbidden", Message=exc.message), None
        except AuthError as exc:
            return failure("Auth", "Unauthorized", Message=exc.message), None
        return {"response": "Auth", "Result": "Success", "Name": record.name}, credentials

    async def answer(
        self, text: str | bytes, credentials: Credentials
    ) -> tuple[Message, Credentials]:
        """Answer one request after checking the client's token again (it may be revoked)."""
        try:
            message = parse(text)
        except BadMessage as exc:
            return exc.answer, credentials
        if message["request"] == "Auth":
            answer, fresh = await self.auth(message)
            return answer, fresh or credentials
        try:
            await asyncio.to_thread(self.gate.authorize, credentials)
        except AuthError as exc:
            name = str(message["request"])[:100]
            error = "Forbidden" if isinstance(exc, Forbidden) else "Unauthorized"
            return failure(name, error, Message=exc.message), credentials
        try:
            return await self.commands.handle(message), credentials
        except Exception as exc:  # a bug must not drop the client
            log.exception("request failed")
            return {
                "response": "Error",
                "Result": "Failure",
                "Error": "Internal Error",
                "Message": f"{type(exc).__name__}",
            }, credentials

    async def main(self, host: str, port: int, announce: Callable[[str], None]) -> None:
        self.loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, stop.set)
        try:
            server = await serve(
                self.handler, host, port, max_size=MAX_MESSAGE, process_request=self.handshake
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port"
            ) from exc
        async with server:
            bound = sorted({s.getsockname()[1] for s in server.sockets})
            for bound_port in bound:  # localhost with --port 0 may bind two ports
                self.gate.origins |= own_origins(host, bound_port)
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


def run_daemon(svc: Service, *, host: str, port: int, verbose: bool, tokens: TokenStore) -> None:
    """Serve until SIGINT or SIGTERM; running jobs are cancelled and recorded as such."""
    import click

    for job in svc.jobs.all():
        if job.cron and (problem := cron_problem(job.cron)):
            raise InvalidInput(f"job {job.name}: cron: {problem}; fix it in {svc.jobs.path}")

    def announce(url: str) -> None:
        click.echo(f"homekeep backup daemon listening on {url} (Ctrl-C stops)")
        click.echo("clients need a token: homekeep token create NAME --scope backup")
        log.info("backup daemon listening on %s", url)

    asyncio.run(Daemon(svc, verbose=verbose, tokens=tokens).main(host, port, announce))
    log.info("backup daemon stopped")
