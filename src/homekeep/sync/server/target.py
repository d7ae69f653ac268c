"""A sync target folder's life cycle: opened (new, empty, ours, or adopted), repaired after
a crash, closed; its per-client locks, folders and temp names.

Layout of a target folder DIR::

    DIR/.homekeep-sync/index.sqlite   entries, chunk locations, staged chunks, history
    DIR/.homekeep-sync/tmp/           files being written (renamed into place when whole)
    DIR/.homekeep-sync/staging/       uploaded chunks waiting to be assembled
    DIR/.homekeep-sync/lists/         chunk lists of huge files, sent on their own
    DIR/<client>/...                  each client's copy of its folder

A chunk id maps to (file, offset, length) of a file the server already holds, so chunks
are read back from the files themselves; nothing is stored twice.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from homekeep.core.errors import InvalidInput, Unavailable, UsageError
from homekeep.sync.server import dirtimes, fsops
from homekeep.sync.server.chunkstore import ChunkStore
from homekeep.sync.store import STATE, ServerIndex, is_target
from homekeep.sync.wire.folder import MARKER
from homekeep.sync.wire.protocol import check_client

log = logging.getLogger(__name__)


class Target:
    """One sync target folder and its index; safe to use from many threads.

    Shared by the request threads and the data port's workers: the index hands each
    thread its own SQLite connection, one client's changes are serialised by its lock,
    a ``Batch`` belongs to the thread holding that lock, and ``chunks`` guards its own.
    """

    def __init__(
        self,
        root: Path,
        *,
        staging_ttl: float = 24 * 3600,
        maintain: bool = True,
        dedup_across_clients: bool = False,
        keep_group_and_other_write: bool = False,
        pause: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self._pause = pause  # for tests: see fsops.Tree
        # the bits a mode from a client keeps on disk: never setuid or setgid, and group
        # and other write (and sticky, which only matters with them) only when configured
        self.mode_mask = 0o1777 if keep_group_and_other_write else 0o755
        self.state = root / STATE
        self.tmp = self.state / "tmp"
        self.staging = self.state / "staging"
        self.lists = self.state / "lists"
        self.staging_ttl = staging_ttl
        if maintain:
            for folder in (self.state, self.tmp, self.staging, self.lists):
                folder.mkdir(parents=True, exist_ok=True)
        self.index = ServerIndex(self.state / "index.sqlite")
        self.db = self.index.db
        self.server_id = self._server_id(maintain)
        self._locks: dict[str, threading.Lock] = {}  # one per client, made under _locks_guard
        self._locks_guard = threading.Lock()
        self.chunks = ChunkStore(
            root, self.db, self.staging, self.lists, ttl=staging_ttl, shared=dedup_across_clients
        )
        self._serving = self.state / "serving" if maintain else None
        if self._serving is not None:  # only the serving process clears and repairs
            self.recover()
            if self._serving.exists():  # the last server did not stop cleanly
                self._restore_all_dir_times()
            self._serving.touch()
            self._clean_tmp()
            self.chunks.collect()

    @classmethod
    def open(
        cls,
        root: Path,
        *,
        adopt: bool = False,
        staging_ttl: float = 24 * 3600,
        dedup_across_clients: bool = False,
        keep_group_and_other_write: bool = False,
    ) -> Target:
        """Open ``root`` as a target: new, empty, already ours, or (with ``adopt``) a folder
        with files in it, which the caller then indexes (``adopt.adopt``)."""
        root = root.expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} is not a folder; give an empty or new folder")
        if root.is_dir() and not is_target(root) and any(root.iterdir()) and not adopt:
            raise UsageError(
                f"{root} is not empty and not a homekeep sync target; give an empty folder, "
                "or pass --adopt to index what is there for dedup"
            )
        root.mkdir(parents=True, exist_ok=True)
        return cls(
            root,
            staging_ttl=staging_ttl,
            dedup_across_clients=dedup_across_clients,
            keep_group_and_other_write=keep_group_and_other_write,
        )

    def close(self) -> None:
        self.index.close()
        if self._serving is not None:
            self._serving.unlink(missing_ok=True)  # a clean stop: nothing to repair

    def _server_id(self, create: bool) -> str:
        """A random id of this target folder: clients see when they face another server."""
        path = self.state / "id"
        if not path.exists() and create:
            tmp = self.tmp / "id"
            tmp.write_text(uuid.uuid4().hex)
            tmp.replace(path)
        return path.read_text().strip() if path.exists() else ""

    def lock(self, client: str) -> threading.Lock:
        """The lock that serialises one client's changes."""
        with self._locks_guard:
            return self._locks.setdefault(client, threading.Lock())

    def client_dir(self, client: str) -> Path:
        check_client(client)
        return self.root / client

    def tree(self, client: str) -> fsops.Tree:
        """The client's folder (made if new), to change through folder descriptors."""
        base = self.client_dir(client)
        shared = self.index.is_shared(client)
        if shared and not (base / MARKER).is_file():
            raise Unavailable(
                f"shared folder {client!r} looks unmounted ({base / MARKER} is missing); "
                f"mount it again, or run `homekeep sync share {client}` if it moved on purpose"
            )
        base.mkdir(exist_ok=True)
        return fsops.Tree(base, pause=self._pause, keep_versions=shared)

    def register(self, client: str) -> None:
        """Create a client's folder and record it, once."""
        self.client_dir(client).mkdir(exist_ok=True)
        self.index.register(client)

    def temp_name(self) -> Path:
        """A temp file name no other writer uses (files are created with O_EXCL).

        Random, so request threads share no counter to draw it from.
        """
        return self.tmp / uuid.uuid4().hex

    def restore_dir_times(self, client: str, changed: list[str], *, top: bool = False) -> None:
        """Give the folders around ``changed`` paths their recorded mtimes (see dirtimes)."""
        if not changed and not top:
            return
        with self.tree(client) as tree:
            dirtimes.restore(self.index, tree, client, changed, top=top)

    def recover(self, client: str | None = None) -> None:
        """Forget what a crash (or an error) left half placed.

        A batch's files are renamed into place before their index rows are written. Paths
        in ``placing`` may hold new content under rows that describe the old, so their rows
        go: the client's next manifest shows them missing and it sends them again.
        """
        count = self.index.forget_placing(client)
        if count:
            log.warning("forgot %d half-placed files; their clients send them again", count)

    def _restore_all_dir_times(self) -> None:
        """Give every folder its recorded mtime, after a server that did not stop cleanly:
        one killed between placing files and restoring their folders' mtimes leaves them
        moved, and the client, seeing the right mtimes in the manifest, sends nothing."""
        for client in self.index.clients():
            try:
                self.client_dir(client)
            except InvalidInput:
                continue
            self.restore_dir_times(client, self.index.dirs_with_times(client), top=True)

    def _clean_tmp(self) -> None:
        for leftover in self.tmp.iterdir():
            fsops.remove(leftover)
