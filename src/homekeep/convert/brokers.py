"""A worker's view of the server: in this process (LocalBroker) or over HTTP (HttpBroker).

The two speak the same lease protocol, so one worker loop runs beside the server or on
another machine that shares no disk with it (seed: "interfaces to ease up change of
broker").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from homekeep import __version__
from homekeep.convert.client import sha512_file
from homekeep.convert.jobs import Job
from homekeep.convert.service import Service
from homekeep.core.errors import HomekeepError, Unavailable, error_from_response

log = logging.getLogger("homekeep.convert.worker")
T = TypeVar("T")
READ_SIZE = 1 << 20


class Broker(Protocol):
    """What a worker asks of the server."""

    def claim(self, item_id: str, worker_id: str) -> Job | None: ...

    def heartbeat(self, job: Job, worker_id: str, progress: dict[str, Any]) -> str: ...

    def fetch_input(self, job: Job, folder: Path) -> Path: ...

    def finish(self, job: Job, output: Path, sha512: str) -> bool: ...

    def fail(self, job: Job, errors: list[str]) -> bool: ...

    def release(self, job: Job) -> bool: ...

    def gone(self, worker_id: str) -> None: ...


class LocalBroker:
    """The server's service in this process: inputs are read where they lie."""

    def __init__(self, service: Service, pid: int) -> None:
        self.service = service
        self.pid = pid

    def claim(self, item_id: str, worker_id: str) -> Job | None:
        return self.service.claim(item_id, worker_id, remote=False, pid=self.pid)

    def heartbeat(self, job: Job, worker_id: str, progress: dict[str, Any]) -> str:
        return self.service.heartbeat(job.item_id, job.lease_token, worker_id, progress)

    def fetch_input(self, job: Job, folder: Path) -> Path:
        path = self.service.input_path(job.item_id)
        if not path.is_file():
            raise HomekeepError(f"the input of item {job.item_id} is gone")
        return path

    def finish(self, job: Job, output: Path, sha512: str) -> bool:
        return self.service.finish(job.item_id, job.lease_token, output, sha512)

    def fail(self, job: Job, errors: list[str]) -> bool:
        return self.service.fail(job.item_id, job.lease_token, errors)

    def release(self, job: Job) -> bool:
        return self.service.release(job.item_id, job.lease_token)

    def gone(self, worker_id: str) -> None:
        self.service.worker_gone(worker_id)


class HttpBroker:
    """The server over HTTP, for a worker with its own data directory (another machine).

    One ``httpx.Client`` is shared by the worker threads (httpx clients are thread-safe).
    """

    def __init__(self, server: str, token: str, pid: int, *, tries: int = 5) -> None:
        self.server = server.rstrip("/")
        self.pid = pid
        self.tries = tries
        self.client = httpx.Client(
            base_url=f"{self.server}/api/convert",
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"homekeep-worker/{__version__}",
            },
            timeout=httpx.Timeout(60, connect=10),
        )

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call``, retrying a lost connection a few times (1, 2, 4... s apart)."""
        for attempt in range(self.tries):
            try:
                return call()
            except httpx.TransportError as exc:
                if attempt == self.tries - 1:
                    raise Unavailable(
                        f"{what}: the server {self.server} does not answer: {exc}"
                    ) from exc
                time.sleep(min(8, 2**attempt))
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 400:
            raise error_from_response(response, what)
        return response

    def _lease(self, job: Job) -> dict[str, str]:
        return {"X-Lease-Token": job.lease_token}

    def claim(self, item_id: str, worker_id: str) -> Job | None:
        response = self._retry(
            "claim",
            lambda: self.client.post(
                f"/jobs/{item_id}/claim", json={"worker_id": worker_id, "pid": self.pid}
            ),
        )
        if response.status_code in (404, 409):
            return None  # taken by another worker, cancelled or deleted meanwhile
        return Job.from_json(self._check(response, "claim").json())

    def heartbeat(self, job: Job, worker_id: str, progress: dict[str, Any]) -> str:
        try:
            response = self.client.post(
                f"/jobs/{job.item_id}/heartbeat",
                json={"worker_id": worker_id, "progress": progress},
                headers=self._lease(job),
                timeout=10,
            )
        except httpx.TransportError as exc:
            log.warning("heartbeat for %s not delivered: %s", job.item_id, exc)
            return "ok"  # keep going; the lease outlives a few missed beats
        if response.status_code == 404:
            return "cancelled"
        return str(self._check(response, "heartbeat").json().get("state", "lost"))

    def fetch_input(self, job: Job, folder: Path) -> Path:
        """Download the input (resuming with Range after a cut) and check its SHA-512."""
        target = folder / "input"
        for attempt in range(self.tries):
            have = target.stat().st_size if target.exists() else 0
            if have >= job.file_size:
                break
            headers = {**self._lease(job), "Range": f"bytes={have}-"}
            try:
                with self.client.stream(
                    "GET", f"/jobs/{job.item_id}/input", headers=headers
                ) as response:
                    if response.status_code not in (200, 206):
                        response.read()
                        raise error_from_response(response, "input download")
                    mode = "ab" if response.status_code == 206 else "wb"
                    with target.open(mode) as fh:
                        for block in response.iter_bytes(READ_SIZE):
                            fh.write(block)
            except httpx.TransportError as exc:
                if attempt == self.tries - 1:
                    raise Unavailable(f"input download from {self.server} failed: {exc}") from exc
                time.sleep(min(8, 2**attempt))
        if sha512_file(target) != job.sha512:
            target.unlink(missing_ok=True)
            raise Unavailable(f"the input of item {job.item_id} arrived damaged (SHA-512)")
        return target

    def finish(self, job: Job, output: Path, sha512: str) -> bool:
        headers = {
            **self._lease(job),
            "X-Sha512": sha512,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(output.stat().st_size),
        }

        def body() -> Iterator[bytes]:
            with output.open("rb") as fh:
                while block := fh.read(READ_SIZE):
                    yield block

        response = self._retry(
            "result upload",
            lambda: self.client.put(
                f"/jobs/{job.item_id}/output", content=body(), headers=headers, timeout=600
            ),
        )
        output.unlink(missing_ok=True)
        if response.status_code in (404, 409):
            return False
        self._check(response, "result upload")
        return True

    def _end(self, job: Job, action: str, payload: dict[str, Any]) -> bool:
        response = self._retry(
            action,
            lambda: self.client.post(
                f"/jobs/{job.item_id}/{action}", json=payload, headers=self._lease(job)
            ),
        )
        if response.status_code in (404, 409):
            return False
        self._check(response, action)
        return True

    def fail(self, job: Job, errors: list[str]) -> bool:
        return self._end(job, "fail", {"errors": errors})

    def release(self, job: Job) -> bool:
        return self._end(job, "release", {})

    def gone(self, worker_id: str) -> None:
        with contextlib.suppress(httpx.TransportError):
            self.client.post("/workers/gone", json={"worker_id": worker_id}, timeout=5)

    def close(self) -> None:
        self.client.close()
