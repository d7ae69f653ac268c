"""Where jobs wait for a worker: huey's SQLite storage on one machine, its Redis one across many.

A message names an item; the truth (who holds it, until when) stays in the server's
SQLite, so a message lost with a dead worker or sent twice does no harm: a lost one is
sent again when the lease runs out, a second one finds its item taken and is dropped.
Workers take messages themselves (``take``) rather than through huey's consumer, whose
signal handling would fight the server's and the graceful stop of running ffmpegs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from huey import RedisHuey, SqliteHuey
from huey.api import Huey, Task

from homekeep.core.errors import Unavailable

TASK_NAME = "homekeep.convert.item"
_POLL_MIN, _POLL_MAX = 0.05, 1.0


def _placeholder(item_id: str) -> None:
    """The task huey registers; workers read its argument and never execute it."""
    raise RuntimeError("convert jobs are run by homekeep's workers, not huey's consumer")


class JobQueue:
    """The job messages: ``put`` an item id, ``take`` one (waiting a bounded time)."""

    def __init__(self, broker: str, folder: Path) -> None:
        self.broker = broker
        self.huey: Huey
        if broker == "sqlite":
            self.huey = SqliteHuey(
                "homekeep-convert", filename=str(folder / "queue.sqlite"), results=False
            )
            # As every homekeep database: WAL without an fsync per commit (huey's default
            # fsyncs twice a job, and an fsync waits for every upload's dirty pages). A
            # message lost to a power cut is sent again by the upkeep (``reconcile``).
            self.huey.storage.sql("pragma synchronous = normal")
        else:
            self.huey = RedisHuey("homekeep-convert", url=broker, results=False, read_timeout=1)
        self._task = self.huey.task(name=TASK_NAME)(_placeholder)
        # Threads of this process wake as soon as a message is put (SQLite is polled).
        self._wake = threading.Condition()

    @property
    def redis(self) -> bool:
        return self.broker != "sqlite"

    def put(self, item_id: str) -> None:
        try:
            self.huey.enqueue(self._task.s(item_id))
        except Exception as exc:  # redis.ConnectionError and sqlite errors alike
            raise Unavailable(f"the job queue ({self.where}) refused a job: {exc}") from exc
        with self._wake:
            self._wake.notify()

    @property
    def where(self) -> str:
        if not self.redis:
            return "sqlite"
        scheme, _, rest = self.broker.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"  # never show a password

    def take(self, timeout: float, stop: threading.Event) -> str | None:
        """The next item id, or None after ``timeout`` seconds or once ``stop`` is set."""
        deadline = time.monotonic() + timeout
        delay = _POLL_MIN
        while not stop.is_set():
            try:
                task: Task | None = self.huey.dequeue()  # Redis blocks up to read_timeout
            except Exception as exc:
                raise Unavailable(f"the job queue ({self.where}) cannot be read: {exc}") from exc
            if task is not None:
                if task.name == TASK_NAME and task.args:
                    return str(task.args[0])
                continue  # not ours: drop it
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.redis:
                with self._wake:
                    self._wake.wait(min(delay, left))
                delay = min(_POLL_MAX, delay * 2)
        return None

    def pending(self) -> set[str]:
        """The item ids of the messages waiting now."""
        return {str(t.args[0]) for t in self.huey.pending() if t.args}

    def wake_all(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def close(self) -> None:
        storage = self.huey.storage
        if self.redis:
            storage.pool.disconnect()
        else:
            storage.close()
