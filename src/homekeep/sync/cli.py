"""`homekeep sync ...`: the server, the watching client, one-shot push, status and history."""

from __future__ import annotations

import json
import logging
import signal
import ssl
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from homekeep.core.errors import AuthError, UsageError
from homekeep.core.output import console, human_size, new_table
from homekeep.core.runtime import Runtime, pass_runtime, tls_options
from homekeep.sync.client.session import ClientSession, client_options
from homekeep.sync.foldercli import COMMANDS, print_pass, run_pass, target_dir

log = logging.getLogger("homekeep.sync")


@click.group()
def group() -> None:
    """Live folder sync: a client pushes every change to a server, deduplicated."""


group.name = "sync"


def _cert_fingerprint(cert: Path) -> str:
    from homekeep.sync.client.transport import fingerprint_of

    pem = cert.read_text(encoding="ascii", errors="replace")
    start = pem.find("-----BEGIN CERTIFICATE-----")
    end = pem.find("-----END CERTIFICATE-----")
    if start < 0 or end < 0:
        raise UsageError(f"{cert} holds no PEM certificate")
    return fingerprint_of(ssl.PEM_cert_to_DER_cert(pem[start : end + 25]))


@group.command("server")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any."
)
@tls_options
@click.option("--adopt", is_flag=True, help="Index a non-empty folder's files for dedup.")
@click.option(
    "--data-port",
    type=click.IntRange(-1, 65535),
    help="Port for streaming big files outside HTTP (default: --port + 1, any when --port "
    "is 0; -1: none, everything over HTTP).",
)
@pass_runtime
def server(
    rt: Runtime,
    folder: Path,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    adopt: bool,
    data_port: int | None,
) -> None:
    """Receive synced folders into FOLDER (each client under FOLDER/<name>).

    Clients authenticate with tokens from this data directory: 'homekeep token create
    NAME --scope sync' makes one for the client NAME; add '--client OTHER' for others.
    """
    from homekeep.core.hosts import trusted_names
    from homekeep.core.server import bind, check_tls, serve
    from homekeep.sync.api import standalone_app
    from homekeep.sync.server.dataport import DataPort
    from homekeep.sync.service import open_service

    svc = open_service(rt.area("sync"))
    cfg = svc.config
    check_tls(tls_cert, tls_key)
    store = svc.open_server(folder, adopt=adopt)
    tokens = rt.tokens()
    if not any(t.allows("sync") and t.revoked_at is None for t in tokens.list()):
        click.echo(
            "warning: no token can write here yet; create one for each client with "
            "'homekeep token create CLIENT --scope sync'",
            err=True,
        )
    chosen = data_port is not None
    if data_port is None:
        data_port = port + 1 if 0 < port < 65535 else 0
    if data_port and data_port == port:
        raise UsageError(f"--data-port {data_port} is the HTTP port; give another, or -1 for none")
    port_for_data: DataPort | None = None
    if data_port >= 0:
        tls = None
        if tls_cert is not None and tls_key is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(tls_cert, tls_key)
        try:
            listener = bind(host, data_port)
        except UsageError as exc:
            if chosen or not data_port:
                raise UsageError(
                    f"data port: {exc.message}; pick one with --data-port N, or -1 for none"
                ) from exc
            # the default (--port + 1) is taken: any free port will do, clients ask hello
            click.echo(f"data port {data_port} is in use; taking a free one", err=True)
            listener = bind(host, 0)
        port_for_data = DataPort(store, tokens, listener, tls)
    web = rt.settings.server
    app = standalone_app(
        store,
        tokens,
        max_request=cfg.max_request_bytes,
        data_port=port_for_data.port if port_for_data else None,
        trusted_hosts=trusted_names(host, "", web.trusted_hosts),
        shared_rescan=cfg.shared_rescan_seconds,
        keep_versions_days=cfg.keep_versions_days,
    )
    if tls_cert is not None:
        click.echo(f"certificate SHA-256 fingerprint: {_cert_fingerprint(tls_cert)}")

    def ready(url: str) -> None:
        click.echo(f"homekeep sync server receiving into {store.root} at {url} (Ctrl-C stops)")
        if port_for_data is not None:
            click.echo(f"big files stream on data port {port_for_data.port}")

    if port_for_data is not None:
        port_for_data.start()
    try:
        serve(
            app,
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            on_ready=ready,
            name="sync server",
            limits=web.limits(),
        )
    finally:
        if port_for_data is not None:
            port_for_data.stop()
        store.close()
        tokens.close()


@group.command("push")
@client_options
@click.option(
    "--wait",
    type=click.FloatRange(0),
    default=0,
    help="Keep retrying this many seconds while the server is unreachable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_runtime
def push(rt: Runtime, /, folder: Path, wait: float, as_json: bool, **opts: Any) -> None:
    """Make the server's copy equal to FOLDER now, print a summary, and exit."""
    from homekeep.sync.client.transport import Offline

    client = ClientSession(rt, folder, opts)
    if client.shared is not None:
        from homekeep.sync.client.twoway import Mode

        try:
            done = run_pass(
                client,
                Mode.SEND_RECEIVE,
                allow_mass_delete=opts["allow_mass_delete"],
                wait=wait,
            )
        finally:
            client.close()
        print_pass(done, as_json)
        return
    try:
        deadline = time.monotonic() + wait
        delay = 0.5
        while True:
            try:
                summary = client.syncer.full()
                break
            except Offline as exc:
                if time.monotonic() + delay > deadline:
                    raise Offline(f"{exc.message}; is the server running?") from exc
                time.sleep(delay)
                delay = min(delay * 2, client.cfg.backoff_max_seconds)
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        click.echo(
            f"scanned {summary.files_scanned} files ({human_size(summary.bytes_scanned)}), "
            f"sent {summary.files_sent} files, {human_size(summary.data_bytes_sent)} of data "
            f"({human_size(summary.wire_bytes)} on the wire) in {summary.seconds:.2f} s"
        )
        click.echo(
            f"created {summary.created}, modified {summary.modified}, renamed "
            f"{summary.renamed}, deleted {summary.deleted}, folders {summary.folders}, "
            f"links {summary.links}, deduplicated {summary.deduplicated}"
        )
    if summary.skipped:
        click.echo(
            f"warning: {summary.skipped} files kept changing while read and were not sent; "
            "run push again once they are written",
            err=True,
        )
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    if summary.errors:
        raise SystemExit(1)


@group.command("watch")
@client_options
@click.option(
    "--mode",
    type=click.Choice(["send-receive", "send-only", "receive-only"]),
    default="send-receive",
    show_default=True,
    help="With --folder: which way changes travel for this client.",
)
@pass_runtime
def watch_cmd(rt: Runtime, /, folder: Path, mode: str, **opts: Any) -> None:
    """Sync FOLDER fully, then keep the server's copy equal to it until stopped
    (with --folder, both ways: the shared folder's changes come back here too)."""
    from homekeep.sync.client.summary import Summary
    from homekeep.sync.client.watch import watch

    client = ClientSession(rt, folder, opts)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if client.shared is not None:
        try:
            _watch_shared(client, mode, opts["allow_mass_delete"], stop)
        finally:
            client.close()
        return
    first = [True]

    def report(summary: Summary) -> None:
        if first[0]:
            first[0] = False
            click.echo(
                f"in sync: {summary.files_scanned} files ({human_size(summary.bytes_scanned)}), "
                f"sent {summary.files_sent} ({human_size(summary.data_bytes_sent)} of data); "
                "watching for changes (Ctrl-C stops)",
                err=True,
            )
        for error in summary.errors:
            log.error("%s", error)

    click.echo(f"watching {client.root} -> {client.conn.server} as {client.conn.client}", err=True)
    try:
        watch(
            client.syncer,
            client.root,
            settle=client.cfg.settle_seconds,
            backoff_max=client.cfg.backoff_max_seconds,
            rescan_interval=client.cfg.rescan_interval_seconds,
            on_summary=report,
            stop=stop,
        )
    except AuthError:
        raise
    finally:
        client.close()


def _watch_shared(client: ClientSession, mode: str, allow: bool, stop: threading.Event) -> None:
    from homekeep.sync.client.sharedwatch import watch_shared
    from homekeep.sync.client.twoway import Mode, Pass, TwoWay

    two = TwoWay(
        client.syncer,
        me=client.me,
        mode=Mode(mode),
        max_delete_percent=client.cfg.max_delete_percent,
    )
    first = [True]

    def report(done: Pass) -> None:
        if first[0]:
            first[0] = False
            click.echo(
                f"in sync with shared folder {client.shared}; watching (Ctrl-C stops)", err=True
            )
        r = done.received
        if r.files or r.deleted or r.conflicts:
            log.info("received %d files, deleted %d, conflicts %d", r.files, r.deleted, r.conflicts)
        for error in done.sent.errors if done.sent is not None else []:
            log.error("%s", error)

    click.echo(
        f"watching {client.root} <-> {client.conn.server} shared folder {client.shared} "
        f"as {client.me} ({mode})",
        err=True,
    )
    watch_shared(
        two,
        settle=client.cfg.settle_seconds,
        backoff_max=client.cfg.backoff_max_seconds,
        rescan_interval=client.cfg.rescan_interval_seconds,
        on_pass=report,
        stop=stop,
        allow_mass_delete=allow,
    )


@group.command("status")
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def status(rt: Runtime, folder: Path | None, as_json: bool) -> None:
    """Show a server folder's clients and dedup totals (default folder: [sync] root)."""
    from homekeep.sync.server.history import status as status_of
    from homekeep.sync.server.target import Target

    store = Target(target_dir(rt, folder), maintain=False)
    try:
        info = status_of(store)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(info.as_dict(), indent=2))
        return
    table = new_table("client", "files", "folders", "links", "size", "last change (UTC)")
    shared = set(info.shared)
    for c in info.clients:
        table.add_row(
            f"{c.name} (shared)" if c.name in shared else c.name,
            str(c.files),
            str(c.folders),
            str(c.links),
            human_size(c.bytes),
            (c.last_seen_at or "-")[:19].replace("T", " "),
        )
    out = console()
    out.print(table)
    received = human_size(info.data_bytes_received)
    out.print(
        f"{info.unique_contents} unique files, {info.unique_chunks} unique chunks, "
        f"{info.staged_chunks} staged; {received} of data received"
    )


@group.command("log")
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--client", help="Only this client's changes.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def history(
    rt: Runtime, folder: Path | None, client: str | None, limit: int, as_json: bool
) -> None:
    """Show the server's history: what changed, when, from which client, bytes received."""
    from homekeep.sync.server.history import history as history_of
    from homekeep.sync.server.target import Target

    store = Target(target_dir(rt, folder), maintain=False)
    try:
        events = history_of(store, client=client, limit=limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(events, indent=2))
        return
    table = new_table("when (UTC)", "client", "change", "path", "size", "data received", "how")
    for e in events:
        path = f"{e['path']} -> {e['dest']}" if e["dest"] else e["path"]
        who = e["client"] if not e.get("device") else f"{e['client']} ({e['device']})"
        table.add_row(
            e["at"][:19].replace("T", " "),
            who,
            e["action"],
            path,
            human_size(e["size"]),
            human_size(e["data_bytes"]),
            e["via"] or "",
        )
    console().print(table)


for _command in COMMANDS:
    group.add_command(_command)
