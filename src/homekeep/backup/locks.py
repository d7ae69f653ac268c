"""A lock file per job, holding host and pid, so two runs of one job never overlap."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from homekeep.core.errors import Conflict


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        body = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        ).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None or self._stale(holder):
                    self.path.unlink(missing_ok=True)
                    self.stale_cleared = True
                    continue
                raise Conflict(
                    f"job {self.job} is already running (pid {holder.get('pid')} on "
                    f"{holder.get('host')}); wait for it, or remove {self.path} if that "
                    "process is gone"
                ) from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            self._held = True
            return
        raise Conflict(f"cannot take the lock {self.path}; remove it if no run is active")

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
        return not isinstance(pid, int) or not _alive(pid)

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
