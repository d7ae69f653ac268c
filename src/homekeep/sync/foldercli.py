"""`homekeep sync share / pull / conflicts / versions`, and shared-folder passes for push.

Kept apart from cli.py (which adds these commands to the `sync` group) so each stays
one screenful of commands; heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from homekeep.core.errors import NotFound, UsageError
from homekeep.core.output import console, human_size, new_table
from homekeep.core.runtime import Runtime, pass_runtime
from homekeep.sync.client.session import ClientSession, client_options
from homekeep.sync.config import SyncConfig
from homekeep.sync.wire.protocol import check_client

if TYPE_CHECKING:
    from homekeep.sync.client.twoway import Mode, Pass


def target_dir(rt: Runtime, folder: Path | None) -> Path:
    """The server's target folder given, or [sync] root; it must be one already."""
    from homekeep.sync.store import is_target

    cfg = rt.area("sync").config(SyncConfig)
    root = folder or cfg.root
    if root is None:
        raise UsageError("give the server's FOLDER, or set [sync] root")
    if not is_target(root):
        raise NotFound(f"{root} is not a sync target; start 'homekeep sync server {root}' first")
    return root


def run_pass(client: ClientSession, mode: Mode, *, allow_mass_delete: bool, wait: float) -> Pass:
    """One two-way pass with the shared folder, retrying for ``wait`` seconds while offline."""
    from homekeep.sync.client.transport import Offline
    from homekeep.sync.client.twoway import TwoWay

    two = TwoWay(
        client.syncer,
        me=client.me,
        mode=mode,
        max_delete_percent=client.cfg.max_delete_percent,
    )
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            done = two.run(allow_mass_delete=allow_mass_delete)
            break
        except Offline as exc:
            if time.monotonic() + delay > deadline:
                raise Offline(f"{exc.message}; is the server running?") from exc
            time.sleep(delay)
            delay = min(delay * 2, client.cfg.backoff_max_seconds)
    _prune(client)
    return done


def _prune(client: ClientSession) -> None:
    from homekeep.sync.versions import prune

    prune(client.root, client.cfg.keep_versions_days)


def print_pass(done: Pass, as_json: bool) -> None:
    """A pass's summary: JSON, or two lines."""
    sent = done.sent.as_dict() if done.sent is not None else None
    if as_json:
        click.echo(json.dumps({"received": asdict(done.received), "sent": sent}, indent=2))
        return
    r = done.received
    click.echo(
        f"received {r.files} files ({human_size(r.bytes_fetched)} fetched, "
        f"{human_size(r.bytes_reused)} reused from local files), deleted {r.deleted}, "
        f"conflicts {r.conflicts}"
    )
    if done.sent is not None:
        s = done.sent
        click.echo(
            f"sent {s.files_sent} files ({human_size(s.data_bytes_sent)} of data), "
            f"deleted {s.deleted}, renamed {s.renamed}"
        )
    if r.skipped:
        click.echo(
            f"warning: {len(r.skipped)} paths changed during the pass; the next pass takes them",
            err=True,
        )


@click.command("share")
@click.argument("name")
@click.argument("server_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@pass_runtime
def share(rt: Runtime, name: str, server_dir: Path | None) -> None:
    """Make NAME a shared folder of the server's SERVER_DIR (default: [sync] root).

    Clients then sync it both ways: 'homekeep sync watch DIR --folder NAME'. Its files
    live in SERVER_DIR/NAME, where edits made on the server are synced too.
    """
    from homekeep.sync.server.sharing import Sharing
    from homekeep.sync.server.target import Target
    from homekeep.sync.service import open_service
    from homekeep.sync.store import is_target

    check_client(name)
    root = server_dir or rt.area("sync").config(SyncConfig).root
    if root is None:
        raise UsageError("give the server's SERVER_DIR, or set [sync] root")
    if is_target(root):
        target = Target(root.expanduser().absolute(), maintain=False)
    else:
        target = open_service(rt.area("sync")).open_server(root)
    try:
        folder = Sharing(target).share(name)
    finally:
        target.close()
    click.echo(f"shared folder {name} in {folder}")
    click.echo(f"clients join with: homekeep sync watch DIR --folder {name} --server URL")


@click.command("pull")
@client_options
@click.option("--wait", type=click.FloatRange(0), default=0, help="Retry this long while offline.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_runtime
def pull(rt: Runtime, /, folder: Path, wait: float, as_json: bool, **opts: Any) -> None:
    """Take the shared folder's changes into FOLDER now (sending nothing), and exit."""
    from homekeep.sync.client.twoway import Mode

    client = ClientSession(rt, folder, opts)
    try:
        if client.shared is None:
            raise UsageError("pull needs --folder NAME: only shared folders are received")
        done = run_pass(
            client, Mode.RECEIVE_ONLY, allow_mass_delete=opts["allow_mass_delete"], wait=wait
        )
    finally:
        client.close()
    print_pass(done, as_json)


@click.command("conflicts")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--keep", metavar="COPY", help="Make this conflict copy the file's version.")
@click.option("--drop", metavar="COPY", help="Remove this conflict copy (kept in versions).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def conflicts(folder: Path, keep: str | None, drop: str | None, as_json: bool) -> None:
    """List the conflict copies in FOLDER (a client's, or a shared folder on the server),
    or resolve one: --keep COPY makes it the file, --drop COPY removes it."""
    from homekeep.sync.conflicts import listing, resolve

    if keep or drop:
        path = resolve(folder, keep=keep, drop=drop)
        click.echo(f"resolved {path}; the replaced version is in .homekeep-versions/")
        return
    found = listing(folder)
    if as_json:
        click.echo(json.dumps([{"path": c.path, "copy": c.copy} for c in found], indent=2))
        return
    table = new_table("file", "conflict copy")
    for c in found:
        table.add_row(c.path, c.copy)
    console().print(table)


@click.command("versions")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--path", "under", default="", help="Only versions of this file or folder.")
@click.option("--restore", metavar="VERSION", help="Put this kept version back in place.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def versions(folder: Path, under: str, restore: str | None, as_json: bool) -> None:
    """List what deletes and overwrites replaced in FOLDER, or --restore one of them."""
    from homekeep.sync import versions as kept

    if restore:
        path = kept.restore(folder, restore)
        click.echo(f"restored {path}")
        return
    found = kept.listing(folder, under)
    if as_json:
        rows = [
            {
                "path": k.path,
                "replaced_at": k.replaced_at.isoformat(),
                "version": k.version,
                "size": k.size,
            }
            for k in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = new_table("file", "replaced (UTC)", "size", "version")
    for k in found:
        table.add_row(
            k.path, k.replaced_at.strftime("%Y-%m-%d %H:%M:%S"), human_size(k.size), k.version
        )
    console().print(table)


COMMANDS = (share, pull, conflicts, versions)
