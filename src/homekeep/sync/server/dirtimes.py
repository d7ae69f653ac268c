"""Folder times: adding, removing or renaming an entry moves its folder's mtime, so after
each batch of changes the folders around them get the mtimes the client recorded."""

from __future__ import annotations

import logging
import os
import stat

from homekeep.core.errors import Conflict, InvalidInput
from homekeep.sync.server import fsops
from homekeep.sync.store import ServerIndex

log = logging.getLogger(__name__)


def restore(
    index: ServerIndex, tree: fsops.Tree, client: str, changed: list[str], *, top: bool = False
) -> None:
    """Give the folders around ``changed`` paths of ``client`` (in ``tree``) their mtimes.

    The changed paths that are folders themselves and every folder above them get their
    recorded mtime back, deepest first (a folder's own utime does not touch its parent),
    and the client's folder itself last (with ``top``, or when a changed path is right
    in it).
    """
    if top or any("/" not in path for path in changed):
        _restore_top(index, tree, client)
    folders: set[str] = set()
    for path in changed:
        folders.add(path)
        while "/" in path:
            path = path.rpartition("/")[0]
            if path in folders:
                break
            folders.add(path)
    if not folders:
        return
    times = index.dir_times(client, sorted(folders))
    for path, mtime_ns in sorted(times, key=lambda t: t[0].count("/"), reverse=True):
        try:
            st = tree.lstat(path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                tree.utime(path, mtime_ns)
        except (OSError, InvalidInput, Conflict) as exc:
            log.debug("cannot set the mtime of %s: %s", path, exc)


def _restore_top(index: ServerIndex, tree: fsops.Tree, client: str) -> None:
    top = index.top(client)
    if top is None:
        return
    try:
        os.utime(tree.base, ns=(top[1], top[1]), follow_symlinks=False)
    except OSError as exc:
        log.debug("cannot set the mtime of %s's folder: %s", client, exc)
