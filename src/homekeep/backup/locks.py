"""A lock file per job, holding host and pid, so two runs of one job never overlap."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from homekeep.core.errors import Conflict
from homekeep.core.processes import pid_alive

# A lock file without a readable holder younger than this is being written, not stale.
FRESH_SECONDS = 10.0


def _started(pid: int) -> int | None:
    """The start time of a process (clock ticks since boot, /proc), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class JobLock:
    """Held while a job runs; a lock left by a dead process on this host is cleared."""

    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        self.job = job
        self.stale_cleared = False
        self._held = False

    def acquire(self) -> None:
        """Take the lock or raise Conflict naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _started(os.getpid()),
            "since": time.time(),
        }
        # Written aside and hard-linked into place: the lock appears with its holder in
        # it, so no reader ever sees a half-written lock and takes it for a stale one.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{time.monotonic_ns()}")
        tmp.write_bytes(json.dumps(me).encode())
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    holder = self._holder()
                    if holder is None and self._fresh():
                        raise Conflict(
                            f"job {self.job} is just being started by another process"
                        ) from None
                    if holder is None or self._stale(holder):
                        self.path.unlink(missing_ok=True)
                        self.stale_cleared = True
                        continue
                    raise Conflict(
                        f"job {self.job} is already running (pid {holder.get('pid')} on "
                        f"{holder.get('host')}); wait for it, or remove {self.path} if that "
                        "process is gone"
                    ) from None
                self._held = True
                return
        finally:
            tmp.unlink(missing_ok=True)
        raise Conflict(f"cannot take the lock {self.path}; remove it if no run is active")

    def _fresh(self) -> bool:
        try:
            return time.time() - self.path.stat().st_mtime < FRESH_SECONDS
        except OSError:
            return False

    def _holder(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def _stale(holder: dict[str, object]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname():
            return False
        if not isinstance(pid, int) or not pid_alive(pid):
            return True
        # The pid is alive, but after a reboot or a long time it may be another process.
        started = holder.get("started")
        now = _started(pid)
        return isinstance(started, int) and now is not None and now != started

    def release(self) -> None:
        """Drop the lock if this process holds it."""
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
