"""Make the server's copy equal to the local folder: plan the changes, then send them.

One pass: fetch the server's manifest when it changed (reconcile), scan the scope,
detect renames by inode, then send folders and links, files in batches (chunk lists
first, then only the chunks the server lacks), and deletions last. What to send is
planned by ``plan``; files are read by ``readahead`` and sent by ``rounds``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from homekeep.core.progress import progress
from homekeep.sync.client import plan
from homekeep.sync.client.excludes import Excludes
from homekeep.sync.client.index import ClientIndex, Remote
from homekeep.sync.client.readahead import Read, read_ahead
from homekeep.sync.client.rounds import Bars, Rounds
from homekeep.sync.client.scan import Local, scan
from homekeep.sync.client.summary import Scope, Summary
from homekeep.sync.client.transport import Connection
from homekeep.sync.client.uploads import PACK_BYTES, Outgoing, Uploader
from homekeep.sync.wire.chunking import Digest
from homekeep.sync.wire.chunklist import Chunks
from homekeep.sync.wire.compression import BASE_MAX

log = logging.getLogger(__name__)

BATCH_FILES = 1000
BATCH_CHUNKS = 200_000
BATCH_BYTES = 32 << 20  # commit often, so an interrupted first sync keeps most of its work
BATCH_OPS = 2000
IN_FLIGHT = 2  # batches on their way at once
BASE_MIN = 1 << 20  # from this size, a changed file's chunk list travels as a delta


class Syncer:
    """Pushes one local folder to one client folder on a server."""

    def __init__(
        self,
        root: Path,
        conn: Connection,
        index: ClientIndex,
        excludes: Excludes,
        *,
        show_progress: bool | None = None,
    ) -> None:
        self.root = root
        self.conn = conn
        self.index = index
        self.excludes = excludes
        self.show_progress = show_progress
        self.uploader = Uploader(root, conn, index)
        self.rounds = Rounds(conn, index, self.uploader, lambda line: self.on_change(line))
        self._hello_done = False
        # the pass's own thread only: filled as files are read, written before each batch
        self._read_cache: list[tuple[str, int, int, int, str, Chunks]] = []
        self.on_change: Callable[[str], None] = lambda line: log.info("%s", line)
        # folder mtimes (and the folder's own) are sent only one way: in a shared folder
        # every side moves them as it writes, and sending them would echo between clients
        self.folder_times = True

    # -- entry points ------------------------------------------------------------------

    def full(self) -> Summary:
        """Sync everything."""
        return self.run([Scope("")], first=True)

    def paths(self, scopes: Iterable[Scope]) -> Summary:
        """Sync only the given paths (from watch events); files in scope are re-read."""
        return self.run(list(scopes), first=False)

    def run(self, scopes: list[Scope], *, first: bool) -> Summary:
        start = time.monotonic()
        counters = self.conn.counters
        sent0, recv0, data0, req0 = (
            counters.sent,
            counters.received,
            counters.data,
            counters.requests,
        )
        summary = Summary()
        if not self._hello_done:
            self._hello()
        self._reconcile()
        local: dict[str, Local] = {}
        for sc in scopes:
            if sc.deep:
                local.update(scan(self.root, self.excludes, [sc.path]))
            else:
                local.update(self._shallow(sc.path))
        forced = {sc.path for sc in scopes if sc.path and not first}
        if not first:
            # a change inside a folder moves the folder's mtime: look at the parents too
            for parent in {plan.parent(sc.path) for sc in scopes if sc.path} - {""}:
                if not any(s.covers(parent) for s in scopes):
                    scopes.append(Scope(parent, deep=False))
                    local.update(self._shallow(parent))
        summary.files_scanned = sum(1 for e in local.values() if e.kind == "file")
        summary.bytes_scanned = sum(e.size for e in local.values() if e.kind == "file")
        remote = self._remote_in(scopes, local)
        if self._send_renames(local, remote, summary):
            remote = self._remote_in(scopes, local)
        self._send_tree(local, remote, summary)
        files, moved = plan.file_candidates(local, remote, forced)
        self._put_remote(moved)
        self._send_files(files, local, remote, summary, show=first)
        self._flush_cache()
        self._send_deletes(local, remote, summary)
        self._send_top()
        if first:
            self.index.prune_kept()
        summary.seconds = round(time.monotonic() - start, 3)
        summary.data_bytes_sent = counters.data - data0
        summary.requests = counters.requests - req0
        summary.wire_bytes = (counters.sent - sent0) + (counters.received - recv0)
        return summary

    def _hello(self) -> None:
        """Learn the server's limits and features, once; a new server id resets the state."""
        limits = self.conn.hello()
        self.rounds.limits = limits
        port = limits.get("data_port")
        self.conn.data_port = port if isinstance(port, int) and 0 < port < 65536 else None
        max_pack = int(limits.get("max_pack_bytes", PACK_BYTES))
        self.uploader.pack_bytes = max(64 << 10, min(PACK_BYTES, max_pack // 2))
        encodings = limits.get("encodings")
        self.conn.zstd_bodies = isinstance(encodings, list) and "zstd" in encodings
        self.uploader.patching = limits.get("patch") is True
        server_id = str(limits.get("server_id", ""))
        if server_id != self.index.get_meta("server_id"):
            self.index.set_meta("generation", "-1")  # another server: take its manifest
            self.index.set_meta("server_id", server_id)
        self._hello_done = True

    def _shallow(self, rel: str) -> dict[str, Local]:
        found = scan(self.root, self.excludes, [rel]) if rel else {}
        return {k: v for k, v in found.items() if k == rel}

    # -- state -------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Take the server's manifest when it changed since we last saw it."""
        generation = int(self.index.get_meta("generation", "-1"))
        answer = self.conn.manifest(generation)
        if answer.get("unchanged"):
            return
        self.index.replace_remote(answer["entries"])
        top = answer.get("top")
        self.index.set_meta("top", f"{top[0]}:{top[1]}" if isinstance(top, list) else "")
        self.index.set_meta("generation", str(answer["generation"]))
        if answer["generation"] == 0:
            self.rounds.ops([])  # a new client: its folder appears on the server even if empty

    def _remote_in(self, scopes: list[Scope], local: dict[str, Local]) -> dict[str, Remote]:
        """The acknowledged entries in scope; ones excluded since are left alone."""
        remote = self.index.remote()
        if not any(sc.path == "" and sc.deep for sc in scopes):
            remote = {p: e for p, e in remote.items() if any(sc.covers(p) for sc in scopes)}
        excluded = [
            p
            for p, e in remote.items()
            if p not in local and self.excludes.match(p, is_dir=e.kind == "dir")
        ]
        for path in excluded:
            del remote[path]
        return remote

    def _put_remote(self, moved: list[tuple[str, Remote]]) -> None:
        """Record entries whose only change is their inode."""
        for path, acked in moved:
            self.index.put_remote(path, acked)

    # -- renames -----------------------------------------------------------------------

    def _send_renames(
        self, local: dict[str, Local], remote: dict[str, Remote], summary: Summary
    ) -> bool:
        """Send renames found by inode; return whether there were any."""
        moves = plan.renames(local, remote)
        for start in range(0, len(moves), BATCH_OPS):
            batch = moves[start : start + BATCH_OPS]
            results = self.rounds.ops([{"op": "rename", "path": o, "dest": n} for o, n in batch])
            for (old, new), result in zip(batch, results, strict=True):
                if result["status"] == "done":
                    self.index.rename_remote(old, new)
                    summary.renamed += 1
                    self.on_change(f"renamed {old} -> {new}")
        return bool(moves)

    # -- the folder itself -------------------------------------------------------------

    def _send_top(self) -> None:
        """Send the folder's own mode and mtime when they differ from what was sent.

        Last in a pass: adding or removing an entry right in the folder moved its mtime.
        """
        if not self.folder_times:
            return
        try:
            st = self.root.stat()
        except OSError:
            return
        now = f"{st.st_mode & 0o7777}:{st.st_mtime_ns}"
        if now == self.index.get_meta("top", ""):
            return
        self.rounds.ops([{"op": "top", "mode": st.st_mode & 0o7777, "mtime_ns": st.st_mtime_ns}])
        self.index.set_meta("top", now)
        self.on_change("folder times .")

    # -- folders and links -------------------------------------------------------------

    def _send_tree(
        self, local: dict[str, Local], remote: dict[str, Remote], summary: Summary
    ) -> None:
        ops, moved = plan.tree(local, remote, folder_times=self.folder_times)
        self._put_remote(moved)
        for start in range(0, len(ops), BATCH_OPS):
            batch = ops[start : start + BATCH_OPS]
            self.rounds.ops([t.op for t in batch])
            with self.index.db.transaction():
                for t in batch:
                    if t.op["op"] == "link":
                        self.index.drop_remote(t.path)
                    self.index.put_remote(t.path, t.acked)
                    if t.op["op"] == "mkdir" and t.times_only:
                        # thousands in an upgrade, and routine: one line each only with -vv
                        log.debug("folder times %s", t.path)
                    elif t.op["op"] == "mkdir":
                        summary.folders += 1
                        self.on_change(f"folder {t.path}")
                    else:
                        summary.links += 1
                        self.on_change(f"link {t.path} -> {t.acked.target}")

    # -- deletions ---------------------------------------------------------------------

    def _send_deletes(
        self, local: dict[str, Local], remote: dict[str, Remote], summary: Summary
    ) -> None:
        gone = plan.deletes(local, remote, self.index.has_remote)
        for start in range(0, len(gone), BATCH_OPS):
            batch = gone[start : start + BATCH_OPS]
            self.rounds.ops([{"op": "delete", "path": p} for p in batch])
            with self.index.db.transaction():
                for path in batch:
                    self.index.drop_remote(path)
                    summary.deleted += 1
                    self.on_change(f"deleted {path}")

    # -- files -------------------------------------------------------------------------

    def _digest(self, path: str, entry: Local, summary: Summary, read: Read) -> Digest | None:
        """Take a file's digest as read ahead by ``_read``, recording what it cost."""
        digest, entry, error = read
        if error == "cached":
            return digest
        with self.rounds.state:  # batches in flight count into the same summary
            if error == "unstable":
                log.warning("%s keeps changing; it will be sent once it is stable", path)
                summary.skipped += 1
            elif error:
                summary.errors.append(f"cannot read {path}: {error}")
            if digest is None:
                return None
            summary.bytes_read += digest.size
        self._read_cache.append(
            (path, entry.size, entry.mtime_ns, entry.inode, digest.file_hash, digest.chunks)
        )
        return digest

    def _send_files(
        self,
        paths: list[str],
        local: dict[str, Local],
        remote: dict[str, Remote],
        summary: Summary,
        *,
        show: bool,
    ) -> None:
        total = sum(local[p].size for p in paths)
        enabled = self.show_progress if self.show_progress is not None else None
        with (
            progress(enabled=enabled if show and paths else False) as display,
            ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="batch") as senders,
        ):
            bars = Bars(display, len(paths), total)
            flying: deque[Future[None]] = deque()

            def send(batch: list[Outgoing]) -> None:
                # a batch goes out while the next is read and the one before is applied:
                # the server works on one while the client packs the other
                self._flush_cache()
                while len(flying) >= IN_FLIGHT:
                    flying.popleft().result()
                flying.append(senders.submit(self.rounds.send_batch, batch, summary, bars))

            batch: list[Outgoing] = []
            chunk_count = 0
            batch_bytes = 0
            bases: dict[str, tuple[str, Chunks]] = {}
            for path, read in zip(
                paths, read_ahead(self.root, self.index, paths, local), strict=True
            ):
                entry = local[path]
                have = remote.get(path)
                if have is not None and have.kind == "file" and have.size > BASE_MIN:
                    prev = self.index.previous(path)
                    if prev is not None and prev[0] == have.hash:
                        bases[path] = prev
                digest = self._digest(path, entry, summary, read)
                if digest is None:
                    bars.done(entry.size)
                    continue
                if read[1] != entry:
                    # changed since the scan, so still being written: sent once it settles
                    # (its watch event comes), never as a snapshot of a half-written file
                    with self.rounds.state:
                        summary.skipped += 1
                    bars.done(entry.size)
                    continue
                if (
                    have is not None
                    and have.kind == "file"
                    and have.hash == digest.file_hash
                    and (have.mode, have.mtime_ns) == (entry.mode, entry.mtime_ns)
                ):
                    self.index.put_remote(path, plan.remote_of(entry, digest.file_hash))
                    bars.done(entry.size)
                    continue
                action = "modified" if have is not None and have.kind == "file" else "created"
                item = Outgoing(path, entry, digest, action, bases.pop(path, None))
                if have is not None and have.kind == "file" and have.hash:
                    item.held = have.hash == digest.file_hash  # only its metadata changed
                    if not item.held and 0 < have.size < BASE_MAX and self.uploader.patching:
                        item.prior = have.hash
                batch.append(item)
                chunk_count += len(digest.chunks)
                batch_bytes += entry.size
                if (
                    len(batch) >= BATCH_FILES
                    or chunk_count >= BATCH_CHUNKS
                    or batch_bytes >= BATCH_BYTES
                ):
                    send(batch)
                    batch, chunk_count, batch_bytes = [], 0, 0
            if batch:
                send(batch)
            while flying:
                flying.popleft().result()

    def _flush_cache(self) -> None:
        """Write the chunk lists read since the last batch, in one transaction."""
        if self._read_cache:
            with self.index.db.transaction():
                for row in self._read_cache:
                    self.index.remember(*row)
            self._read_cache.clear()


def client_index_path(data_dir: Path, root: Path, name: str) -> Path:
    """Where the index of one (folder, client name) lives in the data directory.

    Not keyed by the server's URL, so reaching the same server by another address keeps
    the index; the server's id (from hello) tells when it is really another server.
    """
    from blake3 import blake3

    key = blake3(f"{root}\n{name}".encode()).hexdigest()[:20]
    return data_dir / "clients" / f"{key}.sqlite"
