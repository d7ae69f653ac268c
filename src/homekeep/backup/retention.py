"""Snapshot folders: naming, the newest complete one, and keep-last/daily/weekly/monthly."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from homekeep.backup.config import JobSpec

STAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
_STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}Z(?:-\d+)?$")
PARTIAL = ".partial"


def order(name: str) -> tuple[str, int]:
    """Sort key of a snapshot name: its time, then its number within that second.

    Plain string order would put ``...Z-10`` before ``...Z-2``.
    """
    base, _, number = name.removesuffix(PARTIAL).partition("Z-")
    return (base.removesuffix("Z"), int(number) if number else 1)


def new_stamp(root: Path, now: datetime | None = None) -> str:
    """A snapshot name for now that sorts after every snapshot taken in the same second.

    Reusing a number retention freed would make the newest snapshot sort as the oldest,
    and the next prune would delete it.
    """
    base = (now or datetime.now(UTC)).strftime(STAMP_FORMAT)
    taken = (
        [
            order(p.name)[1]
            for p in root.glob(f"{base}*")
            if _STAMP_RE.match(p.name.removesuffix(PARTIAL))
        ]
        if root.is_dir()
        else []
    )
    if not taken:
        return base
    return f"{base}-{max(taken) + 1}"


def snapshots(root: Path) -> list[str]:
    """Complete snapshots in ``root``, oldest first."""
    if not root.is_dir():
        return []
    names = (p.name for p in root.iterdir() if _STAMP_RE.match(p.name) and p.is_dir())
    return sorted(names, key=order)


def partials(root: Path) -> list[Path]:
    """Snapshots left unfinished by an interrupted run."""
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.name.endswith(PARTIAL) and _STAMP_RE.match(p.name[:-8])),
        key=lambda p: order(p.name),
    )


def stamp_time(name: str) -> datetime:
    """The UTC time a snapshot name stands for."""
    return datetime.strptime(name[:18], STAMP_FORMAT).replace(tzinfo=UTC)


def to_keep(names: list[str], job: JobSpec) -> set[str]:
    """The snapshots the retention rules keep (all of them when no rule is set)."""
    if not names:
        return set()
    if not (job.keep_last or job.keep_daily or job.keep_weekly or job.keep_monthly):
        return set(names)
    newest_first = sorted(names, key=order, reverse=True)
    keep = {newest_first[0]}
    keep.update(newest_first[: job.keep_last])
    for count, period in (
        (job.keep_daily, "%Y-%m-%d"),
        (job.keep_weekly, "%G-W%V"),
        (job.keep_monthly, "%Y-%m"),
    ):
        seen: list[str] = []
        for name in newest_first:
            key = stamp_time(name).strftime(period)
            if key not in seen:
                if len(seen) >= count:
                    break
                seen.append(key)
                keep.add(name)
    return keep


def prune(root: Path, job: JobSpec) -> tuple[list[str], int]:
    """Delete the snapshots retention drops; return their names and the bytes freed."""
    names = snapshots(root)
    keep = to_keep(names, job)
    removed: list[str] = []
    freed = 0
    for name in names:
        if name in keep:
            continue
        freed += unique_bytes(root / name)
        shutil.rmtree(root / name)
        removed.append(name)
    return removed, freed


def unique_bytes(path: Path) -> int:
    """Bytes of files under ``path`` with no other hard link: what deleting it frees."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            st = os.lstat(f"{dirpath}/{name}")
            if st.st_nlink == 1:
                total += st.st_size
    return total


def tree_size(path: Path) -> tuple[int, int]:
    """Bytes and files under ``path``, counting each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.lstat(f"{dirpath}/{name}")
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
            files += 1
    return total, files
