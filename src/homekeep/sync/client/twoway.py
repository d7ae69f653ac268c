"""Two-way sync of a shared folder: take the server's changes, then send ours.

A pass reads the three versions of every path (the base both sides last agreed on, kept
in the client index; the local folder; the server's manifest), plans with
:func:`reconcile`, receives what the plan pulls (conflict copies included), and then lets
the one-way engine send what is left: local changes and conflict copies. The base is
what both sides held at the end of the pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from homekeep.core.errors import HomekeepError, Unavailable, UsageError
from homekeep.sync.client.engine import Syncer
from homekeep.sync.client.index import ClientIndex, Remote
from homekeep.sync.client.receive import Received, Receiver
from homekeep.sync.client.reconcile import Plan, Side, Version, reconcile
from homekeep.sync.client.scan import Local, scan
from homekeep.sync.client.summary import Summary
from homekeep.sync.conflicts import conflict_name
from homekeep.sync.wire.chunking import FileChanged, digest_file
from homekeep.sync.wire.folder import MARKER

log = logging.getLogger(__name__)

MASS_DELETE_MIN = 10  # deleting fewer files than this never counts as a mass delete


class MassDelete(UsageError):
    """A pass would delete more than the configured share of the folder: the user decides."""


class Mode(Enum):
    """How a client takes part in a shared folder."""

    SEND_RECEIVE = "send-receive"
    SEND_ONLY = "send-only"
    RECEIVE_ONLY = "receive-only"


@dataclass
class Pass:
    """What one two-way pass did: the receiving half and the sending half."""

    received: Received
    sent: Summary | None
    plan: Plan


class TwoWay:
    """Runs two-way passes of one local folder against one shared folder; one thread."""

    def __init__(
        self,
        syncer: Syncer,
        *,
        me: str,
        mode: Mode = Mode.SEND_RECEIVE,
        max_delete_percent: float = 50.0,
    ) -> None:
        self.syncer = syncer
        syncer.folder_times = False
        self.root: Path = syncer.root
        self.index: ClientIndex = syncer.index
        self.me = me
        self.mode = mode
        self.max_delete_percent = max_delete_percent
        self.receiver = Receiver(self.root, syncer.conn, self.index)

    def run(self, *, allow_mass_delete: bool = False) -> Pass:
        """One pass: receive, then send."""
        self._check_marker()
        if self.mode is Mode.SEND_ONLY:
            return Pass(Received(), self.syncer.full(), Plan())
        answer = self.syncer.conn.manifest(-1)
        rows: dict[str, list[Any]] = {str(r[0]): r for r in answer["entries"]}
        old = self.index.remote()
        base = {p: _remote_version(e) for p, e in old.items()}
        local = scan(self.root, self.syncer.excludes)
        mine = self._local_versions(local, old)
        theirs = {p: _row_version(r) for p, r in rows.items()}
        plan = reconcile(base, mine, theirs, me=self.me)
        self._name_after_makers(plan, theirs, set(mine) | set(theirs))
        if self.mode is Mode.RECEIVE_ONLY:
            _receive_only(plan)
        self._check_deletes(plan, base, allow_mass_delete)
        received = self.receiver.apply(plan, local, rows)
        kept = set(received.skipped)
        agreed = [r for p, r in rows.items() if p not in kept]
        agreed += [[p, *_remote_row(old[p])] for p in kept if p in old]
        self.index.replace_remote(agreed)
        self.index.set_meta("generation", str(answer["generation"]))
        sent = None if self.mode is Mode.RECEIVE_ONLY else self.syncer.full()
        return Pass(received, sent, plan)

    def _check_marker(self) -> None:
        """A folder that lost its marker after it was synced looks unmounted: stop."""
        marker = self.root / MARKER
        if marker.is_file():
            return
        if self.index.remote():
            raise Unavailable(
                f"{self.root} looks unmounted or replaced ({MARKER} is missing): nothing "
                f"was synced; mount it again, or create an empty {MARKER} there to go on"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        marker.write_text("homekeep shared folder; do not delete\n", encoding="utf-8")

    def _local_versions(
        self, local: dict[str, Local], base: dict[str, Remote]
    ) -> dict[str, Version]:
        """Each local path's version; a file's content is read only if its stat changed."""
        out: dict[str, Version] = {}
        changed = []
        for path, entry in local.items():
            if entry.kind != "file":
                out[path] = Version(entry.kind, entry.target, entry.mtime_ns)
                continue
            known = base.get(path)
            if (
                known is not None
                and known.kind == "file"
                and (known.size, known.mtime_ns) == (entry.size, entry.mtime_ns)
                and known.inode in (0, entry.inode)
            ):
                out[path] = Version("file", known.hash, entry.mtime_ns)
            else:
                changed.append(path)
        cached = self.index.cached_many(changed, local)
        for path in changed:
            entry = local[path]
            digest = cached.get(path)
            if digest is None:
                try:
                    digest = digest_file(
                        self.root / path,
                        expect_size=entry.size,
                        expect_mtime_ns=entry.mtime_ns,
                        spill_dir=self.index.lists,
                    )
                except (FileChanged, OSError):
                    # being written: a local change of unknown content, never a delete;
                    # the sending half skips it until it settles
                    out[path] = Version("file", None, entry.mtime_ns)
                    continue
                self.index.remember(
                    path, entry.size, entry.mtime_ns, entry.inode, digest.file_hash, digest.chunks
                )
            out[path] = Version("file", digest.file_hash, entry.mtime_ns)
        return out

    def _name_after_makers(self, plan: Plan, theirs: dict[str, Version], taken: set[str]) -> None:
        """A server version that lost a conflict: its copy carries the device that made it."""
        for i, c in enumerate(plan.conflicts):
            loser = theirs.get(c.path)
            if c.winner is not Side.LOCAL or c.copy is None or loser is None:
                continue
            if loser.kind != "file":
                continue
            try:
                by = self.syncer.conn.file_chunks(c.path).get("by")
            except HomekeepError:
                continue  # changed meanwhile: the pass sorts it out
            if not isinstance(by, str) or not by:
                continue
            name = conflict_name(c.path, loser.mtime_ns, by)
            n = 1
            while name in taken:
                n += 1
                name = conflict_name(c.path, loser.mtime_ns, f"{by}-{n}")
            taken.add(name)
            plan.conflicts[i] = replace(c, copy=name)

    def _check_deletes(self, plan: Plan, base: dict[str, Version], allowed: bool) -> None:
        """Refuse a pass that would delete more than the configured share of the folder."""
        files = sum(1 for v in base.values() if v.kind == "file")
        doomed = sum(
            1
            for side in (plan.pull, plan.push)
            for p, v in side.items()
            if v is None and base.get(p) is not None and base[p].kind == "file"
        )
        if allowed or doomed < MASS_DELETE_MIN or files == 0:
            return
        share = 100 * doomed / files
        if share > self.max_delete_percent:
            raise MassDelete(
                f"this pass would delete {doomed} of {files} files ({share:.0f}%, over "
                f"[sync] max_delete_percent = {self.max_delete_percent:g}); nothing was "
                "changed: check the folders, then run again with --allow-mass-delete"
            )


def _receive_only(plan: Plan) -> None:
    """Nothing is sent: local changes stay local, and in a conflict the server's wins."""
    plan.push.clear()
    plan.rename_remote.clear()
    plan.conflicts = [type(c)(c.path, Side.REMOTE, None) for c in plan.conflicts]


def _remote_version(entry: Remote) -> Version:
    return Version(entry.kind, entry.hash if entry.kind == "file" else entry.target, entry.mtime_ns)


def _row_version(row: list[Any]) -> Version:
    kind = str(row[1])
    return Version(kind, row[5] if kind == "file" else row[6], int(row[3]))


def _remote_row(entry: Remote) -> list[Any]:
    return [entry.kind, entry.size, entry.mtime_ns, entry.mode, entry.hash, entry.target]
