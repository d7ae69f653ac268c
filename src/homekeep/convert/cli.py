"""`homekeep convert ...`: the server, its workers and queue, and the client with its outbox."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click

from homekeep.convert.config import ConvertConfig, WatchEntry
from homekeep.convert.profiles import CONVERSIONS
from homekeep.core.area import AreaContext
from homekeep.core.errors import UsageError
from homekeep.core.output import human_size, json_option, print_json, print_table
from homekeep.core.runtime import Runtime, pass_runtime, tls_options


@click.group("convert")
def group() -> None:
    """Media conversion queue: a server with ffmpeg workers, and clients that go offline."""


def _config(rt: Runtime) -> tuple[AreaContext, ConvertConfig]:
    ctx = rt.area("convert")
    return ctx, ctx.config(ConvertConfig)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


# the server side


@group.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8090, show_default=True, help="0: any."
)
@tls_options
@click.option("--no-workers", is_flag=True, help="Run no workers here (they run elsewhere).")
@pass_runtime
def server_cmd(
    rt: Runtime, host: str, port: int, tls_cert: Path | None, tls_key: Path | None, no_workers: bool
) -> None:
    """Serve the convert API and page alone (`homekeep serve` mounts them too)."""
    from homekeep.convert.api import standalone_app
    from homekeep.core.hosts import trusted_names
    from homekeep.core.server import serve

    rt.setup_logging()
    tokens = rt.tokens()
    ctx = AreaContext(name="convert", settings=rt.settings, tokens=tokens)
    web = rt.settings.server
    app = standalone_app(
        ctx, trusted_hosts=trusted_names(host, "", web.trusted_hosts), workers=not no_workers
    )
    try:
        serve(
            app,
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            on_ready=lambda url: click.echo(f"homekeep convert server at {url} (Ctrl-C stops)"),
            name="convert server",
            limits=web.limits(),
        )
    finally:
        tokens.close()


@group.command("worker")
@click.option("--threads", type=click.IntRange(1, 64), help="Workers (default from config).")
@click.option("--server", help="A server on another machine to work for (its URL).")
@click.option("--token", help="Token with scope convert-worker for --server.")
@pass_runtime
def worker_cmd(rt: Runtime, threads: int | None, server: str | None, token: str | None) -> None:
    """Convert jobs until stopped: for this data dir's queue, or for --server through Redis."""
    from homekeep.convert.brokers import HttpBroker
    from homekeep.convert.queue import JobQueue
    from homekeep.convert.service import open_service
    from homekeep.convert.workers import Upkeep, WorkerPool, local_pool

    ctx, cfg = _config(rt)
    count = threads or cfg.number_of_conversion_threads or 1
    server = (server or cfg.server_url).rstrip("/")
    stop = _stop_on_signals()
    upkeep: Upkeep | None = None
    if server:
        if cfg.broker == "sqlite":
            raise UsageError(
                "a worker on another machine takes jobs through Redis: set [convert] broker "
                "to the server's redis:// URL"
            )
        secret = token or cfg.worker_token.get_secret_value()
        if not secret:
            raise UsageError("give --token (scope convert-worker) or [convert] worker_token")
        queue = JobQueue(cfg.broker, ctx.dir)
        broker = HttpBroker(server, secret, os.getpid())
        pool = WorkerPool(queue, broker, ctx.dir / "work", count)
        closers = [broker.close, queue.close]
    else:
        service = open_service(ctx)
        service.recover()
        queue = service.queue
        pool = local_pool(service, count)
        upkeep = Upkeep(service)
        upkeep.start()
        closers = [service.close]
    pool.start()
    click.echo(
        f"homekeep convert worker: {count} thread(s) taking jobs from {queue.where} "
        f"for {server or 'this data directory'} (Ctrl-C stops)"
    )
    try:
        while not stop.wait(1):
            pass
    finally:
        pool.stop()
        if upkeep is not None:
            upkeep.stop()
        for close in closers:
            close()
    click.echo("stopped: running jobs went back to the queue", err=True)


def _item_rows(items: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for i in items:
        progress = i.get("progress") or {}
        state = i["status"]
        if progress:
            state += f" {progress.get('percent', 0):.0f}%"
        rows.append(
            (
                i["item_id"][:8],
                i["client_id"],
                i["file_name"],
                i["conversion"],
                state,
                i["attempts"],
                "; ".join(i["errors"])[:80] or "-",
            )
        )
    return rows


@group.command("queue")
@click.option("--status", "statuses", multiple=True, help="Only items in this status (repeat).")
@click.option("--client", "client_id", help="Only this client's items.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@json_option()
@pass_runtime
def queue_cmd(
    rt: Runtime, statuses: tuple[str, ...], client_id: str | None, limit: int, as_json: bool
) -> None:
    """List this server's queue, newest first (seed: the broker's list)."""
    from homekeep.convert.service import open_service
    from homekeep.convert.store import STATUSES

    for s in statuses:
        if s not in STATUSES:
            raise UsageError(f"--status must be one of: {', '.join(STATUSES)}")
    service = open_service(rt.area("convert"))
    try:
        items = [
            service.view(i)
            for i in service.store.items(client_id=client_id, statuses=statuses, limit=limit)
        ]
    finally:
        service.close()
    if as_json:
        print_json(items)
        return
    print_table(
        _item_rows(items), ("item", "client", "file", "conversion", "status", "tries", "errors")
    )


@group.command("enqueue")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--to", "conversion", required=True, type=click.Choice(sorted(CONVERSIONS)))
@click.option("--client", "client_id", default="local", show_default=True)
@json_option()
@pass_runtime
def enqueue_cmd(
    rt: Runtime, files: tuple[Path, ...], conversion: str, client_id: str, as_json: bool
) -> None:
    """Put files of this machine into this server's queue (checked as uploads are)."""
    from homekeep.convert.service import open_service

    service = open_service(rt.area("convert"))
    try:
        added = [service.view(service.add_local(f, conversion, client_id=client_id)) for f in files]
    finally:
        service.close()
    if as_json:
        print_json(added)
        return
    for item in added:
        click.echo(f"{item['item_id']} {item['file_name']}: {item['status']}")


@group.command("workers")
@json_option()
@pass_runtime
def workers_cmd(rt: Runtime, as_json: bool) -> None:
    """The workers seen lately and the item each runs."""
    from homekeep.convert.service import open_service

    service = open_service(rt.area("convert"))
    try:
        workers = service.store.workers()
    finally:
        service.close()
    if as_json:
        print_json(workers)
        return
    print_table(
        [(w["worker_id"], "remote" if w["remote"] else "local", w["item_id"]) for w in workers],
        ("worker", "where", "item"),
    )


@group.command("conversions")
@json_option()
@pass_runtime
def conversions_cmd(rt: Runtime, as_json: bool) -> None:
    """The conversions this server offers."""
    from homekeep.convert.profiles import offered

    _, cfg = _config(rt)
    found = [c.to_json() for c in offered(cfg).values()]
    if as_json:
        print_json(found)
        return
    print_table(
        [(c["name"], c["media_type"], c["extension"], c["summary"]) for c in found],
        ("name", "takes", "makes", "what"),
    )


# the client side

_server_option = click.option("--server", help="Server URL (default: [convert] servers).")
_token_option = click.option("--token", help="Token with scope convert for --server.")


@contextmanager
def _outbox(rt: Runtime, server: str | None, token: str | None) -> Iterator[Any]:
    from homekeep.convert.outbox import Outbox, targets

    ctx, cfg = _config(rt)
    chosen = targets(cfg, server, token or cfg.token.get_secret_value() or None)
    box = Outbox(ctx.dir / "client.sqlite", cfg, chosen)
    try:
        yield box
    finally:
        box.close()


def _client_rows(items: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for i in items:
        state = i["status"]
        if i["progress"] and state == "in_progress":
            state += f" {i['progress'].get('percent', 0):.0f}%"
        rows.append(
            (
                i["id"],
                Path(i["file_path"]).name,
                i["conversion"],
                human_size(i["file_size"]),
                state,
                (i["item_id"] or "-")[:8],
                i["output_path"] or ("; ".join(i["errors"])[:60] or "-"),
            )
        )
    return rows


_CLIENT_COLUMNS = ("#", "file", "conversion", "size", "status", "item", "output / errors")


@group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--to", "conversion", required=True, type=click.Choice(sorted(CONVERSIONS)))
@_server_option
@_token_option
@json_option()
@pass_runtime
def add_cmd(
    rt: Runtime,
    files: tuple[Path, ...],
    conversion: str,
    server: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Queue FILES for CONVERSION: sent now, or kept in the outbox until a server answers."""
    with _outbox(rt, server, token) as box:
        local_ids = [box.add(f, conversion)[0]["id"] for f in files]
        box.send_all(force=True)
        items = [box.get(i) for i in local_ids]
    if as_json:
        print_json(items)
        return
    for item in items:
        where = f"item {item['item_id']} ({item['status']})" if item["item_id"] else item["status"]
        if item["status"] == "outbox":
            where = "in the outbox: no server answers; 'convert status' or 'convert watch' sends it"
        if item["status"] == "refused":
            where = f"refused: {'; '.join(item['errors'])}"
        click.echo(f"{item['file_path']}: {where}")


@group.command("status")
@click.option("--no-refresh", is_flag=True, help="Show the client database without asking.")
@_server_option
@_token_option
@json_option()
@pass_runtime
def status_cmd(
    rt: Runtime, no_refresh: bool, server: str | None, token: str | None, as_json: bool
) -> None:
    """Send what waits in the outbox, ask the servers for news, and list every item."""
    with _outbox(rt, server, token) as box:
        if not no_refresh:
            box.send_all(force=True)
            box.refresh(force=True)
        items = box.all()
    if as_json:
        print_json(items)
        return
    print_table(_client_rows(items), _CLIENT_COLUMNS)


@group.command("fetch")
@click.argument("items", nargs=-1)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Folder for outputs.")
@_server_option
@_token_option
@json_option()
@pass_runtime
def fetch_cmd(
    rt: Runtime,
    items: tuple[str, ...],
    out: Path | None,
    server: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Download finished outputs (all not fetched yet, or ITEMS); cut downloads resume."""
    with _outbox(rt, server, token) as box:
        box.refresh(force=True)
        fetched = box.fetch(out, items)
    if as_json:
        print_json(fetched)
        return
    for item in fetched:
        click.echo(
            f"{item['output_path']} ({human_size(Path(item['output_path']).stat().st_size)})"
        )
    if not fetched:
        click.echo("nothing to fetch", err=True)


def _act(action: str, doc: str) -> click.Command:
    @click.argument("item")
    @_server_option
    @_token_option
    @json_option()
    @pass_runtime
    def command(
        rt: Runtime, item: str, server: str | None, token: str | None, as_json: bool
    ) -> None:
        with _outbox(rt, server, token) as box:
            done = box.act(item, action)
        if as_json:
            print_json(done)
            return
        click.echo(f"item {done['id']} ({Path(done['file_path']).name}): {done['status']}")

    command.__doc__ = doc
    return group.command(action)(command)


_act("cancel", "Cancel an item (ITEM: its number in 'convert status', or its id).")
_act("retry", "Queue a failed or cancelled item again.")
_act("delete", "Delete an item on its server (input and output).")


@group.command("watch")
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@_server_option
@_token_option
@pass_runtime
def watch_cmd(
    rt: Runtime, folders: tuple[Path, ...], server: str | None, token: str | None
) -> None:
    """Observe FOLDERS (or [convert] watch) for new media and queue them until stopped."""
    from homekeep.convert.watch import watch

    _, cfg = _config(rt)
    entries = [WatchEntry(path=f.resolve()) for f in folders] or list(cfg.watch)
    if not entries:
        raise UsageError("nothing to watch: give FOLDERS, or list them in [convert] watch")
    stop = _stop_on_signals()
    with _outbox(rt, server, token) as box:
        click.echo(
            f"watching {', '.join(str(e.path) for e in entries)} as {box.client_id} (Ctrl-C stops)"
        )
        watch(
            box,
            entries,
            {str(k): v for k, v in cfg.conversions.items()},
            fetch_dir=cfg.fetch_dir,
            poll_seconds=cfg.poll_seconds,
            stop=stop,
            report=lambda line: click.echo(line, err=True),
        )
