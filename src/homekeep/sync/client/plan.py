"""Planning a pass, as pure functions of the local scan and the acknowledged remote state:
what to rename, which folders and links to make, which files to look at, what to delete."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from homekeep.sync.client.index import Remote
from homekeep.sync.client.scan import Local


def ancestors(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def parent(path: str) -> str:
    return path.rpartition("/")[0]


def remote_of(entry: Local, file_hash: str | None) -> Remote:
    """What the server holds once it acknowledged the file ``entry`` with ``file_hash``."""
    return Remote("file", entry.size, entry.mtime_ns, entry.mode, file_hash, None, entry.inode)


def renames(local: dict[str, Local], remote: dict[str, Remote]) -> list[tuple[str, str]]:
    """The (old, new) moves found by inode: folders first, then files of unchanged size
    and mtime."""
    moves: list[tuple[str, str]] = []
    if not any(
        e.inode and ((now := local.get(p)) is None or now.inode != e.inode)
        for p, e in remote.items()
    ):
        return moves  # nothing known has left its place: no rename to look for
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
            if new is None or new == old or under(new, old):
                continue
            if kind == "file" and (local[new].size, local[new].mtime_ns) != (
                was.size,
                was.mtime_ns,
            ):
                continue
            moves.append((old, new))
            remote = {
                (new + p[len(old) :] if under(p, old) else p): e
                for p, e in remote.items()
                if not under(p, new)
            }
    return moves


@dataclass(frozen=True)
class TreeOp:
    """A folder or link to send: the op, and what the server holds once it is done."""

    op: dict[str, Any]
    path: str
    acked: Remote
    times_only: bool  # a folder the server has with this mode: only its mtime moved


def tree(
    local: dict[str, Local], remote: dict[str, Remote], *, folder_times: bool = True
) -> tuple[list[TreeOp], list[tuple[str, Remote]]]:
    """The folder and link ops to send, and the folders whose only change is their inode
    (recorded in the index, nothing sent); without ``folder_times``, a folder whose only
    change is its mtime is not sent either."""
    ops: list[TreeOp] = []
    moved: list[tuple[str, Remote]] = []
    for path in sorted(local):
        entry = local[path]
        have = remote.get(path)
        if entry.kind == "dir":
            acked = Remote("dir", 0, entry.mtime_ns, entry.mode, None, None, entry.inode)
            if not folder_times and have is not None and have.kind == "dir":
                acked = Remote("dir", 0, have.mtime_ns, entry.mode, None, None, entry.inode)
            if (
                have is None
                or have.kind != "dir"
                or have.mode != entry.mode
                or (folder_times and have.mtime_ns != entry.mtime_ns)
            ):
                op = {"op": "mkdir", "path": path, "mode": entry.mode, "mtime_ns": entry.mtime_ns}
                same = have is not None and have.kind == "dir" and have.mode == entry.mode
                ops.append(TreeOp(op, path, acked, same))
            elif have.inode != entry.inode:
                moved.append((path, acked))
        elif entry.kind == "link" and (
            have is None or have.kind != "link" or have.target != entry.target
        ):
            op = {"op": "link", "path": path, "target": entry.target, "mtime_ns": entry.mtime_ns}
            acked = Remote("link", 0, entry.mtime_ns, 0, None, entry.target, entry.inode)
            ops.append(TreeOp(op, path, acked, False))
    return ops, moved


def deletes(
    local: dict[str, Local], remote: dict[str, Remote], acknowledged: Callable[[str], bool]
) -> list[str]:
    """The paths to delete: gone here, still ``acknowledged`` there, and not under a folder
    deleted already (nor under one that became a file or link, which replaced it)."""
    gone: list[str] = []
    covered: set[str] = set()
    for path in sorted(remote):
        if path in local or not acknowledged(path):
            continue
        up = parent(path)
        if any(under(path, g) for g in ancestors(path) if g in covered):
            continue
        if up and up in local and local[up].kind != "dir":
            continue  # the parent became a file or link, which replaced it
        gone.append(path)
        covered.add(path)
    return gone


def file_candidates(
    local: dict[str, Local], remote: dict[str, Remote], forced: set[str]
) -> tuple[list[str], list[tuple[str, Remote]]]:
    """The files to read (changed, new or ``forced``), and the unchanged ones whose only
    change is their inode (recorded in the index, nothing read)."""
    out = []
    moved = []
    for path in sorted(local):
        entry = local[path]
        if entry.kind != "file":
            continue
        have = remote.get(path)
        if (
            path not in forced
            and have is not None
            and have.kind == "file"
            and (have.size, have.mtime_ns, have.mode) == (entry.size, entry.mtime_ns, entry.mode)
        ):
            if have.inode != entry.inode:
                moved.append((path, remote_of(entry, have.hash)))
            continue
        out.append(path)
    return out, moved
