"""Drive statistics: free space, and a read/write speed test the page cache cannot flatter."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024


def usage(path: Path) -> dict[str, int]:
    """Total, used and free bytes of the file system holding ``path``."""
    du = shutil.disk_usage(path)
    return {"total": du.total, "used": du.used, "free": du.free}


def speed_test(directory: Path, size: int = 64 * CHUNK) -> dict[str, Any]:
    """Write ``size`` bytes with fsync, drop them from the page cache, read them back.

    The cache is dropped with posix_fadvise(DONTNEED) after the fsync, so the read comes
    from the device, not from memory.
    """
    if size < CHUNK:
        size = CHUNK
    block = os.urandom(CHUNK)
    path = directory / f".homekeep-speedtest-{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            start = time.perf_counter()
            written = 0
            while written < size:
                written += os.write(fd, block)
            os.fsync(fd)
            write_seconds = time.perf_counter() - start
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            start = time.perf_counter()
            read = 0
            while chunk := os.read(fd, CHUNK):
                read += len(chunk)
            read_seconds = time.perf_counter() - start
        finally:
            os.close(fd)
    finally:
        path.unlink(missing_ok=True)
    return {
        "bytes": written,
        "write_mb_s": round(written / 2**20 / max(write_seconds, 1e-9), 1),
        "read_mb_s": round(read / 2**20 / max(read_seconds, 1e-9), 1),
    }


def stats(path: Path, *, speed: bool = True, size: int = 64 * CHUNK) -> dict[str, Any]:
    """Free space and, when asked, the speed of the drive holding ``path``."""
    result: dict[str, Any] = {"path": str(path), **usage(path)}
    if speed:
        result.update(speed_test(path, size))
    return result
