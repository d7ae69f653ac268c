"""What the server holds and what happened to it: `sync status` and `sync log`."""

from __future__ import annotations

from typing import Any

from homekeep.core.errors import NotFound
from homekeep.sync.store import ServerStore


def status(store: ServerStore) -> dict[str, Any]:
    """Per-client counts and the store's totals."""
    clients = [
        {
            "name": row["name"],
            "files": row["files"] or 0,
            "folders": row["folders"] or 0,
            "links": row["links"] or 0,
            "bytes": row["bytes"] or 0,
            "last_seen_at": row["last_seen_at"],
        }
        for row in store.db.query(
            "SELECT c.name, c.last_seen_at,"
            " SUM(e.kind = 'file') AS files, SUM(e.kind = 'dir') AS folders,"
            " SUM(e.kind = 'link') AS links, SUM(e.size) AS bytes"
            " FROM clients c LEFT JOIN entries e ON e.client = c.name"
            " GROUP BY c.name ORDER BY c.name"
        )
    ]
    totals = store.db.query_one(
        "SELECT (SELECT COUNT(DISTINCT hash) FROM entries WHERE kind = 'file') AS contents,"
        " (SELECT COUNT(DISTINCT hash) FROM chunks) AS chunks,"
        " (SELECT COUNT(*) FROM staged) AS staged,"
        " (SELECT COALESCE(SUM(data_bytes), 0) FROM events) AS received"
    )
    assert totals is not None
    return {
        "root": str(store.root),
        "clients": clients,
        "unique_contents": totals["contents"],
        "unique_chunks": totals["chunks"],
        "staged_chunks": totals["staged"],
        "data_bytes_received": totals["received"],
    }


def history(
    store: ServerStore, *, client: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest events, newest first."""
    if client is not None and not store.db.query_one(
        "SELECT 1 FROM clients WHERE name = ?", (client,)
    ):
        raise NotFound(f"no client named {client!r} on this server; see 'homekeep sync status'")
    rows = store.db.query(
        "SELECT * FROM events WHERE (? IS NULL OR client = ?) ORDER BY id DESC LIMIT ?",
        (client, client, limit),
    )
    return [dict(row) for row in rows]
