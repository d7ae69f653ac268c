"""Drive statistics: free space (local, or an rclone remote's), and a read/write speed test
the page cache cannot flatter."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from homekeep.backup.config import BackupConfig
from homekeep.backup.targets import Target, nearest_existing, rclone_config_path
from homekeep.core.tools import require_tool

CHUNK = 1024 * 1024


def usage(path: Path) -> dict[str, int]:
    """Total, used and free bytes of the file system holding ``path``."""
    du = shutil.disk_usage(path)
    return {"total": du.total, "used": du.used, "free": du.free}


def nearest_free(path: Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = nearest_existing(path)
    if probe is None:
        return None
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def rclone_about(target: Target, config: BackupConfig) -> dict[str, int] | None:
    """Total, used and free bytes of an rclone remote (``rclone about``), None when its
    backend cannot tell (B2, S3...) or the remote does not answer."""
    conf = rclone_config_path(config)
    # One try, short timeouts: an unreachable remote must not add minutes to a run.
    cmd = [require_tool("rclone"), "about", "--json", target.location, "--low-level-retries=1"]
    cmd += ["--contimeout=10s", "--timeout=30s", "--retries=1"]
    if conf.exists():
        cmd += ["--config", str(conf)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        about = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(about, dict):
        return None
    sizes = {k: about.get(k) for k in ("total", "used", "free")}
    if not isinstance(sizes["free"], int) or sizes["free"] < 0:
        return None
    return {k: v for k, v in sizes.items() if isinstance(v, int)}


def resident_fraction(fd: int, size: int) -> float | None:
    """The share of a file's pages in the page cache (mincore), None where unknown."""
    import ctypes  # only the speed test needs it, not every backup run

    if size <= 0:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mmap_fn = libc.mmap
        mmap_fn.restype = ctypes.c_void_p
        mmap_fn.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        addr = mmap_fn(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    except (OSError, AttributeError):
        return None
    if addr in (None, ctypes.c_void_p(-1).value):
        return None
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
            return None
        return sum(b & 1 for b in vec) / pages
    finally:
        libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))


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
            # On tmpfs (and some FUSE mounts) the pages are the storage and stay put.
            cached = resident_fraction(fd, written)
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
        "cached_before_read": None if cached is None else round(cached, 3),
    }


def stats(path: Path, *, speed: bool = True, size: int = 64 * CHUNK) -> dict[str, Any]:
    """Free space and, when asked, the speed of the drive holding ``path``."""
    result: dict[str, Any] = {"path": str(path), **usage(path)}
    if speed:
        result.update(speed_test(path, size))
    return result
