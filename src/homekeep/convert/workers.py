"""Workers: threads that take jobs, run ffmpeg under a lease, check the output, hand it in.

Each worker thread owns its work folder (locked with flock while the process lives),
its job, and that job's heartbeat thread; they share only the stop event, the queue
and the broker (both safe across threads). A stop (SIGTERM) ends every running ffmpeg,
removes its partial output and gives the item back to the queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import IO, Any

from homekeep.convert.brokers import Broker
from homekeep.convert.checks import check_output
from homekeep.convert.client import sha512_file
from homekeep.convert.jobs import Job
from homekeep.convert.profiles import ffmpeg_args
from homekeep.convert.queue import JobQueue
from homekeep.convert.service import HOST, Service
from homekeep.convert.transcode import Progress, base_command, run_ffmpeg
from homekeep.core.errors import HomekeepError

log = logging.getLogger("homekeep.convert.worker")
SHUTDOWN = "shutdown"


class _Beat:
    """One job's heartbeat thread: sends progress, and learns when the job must stop."""

    def __init__(self, broker: Broker, job: Job, worker_id: str, every: float) -> None:
        self.broker, self.job, self.worker_id, self.every = broker, job, worker_id, every
        self.lock = threading.Lock()  # guards progress and verdict
        self.progress: dict[str, Any] = Progress().to_json()
        self.verdict: str | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"beat-{job.item_id}", daemon=True)

    def __enter__(self) -> _Beat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=15)

    def _run(self) -> None:
        while not self.done.wait(self.every):
            with self.lock:
                progress = dict(self.progress)
            try:
                state = self.broker.heartbeat(self.job, self.worker_id, progress)
            except HomekeepError as exc:
                log.warning("heartbeat for %s failed: %s", self.job.item_id, exc.message)
                continue
            if state != "ok":
                with self.lock:
                    self.verdict = state
                return

    def update(self, progress: Progress) -> None:
        with self.lock:
            self.progress = progress.to_json()

    def stop_reason(self) -> str | None:
        with self.lock:
            return self.verdict


class WorkerPool:
    """``threads`` workers taking jobs from ``queue`` through ``broker``."""

    def __init__(
        self,
        queue: JobQueue,
        broker: Broker,
        work: Path,
        threads: int,
    ) -> None:
        self.queue, self.broker, self.work, self.count = queue, broker, work, threads
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self._locks: list[IO[bytes]] = []

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.clean_stale()
        for n in range(self.count):
            worker_id = f"{HOST}/{os.getpid()}/{n}"
            folder = self.work / worker_id.replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            lock = (folder / ".lock").open("wb")
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._locks.append(lock)
            thread = threading.Thread(
                target=self._loop, args=(worker_id, folder), name=f"convert-worker-{n}"
            )
            self.threads.append(thread)
            thread.start()

    def clean_stale(self) -> None:
        """Remove the work folders of dead workers (partial outputs of a crash)."""
        for folder in self.work.iterdir():
            if not folder.is_dir():
                continue
            try:
                with (folder / ".lock").open("ab") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live worker holds it
            except OSError:
                pass
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s: the work folder of a worker that is gone", folder.name)

    def stop(self, timeout: float = 30) -> None:
        """Stop every worker: running ffmpegs end, partial outputs go, items go back."""
        self.stop_event.set()
        self.queue.wake_all()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        for lock in self._locks:
            folder = Path(lock.name).parent
            lock.close()
            shutil.rmtree(folder, ignore_errors=True)
        self._locks.clear()

    def _loop(self, worker_id: str, folder: Path) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                item_id = self.queue.take(1.0, self.stop_event)
                if item_id is None:
                    continue
                job = self.broker.claim(item_id, worker_id)
                backoff = 1.0
            except HomekeepError as exc:
                log.warning("worker %s: %s; again in %.0f s", worker_id, exc.message, backoff)
                self.stop_event.wait(backoff)
                backoff = min(60.0, backoff * 2)
                continue
            if job is None:
                continue  # a second message for an item already taken: dropped
            log.info("worker %s took item %s (%s)", worker_id, job.item_id, job.conversion)
            try:
                run_job(job, self.broker, worker_id, folder / job.item_id, self.stop_event)
            except Exception:
                log.exception("worker %s: item %s broke the worker loop", worker_id, job.item_id)
        self.broker.gone(worker_id)


def run_job(job: Job, broker: Broker, worker_id: str, folder: Path, stop: threading.Event) -> None:
    """Convert one claimed item and hand in the checked output (or the reasons it failed)."""
    config = job.config()
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"output.{job.extension}"
    problems: list[str] = []
    try:
        with _Beat(broker, job, worker_id, config.heartbeat_seconds) as beat:

            def tick(progress: Progress) -> str | None:
                beat.update(progress)
                return SHUTDOWN if stop.is_set() else beat.stop_reason()

            try:
                source = broker.fetch_input(job, folder)
                cmd = [
                    *base_command(),
                    "-i",
                    str(source),
                    *ffmpeg_args(job.conversion, job.info, config),
                    "-y",
                    str(output),
                ]
                started = time.monotonic()
                outcome = run_ffmpeg(
                    cmd, duration=job.info.duration, tick=tick, timeout=config.job_timeout_seconds
                )
                converted = time.monotonic()
                if outcome.stopped is None and outcome.returncode != 0:
                    problems = [f"ffmpeg failed: {outcome.failure()}"]
                elif outcome.stopped is None:
                    problems = check_output(
                        output, job.info, outcome, timeout=config.job_timeout_seconds
                    )
                    # The check's cost is the price of trusting an output; the log says it.
                    log.info(
                        "item %s: converted in %.2f s, checked in %.2f s",
                        job.item_id,
                        converted - started,
                        time.monotonic() - converted,
                    )
            except HomekeepError as exc:
                if stop.is_set():
                    outcome_stop: str | None = SHUTDOWN
                else:
                    log.warning("item %s: %s", job.item_id, exc.message)
                    broker.fail(job, [exc.message])
                    return
            else:
                outcome_stop = outcome.stopped
            if outcome_stop is None and stop.is_set():
                outcome_stop = SHUTDOWN  # stopped while checking: the output is not handed in
        if outcome_stop == SHUTDOWN:
            output.unlink(missing_ok=True)
            broker.release(job)
            log.info("item %s given back to the queue: the worker is stopping", job.item_id)
        elif outcome_stop in ("cancelled", "lost"):
            log.info("item %s stopped: %s", job.item_id, outcome_stop)
        elif outcome_stop is not None:
            broker.fail(job, [outcome_stop])
        elif problems:
            broker.fail(job, problems)
        else:
            broker.finish(job, output, sha512_file(output))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)


class Upkeep:
    """A thread that runs the server's upkeep (lease expiry, old uploads, lost messages)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.every = max(0.5, min(5.0, service.config.lease_seconds / 3))
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="convert-upkeep", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        rounds = 0
        while not self.stop_event.wait(self.every):
            rounds += 1
            try:
                self.service.reap()
                if rounds % 12 == 0:  # a minute or so: messages lost with a flushed queue
                    self.service.reconcile()
            except Exception:
                log.exception("convert upkeep failed; trying again in %s s", self.every)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)


def local_pool(service: Service, threads: int) -> WorkerPool:
    """Workers in this process over the service itself (serve, or convert worker here)."""
    from homekeep.convert.brokers import LocalBroker

    return WorkerPool(service.queue, LocalBroker(service, os.getpid()), service.work, threads)
