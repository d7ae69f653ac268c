"""Walk the local folder: every file, folder and symlink with its stat, never following links."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from homekeep.sync.client.excludes import Excludes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Local:
    """One local path as it is now."""

    kind: str  # file, dir, link
    size: int
    mtime_ns: int
    mode: int
    inode: int
    target: str | None = None


def _entry(path: str, st: os.stat_result) -> Local | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Local("file", st.st_size, st.st_mtime_ns, stat.S_IMODE(mode), st.st_ino)
    if stat.S_ISDIR(mode):
        return Local("dir", 0, st.st_mtime_ns, stat.S_IMODE(mode), st.st_ino)
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)  # noqa: PTH115 - str paths keep the scan fast
            target.encode("utf-8")
        except (OSError, UnicodeEncodeError):
            return None
        return Local("link", 0, st.st_mtime_ns, 0, st.st_ino, target)
    return None  # sockets, fifos, devices are not synced


def _usable(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        log.warning("skipping %r: its name is not valid UTF-8", rel)
        return False
    if "\\" in rel:
        log.warning("skipping %r: backslashes in names are not portable", rel)
        return False
    return True


def scan(root: Path, excludes: Excludes, scope: Iterable[str] = ("",)) -> dict[str, Local]:
    """Return ``{relative path: Local}`` for the given scope (paths, '' for everything)."""
    found: dict[str, Local] = {}
    base = str(root)
    stack: list[str] = []
    for rel in scope:
        if rel == "":
            stack.append("")
            continue
        full = os.path.join(base, rel)  # noqa: PTH118
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if not _parents_ok(root, rel) or excludes.match(rel, is_dir=stat.S_ISDIR(st.st_mode)):
            continue
        entry = _entry(full, st)
        if entry is None or not _usable(rel):
            continue
        found[rel] = entry
        if entry.kind == "dir":
            stack.append(rel)
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(base, rel_dir) if rel_dir else base) as it:  # noqa: PTH118
                items = list(it)
        except OSError as exc:
            log.warning("cannot read folder %r: %s", rel_dir or ".", exc.strerror)
            continue
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if excludes.match(rel, is_dir=is_dir) or not _usable(rel):
                continue
            entry = _entry(item.path, st)
            if entry is None:
                continue
            found[rel] = entry
            if is_dir:
                stack.append(rel)
    return found


def _parents_ok(root: Path, rel: str) -> bool:
    """A scoped path counts only if every folder above it is a real, included folder."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            if not stat.S_ISDIR(current.lstat().st_mode):
                return False
        except OSError:
            return False
    return True
