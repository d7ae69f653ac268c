"""homekeep pool: run the dispatcher, see its servers, join a room, get a seat, read history."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from homekeep.core.errors import Unavailable
from homekeep.core.output import (
    human_duration,
    human_size,
    json_option,
    plural,
    print_json,
    print_table,
)
from homekeep.core.runtime import Runtime, pass_runtime, tls_options
from homekeep.pool.client import Dispatch, RoomClient
from homekeep.pool.lines import printable
from homekeep.pool.service import Service, open_service

T = TypeVar("T")
MAX_TEXT_CHARS = 60_000  # below the servers' default line bound, with JSON escaping to spare


def _service(rt: Runtime) -> Service:
    return open_service(rt.area("pool"))


def _remote_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--url", help="The dispatcher's URL (default: [pool] url, else [server])."),
        click.option(
            "--token", help="Token with scope pool (default: [pool] token, HOMEKEEP_POOL_TOKEN)."
        ),
        click.option(
            "--ca",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="CA certificate (PEM) to trust for the dispatcher and the servers.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _with_remote(
    rt: Runtime,
    url: str | None,
    token: str | None,
    ca: Path | None,
    work: Callable[[Dispatch], Awaitable[T]],
) -> T:
    """Run ``work`` against the dispatcher, then close the connection."""
    svc = _service(rt)
    try:
        remote = svc.remote(url, token, ca)
    finally:
        svc.close()

    async def run() -> T:
        try:
            return await work(remote)
        finally:
            await remote.aclose()

    return asyncio.run(run())


@click.group("pool")
def group() -> None:
    """Server processes started on demand; clients get a port and a single-use ticket."""


@group.command("serve")
@click.option("--host", help="Address the dispatcher's HTTP API listens on (default [server]).")
@click.option("--port", type=click.IntRange(0, 65535), help="Its port (default [server]; 0: any).")
@tls_options
@click.option("--quiet", is_flag=True, help="Do not print the relayed messages.")
@pass_runtime
def serve(
    rt: Runtime,
    host: str | None,
    port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    quiet: bool,
) -> None:
    """Run the dispatcher on its own: its API under /api/pool/, its page at /pool/.

    Clients authenticate with tokens from this data directory:
    'homekeep token create NAME --scope pool'. SIGTERM or Ctrl-C drains the pool.
    """
    from homekeep.core.server import serve as serve_app
    from homekeep.pool.api import standalone_app

    web = rt.override_server(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key).server
    ctx = rt.area("pool")
    if not quiet:
        _print_messages()
    tokens = rt.tokens()
    try:
        app = standalone_app(ctx, tokens, web.host)
        if not any(t.allows("pool") and t.revoked_at is None for t in tokens.list()):
            click.echo(
                "warning: no token can allocate yet; create one with "
                "'homekeep token create NAME --scope pool'",
                err=True,
            )
        serve_app(
            app,
            host=web.host,
            port=web.port,
            tls_cert=web.tls_cert,
            tls_key=web.tls_key,
            on_ready=lambda url: click.echo(
                f"homekeep pool dispatcher at {url}/ (page {url}/pool/; Ctrl-C drains and stops)"
            ),
            name="pool dispatcher",
            limits=web.limits(),
        )
    finally:
        tokens.close()


def _print_messages() -> None:
    """Print each relayed message on stdout, as the seed asks, besides the log file."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    messages = logging.getLogger("homekeep.pool.messages")
    messages.setLevel(logging.INFO)
    messages.addHandler(handler)


@group.command("status")
@_remote_options
@json_option()
@pass_runtime
def status(rt: Runtime, url: str | None, token: str | None, ca: Path | None, as_json: bool) -> None:
    """Show the servers: state, port, clients, messages and rates, uptime, memory."""
    data = _with_remote(rt, url, token, ca, lambda remote: remote.servers())
    if as_json:
        print_json(data)
        return
    pool = data["pool"]
    click.echo(
        f"pool {pool['state']}: {plural(pool['servers'], 'server')} ({pool['ready']} ready), "
        f"{plural(pool['clients'], 'client')} of {pool['capacity']} seats, "
        f"{plural(pool['allocations'], 'allocation')}"
        + (f"; halted: {pool['last_failure']}" if pool["halted"] else "")
    )
    rows = [
        (
            s["id"],
            s["state"] if s["answering"] or s["state"] != "ready" else "not answering",
            s["port"],
            s["pid"],
            f"{s['client_count']}/{s['max_clients']}",
            s["rate_in"],
            s["rate_out"],
            s["messages_in"],
            s["messages_out"],
            human_duration(s["uptime_seconds"]),
            human_size(s["memory_rss_bytes"]),
            s["restarts"],
        )
        for s in data["servers"]
    ]
    if rows:
        print_table(
            rows,
            (
                "server",
                "state",
                "port",
                "pid",
                "clients",
                "in/s",
                "out/s",
                "in",
                "out",
                "uptime",
                "memory",
                "restarts",
            ),
        )


@group.command("allocate")
@_remote_options
@click.option("--name", help="The name the others see (default: the token's name).")
@json_option()
@pass_runtime
def allocate(
    rt: Runtime,
    url: str | None,
    token: str | None,
    ca: Path | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Get a seat and print it: host, port and ticket, for a client in any language."""
    seat = _with_remote(rt, url, token, ca, lambda remote: remote.allocate(name))
    if as_json:
        print_json(seat.to_json())
        return
    click.echo(f"server {seat.server} at {seat.host}:{seat.port}{' (TLS)' if seat.tls else ''}")
    click.echo(f"client {seat.client} ({seat.name}); send as your first line:")
    click.echo(f'{{"type": "hello", "ticket": "{seat.ticket}"}}')


@group.command("connect")
@_remote_options
@click.option("--name", help="The name the others see (default: the token's name).")
@click.option("--stay", is_flag=True, help="Keep listening after standard input ends.")
@json_option("Print each line from the server as one JSON object a line.")
@pass_runtime
def connect(
    rt: Runtime,
    url: str | None,
    token: str | None,
    ca: Path | None,
    name: str | None,
    stay: bool,
    as_json: bool,
) -> None:
    """Join a server through the dispatcher: type a line to send it, see the others' lines.

    Ctrl-D leaves (or, with --stay, Ctrl-C). When the server goes away the client gets a
    new seat from the dispatcher by itself.
    """
    reason = _with_remote(rt, url, token, ca, lambda remote: _chat(remote, name, stay, as_json))
    if reason:
        raise Unavailable(f"left the pool: {reason}")


async def _chat(remote: Dispatch, name: str | None, stay: bool, as_json: bool) -> str:
    """Run one interactive client; return why it ended when the pool ended it."""
    client = RoomClient(remote, name)
    welcome = await client.join()
    click.echo(
        f"joined server {welcome.get('server')} as {printable(str(welcome.get('name')), 40)} "
        f"({client.client}); {plural(int(welcome.get('clients', 1)), 'client')} here; "
        "type a line and Enter to send it, Ctrl-D to leave",
        err=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printer = asyncio.create_task(_print_incoming(client, as_json))
    tasks = {
        printer,
        asyncio.create_task(_send_lines(client, stay)),
        asyncio.create_task(stop.wait()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await client.close()
    return client.closed_reason if printer.done() and not printer.cancelled() else ""


async def _send_lines(client: RoomClient, stay: bool) -> None:
    """Send each line of standard input; at its end leave, or with ``stay`` keep listening."""
    lines = _stdin_lines()
    while (line := await lines.get()) is not None:
        if len(line) > MAX_TEXT_CHARS:
            click.echo(f"not sent: a line holds at most {MAX_TEXT_CHARS} characters", err=True)
        elif line:
            await client.send(line)
    if stay:
        await asyncio.Event().wait()


async def _print_incoming(client: RoomClient, as_json: bool) -> None:
    """Print what the server sends until the client has ended."""
    while (message := await client.inbox.get()).get("type") != "ended":
        if as_json:  # one object a line, as the protocol itself
            click.echo(json.dumps(message, ensure_ascii=False))
        else:
            click.echo(_shown(message))


def _shown(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind == "message":
        who = printable(str(message.get("name") or message.get("from")), 40)
        return f"{who}: {printable(str(message.get('text')), 10_000)}"
    if kind == "joined":
        return f"* {printable(str(message.get('name')), 40)} joined"
    if kind == "left":
        return f"* {printable(str(message.get('name')), 40)} left"
    if kind == "rejoined":
        return f"* the server went away; rejoined on server {message.get('server')}"
    if kind == "closing":
        return f"* server closing: {printable(str(message.get('reason')))}"
    if kind == "error":
        return f"! {printable(str(message.get('message')))}"
    return printable(str(message))


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of standard input, read by a daemon thread (None at the end)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue


@group.command("history")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option()
@pass_runtime
def history(rt: Runtime, limit: int, as_json: bool) -> None:
    """List what happened to servers, newest first: started, stopped, failed, restarted."""
    svc = _service(rt)
    try:
        events = svc.store.recent(limit)
    finally:
        svc.close()
    if as_json:
        print_json([event.to_json() for event in events])
        return
    if not events:
        click.echo("no pool events yet; start the pool with 'homekeep pool serve'")
        return
    print_table(
        [(e.at, e.server, e.kind, e.detail) for e in events], ("at", "server", "event", "detail")
    )
