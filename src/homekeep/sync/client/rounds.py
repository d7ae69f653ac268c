"""Batch rounds: ask the server about a batch of files, then send what it lacks (whole
files, staged packs, or commits of ops and chunks together) until every file is made."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from typing import Any

from homekeep.core.errors import InvalidInput
from homekeep.core.progress import Display
from homekeep.sync.client.index import ClientIndex
from homekeep.sync.client.plan import remote_of
from homekeep.sync.client.summary import Summary
from homekeep.sync.client.transport import Connection
from homekeep.sync.client.uploads import Outgoing, Uploader
from homekeep.sync.wire.chunking import chunk_ids, read_as
from homekeep.sync.wire.chunklist import ChunkList, ListFile
from homekeep.sync.wire.compression import BASE_MAX

log = logging.getLogger(__name__)

ROUNDS = 4
MORE_ROUNDS = 1024  # rounds a huge file may take when each answer lists only some chunks
COMMIT_BYTES = 4 << 20  # chunk data per commit: an interrupted commit loses no more than this
LIST_LATER = 1 << 20  # files from this size send their chunk list only when asked
KEEP_GAIN = 2 / 3  # content is kept for patching when zstd takes a third off: text, code


class Bars:
    """The progress of a pass: files and bytes done."""

    def __init__(self, display: Display, files: int, size: int) -> None:
        self.files = display.task("files", files)
        self.bytes = display.task("bytes", size, bytes=True)

    def done(self, size: int) -> None:
        self.files.advance(1)
        self.bytes.advance(size)


class Rounds:
    """The requests of one client: ops, and the rounds that send a batch of files.

    Two batches may be on their way at once (different files): the summary, the bars and
    the index's acknowledgements are changed under ``state``.
    """

    def __init__(
        self,
        conn: Connection,
        index: ClientIndex,
        uploader: Uploader,
        on_change: Callable[[str], None],
    ) -> None:
        self.conn = conn
        self.index = index
        self.uploader = uploader
        self.root = uploader.root
        self.on_change = on_change
        self.limits: dict[str, Any] = {}  # the server's hello
        self.state = threading.RLock()

    def ops(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ops; return their results."""
        answer = self.conn.ops(ops)
        self.generation(answer["generation"])
        results: list[dict[str, Any]] = answer["results"]
        return results

    def generation(self, generation: int) -> None:
        """Note the server's generation after a request; answers may come out of order."""
        with self.state:
            if generation >= int(self.index.get_meta("generation", "-1")):
                self.index.set_meta("generation", str(generation))

    def send_batch(self, batch: list[Outgoing], summary: Summary, bars: Bars) -> None:
        """Ask about a batch of files, then send what the server lacks.

        Round one is a list of ops: the server makes what it can from content it holds and
        answers which chunks it lacks. Then big new files stream whole, files with many
        missing chunks stage them in packs, and the rest go as commits that carry ops and
        chunks together: one request for a thousand small files. Two batches may be on
        their way at once (different files); shared state is changed under ``state``.
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
            ops = [file_op(item, item.path in with_chunks) for item in asking]
            results = self.ops(ops)
            need: list[Outgoing] = []
            with_chunks = set()  # what is still waiting after this round is asked again
            with self.state, self.index.db.transaction():
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
        with self.state:
            for item in waiting.values():
                summary.errors.append(f"{item.path}: the server kept asking for chunks")
                bars.done(item.local.size)

    def _send_data(
        self,
        need: list[Outgoing],
        waiting: dict[str, Outgoing],
        with_chunks: set[str],
        summary: Summary,
        bars: Bars,
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
                with self.state:
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
            answer = self.conn.commit([file_op(i, True) for i in group], pack, data)
            self.generation(answer["generation"])
            with self.state, self.index.db.transaction():
                done = self._handle(
                    group, answer["results"], waiting, [], with_chunks, summary, bars
                )
            self._keep(done)
        with self.state:
            for item in changed:
                waiting.pop(item.path, None)
                summary.skipped += 1
                bars.done(item.local.size)

    def _commit_limit(self) -> int:
        """Chunk bytes per commit request: well inside the server's request limit."""
        server_max = int(self.limits.get("max_request_bytes", 64 << 20))
        return max(64 << 10, min(COMMIT_BYTES, server_max // 4))

    def _handle(
        self,
        items: list[Outgoing],
        results: list[dict[str, Any]],
        waiting: dict[str, Outgoing],
        need: list[Outgoing],
        with_chunks: set[str],
        summary: Summary,
        bars: Bars,
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
        self.index.put_remote(item.path, remote_of(item.local, item.digest.file_hash))
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


def file_op(item: Outgoing, with_chunks: bool) -> dict[str, Any]:
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
