"""What a client command opens from its options: the connection, the index, the engine."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import click

from homekeep.core.errors import UsageError
from homekeep.core.runtime import Runtime
from homekeep.sync.config import SyncConfig
from homekeep.sync.wire.protocol import check_client


def client_options(fn: Any) -> Any:
    """The FOLDER argument and the options every client command takes."""
    options = [
        click.option("--server", "server_url", help="Server URL (default: [sync] server)."),
        click.option(
            "--token", help="Token with scope sync (default: [sync] token, HOMEKEEP_SYNC_TOKEN)."
        ),
        click.option(
            "--name",
            help="This client's name: its own folder on the server, or in a shared folder "
            "the name its conflict copies carry (default: the hostname).",
        ),
        click.option(
            "--folder",
            "shared",
            metavar="NAME",
            help="Sync both ways with the server's shared folder NAME (made by "
            "`homekeep sync share NAME` on the server) instead of pushing one way.",
        ),
        click.option(
            "--allow-mass-delete",
            is_flag=True,
            help="With --folder: go on even if a pass deletes more than [sync] "
            "max_delete_percent of the files.",
        ),
        click.option(
            "--exclude",
            "excludes",
            multiple=True,
            metavar="PATTERN",
            help="gitignore-style pattern to skip; repeatable (also read: .homekeepignore).",
        ),
        click.option(
            "--ca",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="CA certificate (PEM) that signed the server's certificate.",
        ),
        click.option("--fingerprint", help="Pin the server certificate by SHA-256 fingerprint."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))(
        fn
    )


class ClientSession:
    """The pieces a client command needs, opened from its options."""

    def __init__(self, rt: Runtime, folder: Path, opts: dict[str, Any]) -> None:
        from homekeep.sync.client.engine import Syncer, client_index_path
        from homekeep.sync.client.excludes import Excludes
        from homekeep.sync.client.index import ClientIndex
        from homekeep.sync.client.transport import Connection, tls_context

        ctx = rt.area("sync")
        self.cfg = cfg = ctx.config(SyncConfig)
        server_url = opts["server_url"] or cfg.server
        if not server_url:
            raise UsageError("no server given: pass --server URL or set [sync] server")
        if not server_url.startswith(("http://", "https://")):
            raise UsageError(f"--server {server_url!r} must start with http:// or https://")
        token = opts["token"] or cfg.token.get_secret_value() or None
        self.me = check_client(opts["name"] or cfg.name or _hostname())
        self.shared: str | None = check_client(opts["shared"]) if opts.get("shared") else None
        name = self.shared or self.me
        self.root = folder.resolve()
        verify = tls_context(server_url, opts["ca"], opts["fingerprint"])
        self.conn = Connection(server_url, token, name, verify)
        if self.shared is not None:
            self.conn.device = self.me
        self.index = ClientIndex(
            client_index_path(ctx.dir, self.root, name), keep_bytes=cfg.patch_cache_bytes
        )
        excludes = Excludes.for_folder(self.root, opts["excludes"], defaults=cfg.default_excludes)
        self.syncer = Syncer(self.root, self.conn, self.index, excludes)

    def close(self) -> None:
        self.conn.close()
        self.index.close()


def _hostname() -> str:
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return name.lstrip(".-_")[:64] or "client"
