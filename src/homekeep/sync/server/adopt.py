"""`sync server --adopt`: index the files already in a target folder so they count for dedup."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from homekeep.core.db import utcnow
from homekeep.core.errors import InvalidInput
from homekeep.sync.server.target import Target
from homekeep.sync.store import STATE
from homekeep.sync.wire.chunking import FileChanged, digest_file
from homekeep.sync.wire.protocol import check_client

log = logging.getLogger(__name__)


def adopt(target: Target) -> int:
    """Index files already in the folder (client = first-level folder) for dedup."""
    count = 0
    for client_dir in sorted(target.root.iterdir()):
        if client_dir.name == STATE or not client_dir.is_dir() or client_dir.is_symlink():
            continue
        try:
            client = check_client(client_dir.name)
        except InvalidInput:
            log.warning("not adopting %s: not a valid client name", client_dir)
            continue
        for path in _walk(client_dir):
            rel = path.relative_to(client_dir).as_posix()
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                _adopt_row(target, client, rel, "dir", st, None, None, [])
            elif stat.S_ISLNK(st.st_mode):
                _adopt_row(target, client, rel, "link", st, None, str(path.readlink()), [])
            elif stat.S_ISREG(st.st_mode):
                try:
                    digest = digest_file(
                        path,
                        expect_size=st.st_size,
                        expect_mtime_ns=st.st_mtime_ns,
                        spill_dir=target.tmp,
                    )
                except (FileChanged, OSError):
                    continue
                placed = digest.chunks.offsets()
                _adopt_row(target, client, rel, "file", st, digest.file_hash, None, placed)
                count += 1
    return count


def _adopt_row(
    target: Target,
    client: str,
    rel: str,
    kind: str,
    st: os.stat_result,
    file_hash: str | None,
    link_target: str | None,
    placed: Iterable[tuple[str, int, int]],
) -> None:
    with target.db.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO clients (name, generation, created_at) VALUES (?, 1, ?)",
            (client, utcnow()),
        )
        conn.execute("DELETE FROM entries WHERE client = ? AND path = ?", (client, rel))
        cur = conn.execute(
            "INSERT INTO entries (client, path, kind, size, mtime_ns, mode, hash, target)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                client,
                rel,
                kind,
                st.st_size if kind == "file" else 0,
                st.st_mtime_ns if kind != "dir" else 0,
                stat.S_IMODE(st.st_mode) if kind != "link" else 0,
                file_hash,
                link_target,
            ),
        )
        entry_id = cur.lastrowid
        conn.executemany(
            "INSERT INTO chunks (hash, entry_id, offset, length) VALUES (?, ?, ?, ?)",
            ((h, entry_id, o, n) for h, o, n in placed),
        )


def _walk(top: Path) -> Iterator[Path]:
    """Yield every path under ``top`` (folders before their contents), never following links."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            yield path
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
