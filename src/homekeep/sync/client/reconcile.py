"""Three-way reconciliation: what to pull, push or keep both of, from base, local and remote.

For every path the client knows three versions: the one both sides last agreed on (the
base), the local one and the server's. A side whose version equals the base did not
change it. What only one side changed travels to the other; the same change on both
sides is no conflict; different concurrent edits keep both, the older one under a
Syncthing-style conflict name. An edit beats a delete, a folder that gains content on
one side is not deleted by the other, and a rename on one side carries the other side's
edit to the new name.

Everything here is a pure function of its inputs, so it is tested exhaustively and by
hypothesis without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from homekeep.sync.conflicts import conflict_name, is_conflict_copy


@dataclass(frozen=True, slots=True)
class Version:
    """One side's version of a path: its kind, its content and who made it."""

    kind: str  # file, dir, link
    content: str | None = None  # a file's content hash, a link's target; None for folders
    mtime_ns: int = 0
    by: str = ""  # the client that made this version, when known (for conflict names)

    def same(self, other: Version | None) -> bool:
        """The same kind and content (times and authors aside)."""
        return other is not None and self.kind == other.kind and self.content == other.content


def same(a: Version | None, b: Version | None) -> bool:
    """Equal versions, where None (absent) equals only None."""
    return b is None if a is None else a.same(b)


class Side(Enum):
    LOCAL = "local"
    REMOTE = "remote"


@dataclass(frozen=True, slots=True)
class ConflictCopy:
    """Concurrent different edits of ``path``: both kept, the loser under ``copy``.

    ``copy`` is None when ``path`` is a conflict copy itself: then the loser goes to the
    versions folder instead (there is no conflict copy of a conflict copy).
    """

    path: str
    winner: Side
    copy: str | None


@dataclass
class Plan:
    """What a pass does, path by path."""

    pull: dict[str, Version | None] = field(default_factory=dict)  # None: delete locally
    push: dict[str, Version | None] = field(default_factory=dict)  # None: delete on the server
    agree: dict[str, Version | None] = field(default_factory=dict)  # same change both sides
    conflicts: list[ConflictCopy] = field(default_factory=list)
    # a rename on one side meeting an edit on the other: (source, dest) renamed on the
    # side that did not rename it, then the edit travels under ``dest``
    rename_remote: list[tuple[str, str]] = field(default_factory=list)
    rename_local: list[tuple[str, str]] = field(default_factory=list)

    def final(
        self,
        local: Mapping[str, Version],
        remote: Mapping[str, Version],
    ) -> dict[str, Version]:
        """The tree both sides hold once the plan is carried out (conflict copies included)."""
        out = dict(local)
        for src, dest in self.rename_local:
            if src in out:
                out[dest] = out.pop(src)
        for path, version in [*self.pull.items(), *self.push.items(), *self.agree.items()]:
            if version is None:
                out.pop(path, None)
            else:
                out[path] = version
        for c in self.conflicts:
            mine, theirs = local.get(c.path), remote.get(c.path)
            win, lose = (mine, theirs) if c.winner is Side.LOCAL else (theirs, mine)
            if win is not None:
                out[c.path] = win
            if c.copy is not None and lose is not None:
                out[c.copy] = lose
        return out


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _ancestors(path: str) -> Iterable[str]:
    while "/" in path:
        path = _parent(path)
        yield path


def reconcile(
    base: Mapping[str, Version],
    local: Mapping[str, Version],
    remote: Mapping[str, Version],
    *,
    me: str,
) -> Plan:
    """Plan a pass of the client ``me`` from the three versions of every path."""
    plan = Plan()
    taken = set(local) | set(remote)  # names a conflict copy must not take
    _renames(base, local, remote, plan)
    moved = {src for src, _ in plan.rename_local} | {src for src, _ in plan.rename_remote}
    moved |= {dest for _, dest in plan.rename_local} | {dest for _, dest in plan.rename_remote}
    for path in sorted(set(base) | set(local) | set(remote)):
        if path in moved:
            continue
        b, lo, r = base.get(path), local.get(path), remote.get(path)
        local_changed, remote_changed = not same(lo, b), not same(r, b)
        if not local_changed and not remote_changed:
            continue
        if not remote_changed:
            plan.push[path] = lo
        elif not local_changed:
            plan.pull[path] = r
        elif same(lo, r):
            plan.agree[path] = lo
        elif lo is None:
            plan.pull[path] = r  # an edit beats a delete
        elif r is None:
            plan.push[path] = lo
        else:
            plan.conflicts.append(_conflict(path, lo, r, me, taken))
    _keep_folders_with_content(local, remote, plan)
    return plan


def _conflict(path: str, lo: Version, r: Version, me: str, taken: set[str]) -> ConflictCopy:
    """Both sides changed ``path`` differently: a folder beats a file, else the newer wins."""
    if lo.kind == "dir" or r.kind == "dir":
        winner = Side.LOCAL if lo.kind == "dir" else Side.REMOTE
    else:
        winner = Side.LOCAL if lo.mtime_ns > r.mtime_ns else Side.REMOTE  # a tie: the server
    loser = r if winner is Side.LOCAL else lo
    if is_conflict_copy(path):
        return ConflictCopy(path, winner, None)
    by = me if winner is Side.REMOTE else (loser.by or "server")
    copy = conflict_name(path, loser.mtime_ns, by)
    n = 1
    while copy in taken:
        n += 1
        copy = conflict_name(path, loser.mtime_ns, f"{by}-{n}")
    taken.add(copy)
    return ConflictCopy(path, winner, copy)


def _renames(
    base: Mapping[str, Version],
    local: Mapping[str, Version],
    remote: Mapping[str, Version],
    plan: Plan,
) -> None:
    """A file renamed on one side and edited on the other: the edit goes to the new name."""
    for mine, theirs, out in (
        (local, remote, plan.rename_remote),
        (remote, local, plan.rename_local),
    ):
        gone: dict[str, list[str]] = {}  # content hash -> sources renamed away on this side
        for path, b in base.items():
            if b.kind == "file" and path not in mine and path in theirs:
                edit = theirs[path]
                if edit.kind == "file" and not edit.same(b):
                    gone.setdefault(b.content or "", []).append(path)
        if not gone:
            continue
        for path, v in sorted(mine.items()):
            if path in base or path in theirs or v.kind != "file":
                continue
            sources = gone.get(v.content or "")
            if sources:
                out.append((sources.pop(0), path))
    # the renamed path then takes the other side's edit
    for src, dest in plan.rename_remote:
        plan.pull[dest] = remote[src]
    for src, dest in plan.rename_local:
        plan.push[dest] = local[src]


def _keep_folders_with_content(
    local: Mapping[str, Version], remote: Mapping[str, Version], plan: Plan
) -> None:
    """A folder deleted on one side while content appeared under it on the other stays."""
    final = plan.final(local, remote)
    needed = {a for path in final for a in _ancestors(path)}
    for deletes, other, back in (
        (plan.pull, local, plan.push),
        (plan.push, remote, plan.pull),
    ):
        for path in [p for p, v in deletes.items() if v is None and p in needed]:
            kept = other.get(path)
            del deletes[path]
            if kept is not None and kept.kind == "dir":
                back[path] = kept  # made again on the side that deleted it
            else:
                back[path] = Version("dir")
