"""Conflict copies: their names (Syncthing's convention), finding them, and resolving one.

When two sides changed a file differently, the older edit is kept next to it as
``name.sync-conflict-YYYYMMDD-HHMMSS-<client>.ext``. Resolving keeps one version as the
file and moves the other into the versions folder, so nothing is lost either way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from homekeep.core.errors import InvalidInput, NotFound
from homekeep.sync.versions import preserve
from homekeep.sync.wire.folder import RESERVED

_MARK = re.compile(r"\.sync-conflict-\d{8}-\d{6}-[A-Za-z0-9_-]*?(?=\.[^./]*$|$)")


@dataclass(frozen=True, slots=True)
class ConflictFile:
    """A conflict copy and the file it is a copy of (both relative to the folder)."""

    path: str
    copy: str


def conflict_name(path: str, mtime_ns: int, by: str) -> str:
    """``dir/name.sync-conflict-YYYYMMDD-HHMMSS-<by>.ext`` (the time in UTC)."""
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem or not dot:  # no extension, or a dotfile such as .bashrc
        stem, ext = name, ""
    stamp = datetime.fromtimestamp(mtime_ns / 1e9, UTC).strftime("%Y%m%d-%H%M%S")
    who = re.sub(r"[^A-Za-z0-9_-]", "_", by)[:32] or "unknown"
    new = f"{stem}.sync-conflict-{stamp}-{who}" + (f".{ext}" if ext else "")
    return f"{folder}/{new}" if folder else new


def is_conflict_copy(path: str) -> bool:
    """Whether the last part of ``path`` is a conflict copy's name."""
    return _MARK.search(path.rpartition("/")[2]) is not None


def original_of(copy: str) -> str:
    """The path a conflict copy is a copy of."""
    folder, _, name = copy.rpartition("/")
    plain = _MARK.sub("", name, count=1)
    return f"{folder}/{plain}" if folder else plain


def listing(root: Path) -> list[ConflictFile]:
    """Every conflict copy under ``root`` (the folder's own files aside), by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in RESERVED]
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_conflict_copy(rel):
                found.append(ConflictFile(original_of(rel), rel))
    return sorted(found, key=lambda c: (c.path, c.copy))


def resolve(root: Path, *, keep: str | None = None, drop: str | None = None) -> str:
    """Keep a conflict copy as its file (``keep``) or remove it (``drop``); returns the file.

    Whatever is replaced or removed goes to the versions folder first.
    """
    if (keep is None) == (drop is None):
        raise InvalidInput("give exactly one of --keep COPY or --drop COPY")
    copy = str(keep or drop)
    known = {c.copy: c for c in listing(root)}
    if copy not in known:
        raise NotFound(f"{copy!r} is not a conflict copy in {root}; `sync conflicts` lists them")
    path = known[copy].path
    preserve(root, copy if drop else path)
    if drop:
        (root / copy).unlink()
    else:
        (root / copy).replace(root / path)
    return path
