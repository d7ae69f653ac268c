"""Filesystem steps the server takes: trees walked by descriptor, atomic writes, reflinks."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from homekeep.core.errors import Conflict, InvalidInput
from homekeep.sync.versions import preserve

FICLONE = 0x40049409  # linux/fs.h: share the source's blocks (btrfs, xfs); else we copy
# a folder, opened only to name things in it (no read permission needed), never a symlink
_FOLDER = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
HELD = 64  # folders a Tree keeps open between operations
NEW_FOLDER_MODE = 0o755  # a folder made on the way to a path (its own mkdir op follows)


class Tree:
    """A client's folder on the server, changed only through folder file descriptors.

    Each folder on a path is opened relative to the one above it with O_NOFOLLOW, and a
    change is made relative to the last one (mkdirat, renameat, unlinkat, fchmod through
    /proc/self/fd, utimensat without following). Checking a path and then using it by
    name would let a local user who swaps a folder for a symlink in between send the
    server's write anywhere; here a symlink is never walked through, so whatever happens
    meanwhile, the server only acts in folders it reached from the root.

    ``pause`` (for tests) is called with each path once its folder is open and before
    it is changed: the moment a swapped folder would have mattered. A Tree belongs to one
    thread; its open folders are closed by ``close``.
    """

    def __init__(
        self,
        base: Path,
        *,
        pause: Callable[[str], None] | None = None,
        keep_versions: bool = False,
    ) -> None:
        self.base = base
        self._pause = pause
        # a shared folder: what a change replaces or removes goes to its versions folder
        self.keep_versions = keep_versions
        self._root = os.open(base, _FOLDER)
        self._held: OrderedDict[str, int] = OrderedDict()  # folder path -> descriptor

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.forget()
        os.close(self._root)

    def forget(self, under: str | None = None) -> None:
        """Close the folders held open (those at or under ``under``, or all): a rename or
        removal there means their descriptors no longer stand for those paths."""
        for rel in list(self._held):
            if under is None or rel == under or rel.startswith(under + "/"):
                os.close(self._held.pop(rel))

    def _trim(self) -> None:
        """Keep at most HELD folders open; only between operations, never inside one."""
        while len(self._held) > HELD:
            os.close(self._held.popitem(last=False)[1])

    def folder(self, head: str, *, create: bool = False, path: str | None = None) -> int:
        """A descriptor of the folder ``head`` ("": the base); missing folders are made
        with ``create``, else FileNotFoundError. ``path`` names the op in errors."""
        if not head:
            return self._root
        held = self._held.get(head)
        if held is not None:
            self._held.move_to_end(head)
            return held
        parts = head.split("/")
        start, fd = 0, self._root
        for i in range(len(parts) - 1, 0, -1):  # from the deepest folder held open
            above = self._held.get("/".join(parts[:i]))
            if above is not None:
                start, fd = i, above
                break
        owned = False
        try:
            for part in parts[start:]:
                step = _open_folder(fd, part, create=create, path=path or head)
                if owned:
                    os.close(fd)
                fd, owned = step, True
        except BaseException:
            if owned:
                os.close(fd)
            raise
        self._held[head] = fd
        return fd

    def _parent(self, rel: str, *, create: bool = False) -> tuple[int, str]:
        """The open folder ``rel`` is in, and its name there; ``pause`` runs now."""
        head, _, name = rel.rpartition("/")
        fd = self.folder(head, create=create, path=rel)
        if self._pause is not None:
            self._pause(rel)
        return fd, name

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry at ``rel`` (a link as itself), or None when it or a folder is missing."""
        self._trim()
        try:
            fd, name = self._parent(rel)
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open(self, rel: str, flags: int) -> int:
        """Open the file at ``rel``; a symlink there is refused (ELOOP), not followed."""
        self._trim()
        fd, name = self._parent(rel)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)

    def mkdir(self, rel: str, mode: int) -> bool:
        """Make the folder ``rel`` with ``mode`` (a file or link there is replaced); return
        whether it is new."""
        self._trim()
        fd, name = self._parent(rel, create=True)
        try:
            was_folder = stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            was_folder = None
        if was_folder is False:
            os.unlink(name, dir_fd=fd)
        if not was_folder:
            os.mkdir(name, 0o700, dir_fd=fd)  # no one else's until its mode is set
        _chmod_in(fd, name, mode)
        return not was_folder

    def chmod(self, rel: str, mode: int) -> None:
        """Set the mode of the file or folder at ``rel`` (a link there is left alone)."""
        self._trim()
        _chmod_in(*self._parent(rel), mode)

    def utime(self, rel: str, mtime_ns: int) -> None:
        """Set the mtime at ``rel`` (of a link itself, never what it points to)."""
        self._trim()
        fd, name = self._parent(rel)
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=fd, follow_symlinks=False)

    def place(self, tmp: Path, rel: str) -> None:
        """Rename a finished temp file (or link) over ``rel``; a folder there is replaced."""
        self._trim()
        fd, name = self._parent(rel, create=True)
        self._keep(rel)
        try:
            os.rename(tmp, name, dst_dir_fd=fd)
        except IsADirectoryError:  # a folder is where the file goes: the file wins
            self._remove_in(fd, name, rel)
            os.rename(tmp, name, dst_dir_fd=fd)

    def remove(self, rel: str) -> bool:
        """Remove the file, link or folder tree at ``rel``; return whether one was there."""
        self._trim()
        try:
            fd, name = self._parent(rel)
        except FileNotFoundError:
            return False
        self._keep(rel)
        return self._remove_in(fd, name, rel)

    def _keep(self, rel: str) -> None:
        """Keep what is at ``rel`` in the versions folder before it is replaced or removed
        (the caller holds the folder's lock and has walked ``rel``'s folders by descriptor)."""
        if self.keep_versions:
            preserve(self.base, rel)

    def _remove_in(self, folder: int, name: str, rel: str) -> bool:
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return False
        self.forget(rel)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=folder)  # itself walks by descriptors, never links
        else:
            os.unlink(name, dir_fd=folder)
        return True

    def rename(self, src: str, dest: str, *, replace_any: bool) -> None:
        """Move ``src`` to ``dest`` (neither inside the other); what is at ``dest`` goes
        first if it is a folder or ``replace_any`` (a folder moved over a file)."""
        self._trim()
        src_head, _, src_name = src.rpartition("/")
        src_fd = self.folder(src_head, path=src)
        dest_fd, dest_name = self._parent(dest, create=True)
        try:
            st = os.stat(dest_name, dir_fd=dest_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            self._keep(dest)
        if st is not None and (replace_any or stat.S_ISDIR(st.st_mode)):
            self._remove_in(dest_fd, dest_name, dest)
        self.forget(src)
        os.rename(src_name, dest_name, src_dir_fd=src_fd, dst_dir_fd=dest_fd)

    def fsync(self, head: str) -> None:
        """Make the renames and removals in folder ``head`` durable."""
        self._trim()
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.folder(head))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _chmod_in(folder: int, name: str, mode: int) -> None:
    """Set the mode of ``name`` in ``folder``, unless it is a symlink."""
    # Linux has no chmod that refuses to follow a link (fchmodat ignores the flag), so
    # the entry itself is opened as a path and changed through /proc, as glibc does
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    try:
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            Path(f"/proc/self/fd/{fd}").chmod(mode)
    finally:
        os.close(fd)


def _open_folder(parent: int, name: str, *, create: bool, path: str) -> int:
    """Open the folder ``name`` in ``parent``, never through a symlink."""
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except NotADirectoryError:
        _not_a_folder(parent, name, path)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):  # made by someone else meanwhile: fine
        os.mkdir(name, NEW_FOLDER_MODE, dir_fd=parent)
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except NotADirectoryError:
        _not_a_folder(parent, name, path)


def _not_a_folder(parent: int, name: str, path: str) -> NoReturn:
    if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
        raise InvalidInput(f"path {path!r} goes through a symlink on the server")
    raise Conflict(f"path {path!r} goes through {name!r}, which is not a folder")


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> bool:
    """Remove a file, link or folder tree at ``path`` (in the server's own state folder)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def finish(fd: int, *, mode: int, mtime_ns: int) -> None:
    """Give a written temp file its mode and mtime (made durable later by sync_files)."""
    os.fchmod(fd, mode)
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


def clone(fd_src: int, fd_dst: int) -> None:
    """Copy the open file ``fd_src`` into ``fd_dst``: a reflink where possible, else
    in-kernel."""
    try:
        fcntl.ioctl(fd_dst, FICLONE, fd_src)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
            raise
    size = os.fstat(fd_src).st_size
    offset = 0
    while offset < size:
        sent = os.copy_file_range(fd_src, fd_dst, size - offset, offset, offset)
        if sent == 0:
            break
        offset += sent
