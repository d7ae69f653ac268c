"""Look inside a local backup (a mirror or one snapshot) and restore one file or folder from it.

A client names what it wants as a path relative to the backup, which must stay inside
it: no ``..``, and no link followed out of it (a backup holds the source's links as
links, and one may point anywhere). A restore writes only into a folder the roots
allow, never into the backup itself, and never over the job's source unless asked.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homekeep.backup import retention
from homekeep.backup.config import BackupConfig, JobSpec
from homekeep.backup.restore import backup_location, one_line
from homekeep.backup.roots import Roots
from homekeep.backup.targets import Target, resolve
from homekeep.core.errors import Conflict, ExternalToolError, InvalidInput, NotFound, UsageError
from homekeep.core.tools import require_tool

MAX_PATH = 4096
MAX_ENTRIES = 2000  # listed per folder; the rest is counted, not sent
MIRROR = ""  # the snapshot name that means "the mirror itself"


def _local(job: JobSpec, config: BackupConfig) -> Target:
    target = resolve(job, config)
    if not target.is_local:
        raise UsageError(
            f"job {job.name} backs up to {target.location}; only a local or mounted backup "
            "can be browsed here (restore a remote one with 'homekeep backup restore')"
        )
    return target


def snapshots(job: JobSpec, config: BackupConfig) -> list[str]:
    """What can be browsed, newest first: the snapshot names, or ``[""]`` for a mirror."""
    target = _local(job, config)
    if job.method != "snapshot":
        return [MIRROR] if target.path.is_dir() else []
    names = retention.snapshots(target.path) if target.path.is_dir() else []
    return names[::-1]


def relative_parts(path: str) -> list[str]:
    """The components of a client's relative path; 422 for one that could leave its root."""
    if len(path) > MAX_PATH:
        raise InvalidInput(f"path is longer than {MAX_PATH} characters")
    if "\x00" in path:
        raise InvalidInput("path contains a NUL character")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput("path may not contain '..'")
    return parts


@dataclass(frozen=True)
class Located:
    """A path inside a backup: the backup's root folder and the item (both real paths)."""

    root: Path
    item: Path
    parts: tuple[str, ...]


def locate(job: JobSpec, config: BackupConfig, snapshot: str, path: str) -> Located:
    """Find ``path`` inside the mirror (``snapshot`` "") or a snapshot; 404 when missing."""
    parts = relative_parts(path)
    target = _local(job, config)
    root = Path(backup_location(job, target, snapshot or None))
    real_root = Path(os.path.realpath(root))
    item = real_root
    if parts:
        # The folders on the way are followed, and must stay inside the backup; the
        # last part may be a link (it is restored as the link it is).
        parent = Path(os.path.realpath(real_root.joinpath(*parts[:-1])))
        if parent != real_root and real_root not in parent.parents:
            raise NotFound(f"{path!r} is not inside the backup")
        item = parent / parts[-1]
    if not os.path.lexists(item):
        raise NotFound(f"{path or '/'} is not in this backup")
    return Located(real_root, item, tuple(parts))


def listing(job: JobSpec, config: BackupConfig, snapshot: str, path: str) -> dict[str, Any]:
    """One folder of a backup: its entries (folders first), at most MAX_ENTRIES of them."""
    found = locate(job, config, snapshot, path)
    if not found.item.is_dir() or found.item.is_symlink():
        raise UsageError(f"{path} is a file, not a folder")
    entries: list[dict[str, Any]] = []
    total = 0
    with os.scandir(found.item) as scan:
        for entry in scan:
            total += 1
            if len(entries) >= MAX_ENTRIES:
                continue
            info = entry.stat(follow_symlinks=False)
            kind = (
                "link"
                if stat.S_ISLNK(info.st_mode)
                else "dir"
                if stat.S_ISDIR(info.st_mode)
                else "file"
            )
            entries.append(
                {"name": entry.name, "kind": kind, "size": info.st_size, "mtime": info.st_mtime}
            )
    entries.sort(key=lambda e: (e["kind"] != "dir", e["name"]))
    return {
        "snapshot": snapshot,
        "path": "/".join(found.parts),
        "entries": entries,
        "total": total,
        "truncated": total > len(entries),
    }


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def restore_item(
    job: JobSpec,
    config: BackupConfig,
    roots: Roots,
    *,
    snapshot: str,
    path: str,
    dest: str,
    overwrite: bool,
    into_source: bool,
) -> Path:
    """Copy one file or folder of a backup into the folder ``dest``; return what was written.

    A new item is copied beside its place and renamed into it when complete, so a
    failed restore leaves nothing half-written; ``overwrite`` merges into an existing
    one instead (changed files replaced, nothing deleted).
    """
    if not dest.startswith("/") or "\x00" in dest or len(dest) > MAX_PATH:
        raise InvalidInput("the destination must be an absolute folder path")
    found = locate(job, config, snapshot, path)
    folder = Path(os.path.realpath(dest))
    roots.check_restore(folder)
    name = found.parts[-1] if found.parts else (snapshot or job.name)
    result = folder / name
    backup = Path(os.path.realpath(resolve(job, config).path))
    if _overlaps(result, backup):
        raise InvalidInput(f"{dest} is inside the backup of {job.name}; restore somewhere else")
    if _overlaps(result, Path(os.path.realpath(job.source))) and not into_source:
        raise InvalidInput(
            f"{result} is in the source of {job.name} ({job.source}); restoring there "
            "overwrites the files you have now: choose another folder, or say so explicitly"
        )
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{dest} exists and is not a folder")
    if os.path.lexists(result) and not overwrite:
        raise Conflict(f"{result} exists; choose another folder, or allow overwriting")
    folder.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(result):
        _rsync(found.item, result)
        return result
    staging = folder / f".{name}.restoring-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        _rsync(found.item, staging / name)
        (staging / name).rename(result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _rsync(item: Path, copy: Path) -> None:
    """Make ``copy`` a copy of ``item`` (a file, a link, or a folder) with rsync -a."""
    pair = [str(item), str(copy)]
    if item.is_dir() and not item.is_symlink():
        pair = [str(item) + "/", str(copy) + "/"]
    cmd = [require_tool("rsync"), "-a", *pair]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=24 * 3600, check=False)
    if done.returncode != 0:
        raise ExternalToolError(f"restore failed: {one_line(done.stderr)}")
