"""Filesystem steps the server takes: safe path resolution, atomic writes, reflink copies."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import stat
from pathlib import Path

from blake3 import blake3

from homekeep.core.errors import Conflict, InvalidInput

FICLONE = 0x40049409  # linux/fs.h: share the source's blocks (btrfs, xfs); else we copy
MODE_MASK = 0o1777  # permission bits and sticky; setuid/setgid are never applied


def resolve(base: Path, rel: str) -> Path:
    """Return ``base/rel`` if no existing parent of it is a symlink or a non-directory.

    ``rel`` was checked by protocol.check_path; this refuses walking through a symlink
    that already exists on the server (the client's own links are stored, never followed).
    """
    current = base
    parts = rel.split("/")
    for part in parts[:-1]:
        current = current / part
        try:
            st = current.lstat()
        except FileNotFoundError:
            return base.joinpath(*parts)
        if stat.S_ISLNK(st.st_mode):
            raise InvalidInput(f"path {rel!r} goes through a symlink on the server")
        if not stat.S_ISDIR(st.st_mode):
            raise Conflict(f"path {rel!r} goes through {part!r}, which is not a folder")
    return base.joinpath(*parts)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> bool:
    """Remove a file, link or folder tree at ``path``; return whether something was there."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def make_parents(base: Path, target: Path) -> None:
    """Create the folders above ``target`` (inside ``base``), replacing files in the way."""
    parent = target.parent
    chain = []
    while parent != base and parent != parent.parent:
        chain.append(parent)
        parent = parent.parent
    for folder in reversed(chain):
        try:
            st = folder.lstat()
        except FileNotFoundError:
            folder.mkdir()
            continue
        if not stat.S_ISDIR(st.st_mode):
            folder.unlink()
            folder.mkdir()


def place(tmp: Path, base: Path, target: Path, *, sync: bool = True, parents: bool = True) -> None:
    """Rename a finished temp file over ``target`` atomically (a folder there is replaced).

    ``parents=False`` when the caller knows the folders above ``target`` are there.
    """
    if parents:
        make_parents(base, target)
    try:
        tmp.replace(target)
    except IsADirectoryError:  # a folder is where the file goes: the file wins
        remove(target)
        tmp.replace(target)
    if sync:
        fsync_dir(target.parent)


def finish(fd: int, *, mode: int, mtime_ns: int) -> None:
    """Give a written temp file its mode and mtime (made durable later by sync_files)."""
    os.fchmod(fd, mode & MODE_MASK)
    os.utime(fd, ns=(mtime_ns, mtime_ns))


_libc = ctypes.CDLL(None, use_errno=True)
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now, without waiting for it.

    Called while a big upload arrives, so the fsync at the end has little left to do.
    """
    func = getattr(_libc, "sync_file_range", None)
    if func is not None:
        func(fd, ctypes.c_int64(offset), ctypes.c_int64(length), _SYNC_FILE_RANGE_WRITE)


def sync_files(paths: list[Path]) -> None:
    """Make written files durable before they are renamed into place.

    A few files get an fsync each; a batch gets one syncfs of their filesystem, a group
    commit that costs one journal flush instead of one per file.
    """
    if len(paths) <= 4:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    fd = os.open(paths[0].parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def clone(src: Path, fd_dst: int) -> None:
    """Copy ``src`` into the open file ``fd_dst``: a reflink where possible, else in-kernel."""
    with src.open("rb") as fh:
        try:
            fcntl.ioctl(fd_dst, FICLONE, fh.fileno())
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                raise
        size = os.fstat(fh.fileno()).st_size
        offset = 0
        while offset < size:
            sent = os.copy_file_range(fh.fileno(), fd_dst, size - offset, offset, offset)
            if sent == 0:
                break
            offset += sent


def content_hash(path: Path) -> str:
    """BLAKE3 of a file's content, read in 4 MiB blocks (the whole-file id of protocol v1)."""
    whole = blake3()
    with path.open("rb", buffering=0) as fh:
        while block := fh.read(4 << 20):
            whole.update(block)
    return whole.hexdigest()
