"""Make the server's copy equal to the local folder: plan the changes, then send them.

One pass: fetch the server's manifest when it changed (reconcile), scan the scope,
detect renames by inode, then send folders and links, files in batches (chunk lists
first, then only the chunks the server lacks), and deletions last.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from homekeep.core.errors import InvalidInput
from homekeep.core.progress import Display, progress
from homekeep.sync.client.excludes import Excludes
from homekeep.sync.client.index import ClientIndex, Remote
from homekeep.sync.client.scan import Local, scan
from homekeep.sync.client.transport import Connection
from homekeep.sync.client.uploads import PACK_BYTES, Outgoing, Uploader
from homekeep.sync.wire.chunking import Digest, FileChanged, chunk_ids, digest_file, read_as
from homekeep.sync.wire.compression import BASE_MAX
from homekeep.sync.wire.protocol import ChunkList, Chunks, ListFile

log = logging.getLogger(__name__)

BATCH_FILES = 1000
BATCH_CHUNKS = 200_000
BATCH_BYTES = 32 << 20  # commit often, so an interrupted first sync keeps most of its work
BATCH_OPS = 2000
IN_FLIGHT = 2  # batches on their way at once
ROUNDS = 4
MORE_ROUNDS = 1024  # rounds a huge file may take when each answer lists only some chunks
COMMIT_BYTES = 4 << 20  # chunk data per commit: an interrupted commit loses no more than this
READ_AHEAD_FILES = 2000
READ_AHEAD_BYTES = 64 << 20  # a small file read ahead keeps its content until sent
LIST_LATER = 1 << 20  # files from this size send their chunk list only when asked
BASE_MIN = 1 << 20  # from this size, a changed file's chunk list travels as a delta
KEEP_GAIN = 2 / 3  # content is kept for patching when zstd takes a third off: text, code


@dataclass
class Summary:
    """What one pass did; printed by `sync push`."""

    files_scanned: int = 0
    bytes_scanned: int = 0
    files_sent: int = 0
    bytes_read: int = 0
    data_bytes_sent: int = 0
    wire_bytes: int = 0
    requests: int = 0
    created: int = 0
    modified: int = 0
    renamed: int = 0
    deleted: int = 0
    folders: int = 0
    links: int = 0
    deduplicated: int = 0
    skipped: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def changes(self) -> int:
        return (
            self.created + self.modified + self.renamed + self.deleted + self.folders + self.links
        )


@dataclass(frozen=True)
class Scope:
    """A path to look at; ``deep`` includes everything under it."""

    path: str
    deep: bool = True

    def covers(self, rel: str) -> bool:
        if self.path == "":
            return self.deep or rel == ""
        if rel == self.path:
            return True
        return self.deep and rel.startswith(self.path + "/")


_Read = tuple[Digest | None, Local, str | None]  # digest, the file as read, what went wrong


def _ancestors(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


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
        self._hello_done = False
        self._limits: dict[str, Any] = {}
        self._state = threading.RLock()  # summary, bars and index acks, for batches in flight
        # the pass's own thread only: filled as files are read, written before each batch
        self._read_cache: list[tuple[str, int, int, int, str, Chunks]] = []
        self.on_change: Callable[[str], None] = lambda line: log.info("%s", line)

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
            self._limits = self.conn.hello()
            port = self._limits.get("data_port")
            self.conn.data_port = port if isinstance(port, int) and 0 < port < 65536 else None
            max_pack = int(self._limits.get("max_pack_bytes", PACK_BYTES))
            self.uploader.pack_bytes = max(64 << 10, min(PACK_BYTES, max_pack // 2))
            encodings = self._limits.get("encodings")
            self.conn.zstd_bodies = isinstance(encodings, list) and "zstd" in encodings
            self.uploader.patching = self._limits.get("patch") is True
            server_id = str(self._limits.get("server_id", ""))
            if server_id != self.index.get_meta("server_id"):
                self.index.set_meta("generation", "-1")  # another server: take its manifest
                self.index.set_meta("server_id", server_id)
            self._hello_done = True
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
            for parent in {_parent(sc.path) for sc in scopes if sc.path} - {""}:
                if not any(s.covers(parent) for s in scopes):
                    scopes.append(Scope(parent, deep=False))
                    local.update(self._shallow(parent))
        summary.files_scanned = sum(1 for e in local.values() if e.kind == "file")
        summary.bytes_scanned = sum(e.size for e in local.values() if e.kind == "file")
        remote = self._remote_in(scopes, local)
        if self._send_renames(local, remote, summary):
            remote = self._remote_in(scopes, local)
        self._send_tree(local, remote, summary)
        files = self._file_candidates(local, remote, forced)
        self._send_files(files, local, remote, forced, summary, show=first)
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
            self._ops([])  # a new client: its folder appears on the server even if empty

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

    def _ops(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer = self.conn.ops(ops)
        self._generation(answer["generation"])
        results: list[dict[str, Any]] = answer["results"]
        return results

    def _generation(self, generation: int) -> None:
        """Note the server's generation after a request; answers may come out of order."""
        with self._state:
            if generation >= int(self.index.get_meta("generation", "-1")):
                self.index.set_meta("generation", str(generation))

    # -- renames -----------------------------------------------------------------------

    def _send_renames(
        self, local: dict[str, Local], remote: dict[str, Remote], summary: Summary
    ) -> bool:
        """Send renames found by inode; return whether there were any."""
        moves: list[tuple[str, str]] = []
        if not any(
            e.inode and ((now := local.get(p)) is None or now.inode != e.inode)
            for p, e in remote.items()
        ):
            return False  # nothing known has left its place: no rename to look for
        remote = dict(remote)
        for kind in ("dir", "file"):
            fresh = {
                entry.inode: path
                for path, entry in local.items()
                if entry.kind == kind and (path not in remote or remote[path].inode != entry.inode)
            }
            for old in sorted(remote):
                was = remote.get(old)
                if was is None or was.kind != kind or not was.inode:
                    continue
                now = local.get(old)
                if now is not None and now.kind == kind and now.inode == was.inode:
                    continue
                new = fresh.get(was.inode)
                if new is None or new == old or _under(new, old):
                    continue
                if kind == "file" and (local[new].size, local[new].mtime_ns) != (
                    was.size,
                    was.mtime_ns,
                ):
                    continue
                moves.append((old, new))
                remote = {
                    (new + p[len(old) :] if _under(p, old) else p): e
                    for p, e in remote.items()
                    if not _under(p, new)
                }
        for start in range(0, len(moves), BATCH_OPS):
            batch = moves[start : start + BATCH_OPS]
            results = self._ops([{"op": "rename", "path": o, "dest": n} for o, n in batch])
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
        try:
            st = self.root.stat()
        except OSError:
            return
        now = f"{st.st_mode & 0o7777}:{st.st_mtime_ns}"
        if now == self.index.get_meta("top", ""):
            return
        self._ops([{"op": "top", "mode": st.st_mode & 0o7777, "mtime_ns": st.st_mtime_ns}])
        self.index.set_meta("top", now)
        self.on_change("folder times .")

    # -- folders and links -------------------------------------------------------------

    def _send_tree(
        self, local: dict[str, Local], remote: dict[str, Remote], summary: Summary
    ) -> None:
        ops: list[tuple[dict[str, Any], str, Remote]] = []
        for path in sorted(local):
            entry = local[path]
            have = remote.get(path)
            if entry.kind == "dir":
                acked = Remote("dir", 0, entry.mtime_ns, entry.mode, None, None, entry.inode)
                if (
                    have is None
                    or have.kind != "dir"
                    or (have.mode, have.mtime_ns) != (entry.mode, entry.mtime_ns)
                ):
                    op = {"op": "mkdir", "path": path, "mode": entry.mode}
                    op["mtime_ns"] = entry.mtime_ns
                    ops.append((op, path, acked))
                elif have.inode != entry.inode:
                    self.index.put_remote(path, acked)
            elif entry.kind == "link" and (
                have is None or have.kind != "link" or have.target != entry.target
            ):
                ops.append(
                    (
                        {
                            "op": "link",
                            "path": path,
                            "target": entry.target,
                            "mtime_ns": entry.mtime_ns,
                        },
                        path,
                        Remote("link", 0, entry.mtime_ns, 0, None, entry.target, entry.inode),
                    )
                )
        have_dirs = {
            p: (r := remote.get(p)) is not None and r.kind == "dir" and r.mode == op.get("mode")
            for op, p, _ in ops
        }
        for start in range(0, len(ops), BATCH_OPS):
            batch = ops[start : start + BATCH_OPS]
            results = self._ops([op for op, _, _ in batch])
            with self.index.db.transaction():
                for (op, path, acked), _result in zip(batch, results, strict=True):
                    if op["op"] == "link":
                        self.index.drop_remote(path)
                    self.index.put_remote(path, acked)
                    if op["op"] == "mkdir" and have_dirs.get(path):
                        # thousands in an upgrade, and routine: one line each only with -vv
                        log.debug("folder times %s", path)
                    elif op["op"] == "mkdir":
                        summary.folders += 1
                        self.on_change(f"folder {path}")
                    else:
                        summary.links += 1
                        self.on_change(f"link {path} -> {acked.target}")

    # -- deletions ---------------------------------------------------------------------

    def _send_deletes(
        self, local: dict[str, Local], remote: dict[str, Remote], summary: Summary
    ) -> None:
        gone: list[str] = []
        covered: set[str] = set()
        for path in sorted(remote):
            if path in local or not self.index.has_remote(path):
                continue
            parent = _parent(path)
            if any(_under(path, g) for g in _ancestors(path) if g in covered):
                continue
            if parent and parent in local and local[parent].kind != "dir":
                continue  # the parent became a file or link, which replaced it
            gone.append(path)
            covered.add(path)
        for start in range(0, len(gone), BATCH_OPS):
            batch = gone[start : start + BATCH_OPS]
            self._ops([{"op": "delete", "path": p} for p in batch])
            with self.index.db.transaction():
                for path in batch:
                    self.index.drop_remote(path)
                    summary.deleted += 1
                    self.on_change(f"deleted {path}")

    # -- files -------------------------------------------------------------------------

    def _file_candidates(
        self, local: dict[str, Local], remote: dict[str, Remote], forced: set[str]
    ) -> list[str]:
        out = []
        for path in sorted(local):
            entry = local[path]
            if entry.kind != "file":
                continue
            have = remote.get(path)
            if (
                path not in forced
                and have is not None
                and have.kind == "file"
                and (have.size, have.mtime_ns, have.mode)
                == (entry.size, entry.mtime_ns, entry.mode)
            ):
                if have.inode != entry.inode:
                    self.index.put_remote(path, _remote_of(entry, have.hash))
                continue
            out.append(path)
        return out

    def _digest(self, path: str, entry: Local, summary: Summary, read: _Read) -> Digest | None:
        """Take a file's digest as read ahead by ``_read``, recording what it cost."""
        digest, entry, error = read
        if error == "cached":
            return digest
        with self._state:  # batches in flight count into the same summary
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

    def _read(self, path: str, entry: Local) -> _Read:
        """Chunk and hash one file (on a reader thread); nothing shared is touched here."""
        for attempt in range(3):
            try:
                digest = digest_file(
                    self.root / path,
                    expect_size=entry.size,
                    expect_mtime_ns=entry.mtime_ns,
                    spill_dir=self.index.lists,
                )
            except FileChanged:
                time.sleep(0.1 * (attempt + 1))
                try:
                    st = (self.root / path).lstat()
                except OSError:
                    return None, entry, None
                entry = Local("file", st.st_size, st.st_mtime_ns, entry.mode, st.st_ino)
                continue
            except OSError as exc:
                return None, entry, exc.strerror or str(exc)
            return digest, entry, None
        return None, entry, "unstable"

    def _read_ahead(self, paths: list[str], local: dict[str, Local]) -> Iterator[_Read]:
        """The digests of ``paths`` in order, read by two threads a bounded way ahead.

        Reading the next files (FastCDC and BLAKE3 release the GIL) overlaps sending the
        current batch; at most READ_AHEAD_FILES files or READ_AHEAD_BYTES are held. Files
        unchanged since they were last read come from the index, 500 to a query.
        """
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="read") as pool:
            ahead: deque[tuple[Future[_Read], int]] = deque()
            held = nxt = looked = 0
            cached: dict[str, Digest] = {}
            try:
                while True:
                    while (
                        nxt < len(paths)
                        and len(ahead) < READ_AHEAD_FILES
                        and (held < READ_AHEAD_BYTES or not ahead)
                    ):
                        if nxt >= looked:
                            looked = nxt + 500
                            cached = self.index.cached_many(paths[nxt:looked], local)
                        path = paths[nxt]
                        nxt += 1
                        entry = local[path]
                        if path in cached:
                            done: Future[_Read] = Future()
                            done.set_result((cached[path], entry, "cached"))
                            ahead.append((done, 0))
                        else:
                            ahead.append((pool.submit(self._read, path, entry), entry.size))
                            held += entry.size
                    if not ahead:
                        return
                    future, size = ahead.popleft()
                    held -= size
                    yield future.result()
            finally:
                for future, _ in ahead:
                    future.cancel()

    def _send_files(
        self,
        paths: list[str],
        local: dict[str, Local],
        remote: dict[str, Remote],
        forced: set[str],
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
            bars = _Bars(display, len(paths), total)
            flying: deque[Future[None]] = deque()

            def send(batch: list[Outgoing]) -> None:
                # a batch goes out while the next is read and the one before is applied:
                # the server works on one while the client packs the other
                self._flush_cache()
                while len(flying) >= IN_FLIGHT:
                    flying.popleft().result()
                flying.append(senders.submit(self._send_batch, batch, summary, bars))

            batch: list[Outgoing] = []
            chunk_count = 0
            batch_bytes = 0
            bases: dict[str, tuple[str, Chunks]] = {}
            for path, read in zip(paths, self._read_ahead(paths, local), strict=True):
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
                if (
                    have is not None
                    and have.kind == "file"
                    and have.hash == digest.file_hash
                    and (have.mode, have.mtime_ns) == (entry.mode, entry.mtime_ns)
                ):
                    self.index.put_remote(path, _remote_of(entry, digest.file_hash))
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

    def _send_batch(self, batch: list[Outgoing], summary: Summary, bars: _Bars) -> None:
        """Ask about a batch of files, then send what the server lacks.

        Round one is a list of ops: the server makes what it can from content it holds and
        answers which chunks it lacks. Then big new files stream whole, files with many
        missing chunks stage them in packs, and the rest go as commits that carry ops and
        chunks together: one request for a thousand small files. Two batches may be on
        their way at once (different files); shared state is changed under ``_state``.
        """
        waiting = {item.path: item for item in batch}
        direct = self._against_prior(batch)
        if direct:  # no asking round: what the server lacks is known, and costs little
            self._send_data(direct, waiting, set(), summary, bars)
            for item in direct:
                item.prior = item.prior_data = None  # asked again, they go plain
            if not waiting:
                return
        # big files go first without their chunk list: if the server holds the content
        # (a copy, a move), that is all it needs; else it answers "resend"
        with_chunks = {
            p for p, item in waiting.items() if item.local.size < LIST_LATER or item.base
        }
        rounds = more = 0
        while rounds < ROUNDS:
            asking = list(waiting.values())
            for item in asking:  # a huge file's list goes on its own, once, streamed
                chunks = item.digest.chunks
                if (
                    item.path in with_chunks
                    and isinstance(chunks, ListFile)
                    and not item.listed
                    and item.delta() is None
                ):
                    self.conn.put_list(item.digest.file_hash, item.local.size, chunks)
                    item.listed = True
            ops = [_file_op(item, item.path in with_chunks) for item in asking]
            results = self._ops(ops)
            need: list[Outgoing] = []
            with_chunks = set()  # what is still waiting after this round is asked again
            with self._state, self.index.db.transaction():
                done = self._handle(asking, results, waiting, need, with_chunks, summary, bars)
            self._keep(done)
            if need:
                self._send_data(need, waiting, with_chunks, summary, bars)
            if not waiting:
                return
            with_chunks.update(waiting)
            if any(item.more for item in need) and more < MORE_ROUNDS:
                more += 1  # the server listed some of the chunks it lacks: not stuck
            else:
                rounds += 1
        with self._state:
            for item in waiting.values():
                summary.errors.append(f"{item.path}: the server kept asking for chunks")
                bars.done(item.local.size)

    def _send_data(
        self,
        need: list[Outgoing],
        waiting: dict[str, Outgoing],
        with_chunks: set[str],
        summary: Summary,
        bars: _Bars,
    ) -> None:
        """Send the content ``need`` lacks; files still waiting after it are asked again."""
        changed: list[Outgoing] = []
        limit = self._commit_limit()
        inline: list[Outgoing] = []
        staged: list[Outgoing] = []
        for item in need:
            if self.uploader.whole_is_cheaper(item):
                del waiting[item.path]
                result = self.uploader.whole(item)
                with self._state:
                    if result is None:
                        summary.skipped += 1
                    else:
                        with self.index.db.transaction():
                            self._acknowledge(item, result, summary)
                    bars.done(item.local.size)
            elif item.lacking_bytes() > limit // 2:
                staged.append(item)
            else:
                inline.append(item)
        if staged:
            changed += self.uploader.chunks(staged)
        for group, pack, data in self.uploader.packs(inline, limit, changed):
            answer = self.conn.commit([_file_op(i, True) for i in group], pack, data)
            self._generation(answer["generation"])
            with self._state, self.index.db.transaction():
                done = self._handle(
                    group, answer["results"], waiting, [], with_chunks, summary, bars
                )
            self._keep(done)
        with self._state:
            for item in changed:
                waiting.pop(item.path, None)
                summary.skipped += 1
                bars.done(item.local.size)

    def _commit_limit(self) -> int:
        """Chunk bytes per commit request: well inside the server's request limit."""
        server_max = int(self._limits.get("max_request_bytes", 64 << 20))
        return max(64 << 10, min(COMMIT_BYTES, server_max // 4))

    def _flush_cache(self) -> None:
        """Write the chunk lists read since the last batch, in one transaction."""
        if self._read_cache:
            with self.index.db.transaction():
                for row in self._read_cache:
                    self.index.remember(*row)
            self._read_cache.clear()

    def _handle(
        self,
        items: list[Outgoing],
        results: list[dict[str, Any]],
        waiting: dict[str, Outgoing],
        need: list[Outgoing],
        with_chunks: set[str],
        summary: Summary,
        bars: _Bars,
    ) -> list[Outgoing]:
        """Record what the server made, and collect what it still needs; return the files
        made with new content.

        Of files with the same content only the first is sent: the others wait for the
        next round, where the server makes them by a local copy.
        """
        sending = {other.digest.file_hash for other in need}
        made = []
        for item, result in zip(items, results, strict=True):
            status = result.get("status")
            if status == "done":
                del waiting[item.path]
                self._acknowledge(item, result, summary)
                bars.done(item.local.size)
                if result.get("via") != "meta":
                    made.append(item)
            elif status == "missing":
                item.lacking = None if result.get("all") else set(result.get("chunks", []))
                total = result.get("bytes")
                item.lacking_total = total if isinstance(total, int) else None
                item.more = bool(result.get("more"))
                if item.digest.file_hash in sending:
                    continue  # asked again next round: a copy of the one on its way
                sending.add(item.digest.file_hash)
                need.append(item)
            elif status == "resend":
                with_chunks.add(item.path)
                item.drop_base()
                item.held = False  # the server's copy was not what it recorded
            else:
                raise InvalidInput(f"unexpected answer for {item.path}: {result}")
        return made

    def _against_prior(self, batch: list[Outgoing]) -> list[Outgoing]:
        """Files whose previous content is kept here: their chunks go compressed against it,
        without asking first. What the server lacks is what is not in the old version."""
        candidates = [item for item in batch if item.prior is not None]
        if not candidates:
            return []
        kept = self.index.kept_among(str(item.prior) for item in candidates)
        ready = []
        for item in candidates:
            data = self.index.kept(str(item.prior)) if item.prior in kept else None
            if data is None:
                continue
            old = chunk_ids(data)
            item.prior_data = data
            item.lacking = {c for c in item.digest.chunks.ids() if c not in old}
            item.lacking_total = sum(
                ref.length for ref in item.digest.chunks if ref.chunk_id in item.lacking
            )
            ready.append(item)
        return ready

    def _keep(self, made: list[Outgoing]) -> None:
        """Keep a zstd copy of new content that compresses well, for its next version."""
        if not self.uploader.patching or not self.index.keep_bytes:
            return
        # what went plain (photos, archives) is not tried again: it would not shrink either
        fresh = [item for item in made if 0 < item.local.size < BASE_MAX and not item.dense]
        known = self.index.kept_among(item.digest.file_hash for item in fresh)
        rows = []
        for item in fresh:
            file_hash = item.digest.file_hash
            if file_hash in known:
                continue
            data = item.digest.data
            if data is None:
                data = read_as(self.root / item.path, file_hash, item.local.size)
            if data is None:
                continue  # changed since it was sent: the next version is sent plain
            packed = self.uploader.squeeze(data, KEEP_GAIN, always=True)
            if packed is not None:
                rows.append((file_hash, packed))
                known.add(file_hash)
        if rows:
            self.index.keep(rows)

    def _acknowledge(self, item: Outgoing, result: dict[str, Any], summary: Summary) -> None:
        self.index.drop_remote(item.path)
        self.index.put_remote(item.path, _remote_of(item.local, item.digest.file_hash))
        via = result.get("via", "")
        if via == "meta":
            summary.modified += 1
            # a release upgrade touches the mtime of thousands: one line each only with -vv
            log.debug("metadata %s", item.path)
            return
        summary.files_sent += 1
        if via == "copy":
            summary.deduplicated += 1
        if item.action == "created":
            summary.created += 1
        else:
            summary.modified += 1
        self.on_change(f"{item.action} {item.path} ({item.local.size} bytes, {via})")


class _Bars:
    def __init__(self, display: Display, files: int, size: int) -> None:
        self.files = display.task("files", files)
        self.bytes = display.task("bytes", size, bytes=True)

    def done(self, size: int) -> None:
        self.files.advance(1)
        self.bytes.advance(size)


def _file_op(item: Outgoing, with_chunks: bool) -> dict[str, Any]:
    """The op of a file; its chunk list only when asked for and the server lacks the content."""
    op: dict[str, Any] = {
        "op": "file",
        "path": item.path,
        "size": item.local.size,
        "mode": item.local.mode,
        "mtime_ns": item.local.mtime_ns,
        "hash": item.digest.file_hash,
    }
    if not with_chunks or item.held:
        return op
    chunks = item.digest.chunks
    delta = item.delta()
    if delta is not None and item.base is not None:
        op["base"] = item.base[0]
        op["delta"] = delta
    elif isinstance(chunks, ChunkList):
        op["chunks"] = base64.b64encode(chunks.raw)  # bytes: see ops_body
    # else a huge file's list went on its own (Connection.put_list)
    return op


def _remote_of(entry: Local, file_hash: str | None) -> Remote:
    return Remote("file", entry.size, entry.mtime_ns, entry.mode, file_hash, None, entry.inode)


def client_index_path(data_dir: Path, root: Path, name: str) -> Path:
    """Where the index of one (folder, client name) lives in the data directory.

    Not keyed by the server's URL, so reaching the same server by another address keeps
    the index; the server's id (from hello) tells when it is really another server.
    """
    from blake3 import blake3

    key = blake3(f"{root}\n{name}".encode()).hexdigest()[:20]
    return data_dir / "clients" / f"{key}.sqlite"
