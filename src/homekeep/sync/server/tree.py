"""Tree operations on a client's folder: folders, links, deletes, renames, the folder's own
mode and mtime. Each changes the disk through folder descriptors, then the index."""

from __future__ import annotations

import contextlib
import os
import stat

from homekeep.core.errors import HomekeepError, InvalidInput
from homekeep.sync.server.target import Target


def set_top(target: Target, client: str, mode: int, mtime_ns: int) -> None:
    """Record the mode and mtime of the client's folder itself and apply them."""
    base = target.client_dir(client)
    base.mkdir(exist_ok=True)
    base.chmod(mode & target.mode_mask)
    target.index.set_top(client, mode, mtime_ns)


def mkdir(target: Target, client: str, path: str, mode: int, mtime_ns: int | None = None) -> None:
    """Create or update a folder; its mtime is applied by ``restore_dir_times``."""
    with target.tree(client) as tree:
        created = tree.mkdir(path, mode & target.mode_mask)
    target.index.record_dir(client, path, mode, mtime_ns, created)


def touch_dirs(
    target: Target, client: str, folders: list[tuple[str, int, int | None]]
) -> list[tuple[str, int, int | None]]:
    """Record the new mtimes of (path, mode, mtime_ns) folders that are already there
    with that mode, in one transaction; return the others, for ``mkdir`` one by one.

    A release upgrade of a source tree moves the mtime of thousands of folders: this
    costs one lstat and one row each (their times are applied by ``restore_dir_times``,
    which walks each path by folder descriptors), not a walk, a chmod and a transaction each.
    """
    columns = "id, path, kind, mode"
    rows = {
        row["path"]: row
        for row in target.index.entries_at(client, [f[0] for f in folders], columns)
    }
    quick: list[tuple[int, int]] = []
    rest = []
    with target.tree(client) as tree:
        for path, mode, mtime_ns in folders:
            row = rows.get(path)
            if row is not None and row["kind"] == "dir" and row["mode"] == mode and mtime_ns:
                try:
                    st = tree.lstat(path)
                except (OSError, HomekeepError):  # a file or a link on the way
                    st = None
                if (
                    st is not None
                    and stat.S_ISDIR(st.st_mode)
                    and stat.S_IMODE(st.st_mode) == mode & target.mode_mask
                ):
                    quick.append((mtime_ns, int(row["id"])))
                    continue
            rest.append((path, mode, mtime_ns))
    if quick:
        target.index.record_dir_times(client, quick)
    return rest


def symlink(target: Target, client: str, path: str, link_target: str, mtime_ns: int) -> None:
    if "\x00" in link_target or not link_target or len(link_target) > 4096:
        raise InvalidInput(f"invalid symlink target for {path!r}")
    with target.tree(client) as tree:
        tree.lstat(path)  # a symlink or a file on the way: refused before anything
        tmp = target.temp_name()
        tmp.symlink_to(link_target)
        try:
            with contextlib.suppress(NotImplementedError, OSError):
                os.utime(tmp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
            tree.place(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        tree.fsync(path.rpartition("/")[0])
    target.index.record_link(client, path, link_target, mtime_ns)


def delete(target: Target, client: str, path: str) -> bool:
    with target.tree(client) as tree:
        removed = tree.remove(path)
    target.index.record_delete(client, path)
    return removed


def rename(target: Target, client: str, path: str, dest: str) -> bool:
    """Rename a file or folder; return False if the source is not there (client re-sends)."""
    entry = target.index.entry(client, path)
    with target.tree(client) as tree:
        tree.lstat(dest)  # a symlink or a file on the way: refused before anything
        if entry is None or tree.lstat(path) is None:
            return False
        if dest == path or dest.startswith(path + "/"):
            raise InvalidInput(f"cannot move {path!r} into itself ({dest!r})")
        if path.startswith(dest + "/"):  # over a folder it is in: sent again instead
            return False
        tree.rename(path, dest, replace_any=entry["kind"] == "dir")
        tree.fsync(dest.rpartition("/")[0])
    target.index.record_rename(client, path, dest, int(entry["size"]))
    return True
