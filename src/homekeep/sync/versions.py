"""The versions folder: what a delete or an overwrite replaced, kept instead of unlinked.

Both sides of a shared folder call :func:`preserve` before they delete or overwrite a
file that came from elsewhere. The old file is hard-linked (copied where links are not
possible) to ``.homekeep-versions/<dir>/<name>~YYYYMMDD-HHMMSS.<ext>``, Syncthing's
naming, so it costs no space until the original's blocks are freed. Versions older than
``[sync] keep_versions_days`` are pruned; ``homekeep sync versions`` lists and restores.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homekeep.core.errors import InvalidInput, NotFound
from homekeep.sync.wire.folder import VERSIONS

_STAMP = "%Y%m%d-%H%M%S"
_NAME_RE = re.compile(r"^(?P<stem>.*)~(?P<stamp>\d{8}-\d{6})(?:-(?P<n>\d+))?(?P<ext>\.[^./]*)?$")


@dataclass(frozen=True, slots=True)
class Kept:
    """One kept version: the path it had, when it was replaced, and where it is kept."""

    path: str
    replaced_at: datetime
    version: str  # relative to the folder, under .homekeep-versions/
    size: int


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not stem or not dot:
        return name, ""
    return stem, "." + ext


def version_name(rel: str, when: datetime, n: int = 1) -> str:
    """Where ``rel`` replaced at ``when`` is kept, relative to the folder."""
    folder, _, name = rel.rpartition("/")
    stem, ext = _split(name)
    suffix = f"-{n}" if n > 1 else ""
    kept = f"{stem}~{when.astimezone(UTC).strftime(_STAMP)}{suffix}{ext}"
    return f"{VERSIONS}/{folder}/{kept}" if folder else f"{VERSIONS}/{kept}"


def _real_dirs(root: Path, rel: str) -> bool:
    """Every folder above ``rel`` is a real folder, not a link (a kept path never escapes)."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            if not stat.S_ISDIR(current.lstat().st_mode):
                return False
        except OSError:
            return False
    return True


def preserve(root: Path, rel: str, *, when: datetime | None = None) -> list[str]:
    """Keep what is at ``rel`` (a file, a link or a whole folder) in the versions folder.

    Returns the kept paths (relative to ``root``); nothing when ``rel`` does not exist.
    A kept file shares the original's inode, so the caller replaces (renames over) or
    unlinks the original right after, never writes into it.
    """
    when = when or datetime.now(UTC)
    if not _real_dirs(root, rel):
        return []
    full = root / rel
    try:
        st = full.lstat()
    except FileNotFoundError:
        return []
    if stat.S_ISDIR(st.st_mode):
        kept: list[str] = []
        for child in sorted(p.name for p in full.iterdir()):
            kept += preserve(root, f"{rel}/{child}", when=when)
        return kept
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return []
    n = 1
    while True:
        name = version_name(rel, when, n)
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            _link_or_copy(full, dest)
        except FileExistsError:
            n += 1
            continue
        return [name]


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        if src.is_symlink():
            dest.symlink_to(src.readlink())
            return
        tmp = dest.with_name(dest.name + ".part")
        shutil.copy2(src, tmp, follow_symlinks=False)
        try:
            os.link(tmp, dest)
        finally:
            tmp.unlink()


def listing(root: Path, under: str = "") -> list[Kept]:
    """Every kept version (of paths at or under ``under``), newest first."""
    base = root / VERSIONS
    found: list[Kept] = []
    for folder, _dirs, files in os.walk(base):
        rel_dir = Path(folder).relative_to(base).as_posix()
        for name in files:
            m = _NAME_RE.match(name)
            if m is None:
                continue
            original = m["stem"] + (m["ext"] or "")
            path = original if rel_dir == "." else f"{rel_dir}/{original}"
            if under and path != under and not path.startswith(under.rstrip("/") + "/"):
                continue
            when = datetime.strptime(m["stamp"], _STAMP).replace(tzinfo=UTC)
            version = f"{VERSIONS}/{name}" if rel_dir == "." else f"{VERSIONS}/{rel_dir}/{name}"
            with contextlib.suppress(OSError):
                size = (base / rel_dir / name).lstat().st_size
                found.append(Kept(path, when, version, size))
    found.sort(key=lambda k: (k.replaced_at, k.version), reverse=True)
    return found


def restore(root: Path, version: str) -> str:
    """Put a kept version back at its path (keeping what is there now first); returns the path."""
    match = {k.version: k for k in listing(root)}.get(version)
    if match is None:
        raise NotFound(f"no kept version {version!r}; `homekeep sync versions` lists them")
    if not _real_dirs(root, match.path):
        raise InvalidInput(f"cannot restore {match.path!r}: a folder above it is not a folder")
    target = root / match.path
    target.parent.mkdir(parents=True, exist_ok=True)
    preserve(root, match.path)
    tmp = target.with_name(f".{target.name}.homekeep-restore")
    tmp.unlink(missing_ok=True)
    shutil.copy2(root / version, tmp, follow_symlinks=False)
    tmp.replace(target)
    return match.path


def prune(root: Path, keep_days: float, *, now: datetime | None = None) -> int:
    """Remove versions replaced over ``keep_days`` ago, and emptied folders; returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    removed = 0
    for kept in listing(root):
        if kept.replaced_at < cutoff:
            with contextlib.suppress(FileNotFoundError):
                (root / kept.version).unlink()
                removed += 1
    base = root / VERSIONS
    for folder, _dirs, _files in sorted(os.walk(base), key=lambda w: -len(w[0])):
        if Path(folder) != base:
            with contextlib.suppress(OSError):
                Path(folder).rmdir()  # only when empty
    return removed
