"""The files on disk: walking the roots, and comparing them with what the library knows.

No database here: the store loads what the library knows, this module compares.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homekeep.music.kinds import extension, kind_of

if TYPE_CHECKING:
    from homekeep.core.progress import Task  # rich: not for the worker processes


@dataclass
class Seen:
    """A file found on disk in this scan."""

    root_id: int
    rel: str
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    id: int = 0
    known: bool = False
    ext: str = field(init=False)
    dir: str = field(init=False)

    def __post_init__(self) -> None:
        self.dir, _, name = self.rel.rpartition("/")
        self.ext = extension(name)


def walk(
    root_id: int, root: Path, bar: Task, unreadable: list[tuple[int, str]]
) -> Iterator[tuple[int, str, str]]:
    """Yield (root id, relative path, full path) of every file; hidden entries skipped.

    Folders that exist but cannot be listed go to ``unreadable``: what the library
    knows under them is kept, not taken for deleted.
    """
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            continue  # vanished during the scan: its files are simply gone
        except OSError:
            unreadable.append((root_id, prefix))
            continue
        files = []
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            if not name.isascii():
                name = storable(name)
            rel = prefix + name
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                    continue
            except OSError:
                continue
            files.append((root_id, rel, entry.path))
        bar.advance(len(files))
        yield from files


@dataclass
class Comparison:
    """Files on disk compared with the library: only new and changed ones become objects."""

    new: list[Seen] = field(default_factory=list)
    changed: list[Seen] = field(default_factory=list)
    reread: list[Seen] = field(default_factory=list)  # unchanged, read again by --full
    unchanged: int = 0
    files: int = 0
    audio: int = 0


def compare(
    entries: list[tuple[int, str, str]],
    known: dict[tuple[int, str], tuple[Any, ...]],
    full: bool,
    bar: Task,
) -> Comparison:
    """Stat every entry once and compare it with ``known`` (popping what is found)."""
    found = Comparison()
    stat = os.stat
    is_reg = stat_module.S_ISREG
    pop = known.pop
    unchanged = files = known_audio = 0
    for n, (root_id, rel, path) in enumerate(entries, 1):
        if n % 4096 == 0:
            bar.advance(4096)
        try:
            st = stat(path)
        except OSError:
            continue  # vanished since the walk, or a dangling link
        if not is_reg(st.st_mode):
            continue
        files += 1
        old = pop((root_id, rel), None)
        if old is not None and old[1] == st.st_size and old[2] == st.st_mtime_ns:
            unchanged += 1
            if old[4] == "audio":
                known_audio += 1
                if full:
                    item = Seen(root_id, rel, path, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                st.st_ino, old[0], True)  # fmt: skip
                    found.reread.append(item)
            continue
        item = Seen(root_id, rel, path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if old is None:
            found.new.append(item)
        else:
            item.id, item.known = old[0], True
            found.changed.append(item)
    bar.advance(len(entries) % 4096)
    found.unchanged, found.files = unchanged, files
    found.audio = known_audio + sum(
        1 for s in (*found.new, *found.changed) if kind_of(s.ext) == "audio"
    )
    return found


def storable(name: str) -> str:
    """Return a file name SQLite can store: bytes that are not UTF-8 become \\x escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name
