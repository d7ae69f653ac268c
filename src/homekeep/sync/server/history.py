"""What the server holds and what happened to it: `sync status` and `sync log`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from homekeep.core.errors import NotFound
from homekeep.sync.server.target import Target


@dataclass(frozen=True)
class ClientStatus:
    """What one client has on the server."""

    name: str
    files: int
    folders: int
    links: int
    bytes: int
    last_seen_at: str | None


@dataclass(frozen=True)
class Status:
    """Per-client counts and the target folder's totals."""

    root: str
    clients: list[ClientStatus]
    shared: list[str]  # the clients that are shared folders
    unique_contents: int
    unique_chunks: int
    staged_chunks: int
    data_bytes_received: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(target: Target) -> Status:
    """Per-client counts and the store's totals."""
    clients = [
        ClientStatus(
            row["name"],
            row["files"] or 0,
            row["folders"] or 0,
            row["links"] or 0,
            row["bytes"] or 0,
            row["last_seen_at"],
        )
        for row in target.index.client_counts()
    ]
    totals = target.index.totals()
    return Status(
        str(target.root),
        clients,
        target.index.shared(),
        totals["contents"],
        totals["chunks"],
        totals["staged"],
        totals["received"],
    )


def history(target: Target, *, client: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest events, newest first."""
    if client is not None and client not in target.index.clients():
        raise NotFound(f"no client named {client!r} on this server; see 'homekeep sync status'")
    return [dict(row) for row in target.index.events(client, limit)]
