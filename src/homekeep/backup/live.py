"""Runs the web server started, with their latest progress, for the page to poll."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from homekeep.backup.config import JobSpec
from homekeep.backup.service import Service
from homekeep.core.errors import Conflict, HomekeepError

log = logging.getLogger("homekeep.backup")


class LiveRuns:
    """Jobs running in this server, each with its newest progress event.

    Each run works on its own thread; ``_state`` is shared with the request threads and
    every access holds ``_lock``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, Any]] = {}

    def start(self, svc: Service, job: JobSpec, trigger: str) -> None:
        """Run ``job`` on a thread of its own; Conflict if this server already runs it."""
        with self._lock:
            if job.name in self._state:
                raise Conflict(f"job {job.name} is already running")
            self._state[job.name] = {"percent": 0, "bytes": 0, "speed": "", "since": time.time()}

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") != "RunProgress":
                return
            with self._lock:
                state = self._state.get(job.name)
                if state is not None:
                    state.update(
                        run=event.get("Run"),
                        percent=event.get("Percent", 0),
                        bytes=event.get("Bytes", 0),
                        speed=event.get("Speed", ""),
                    )

        def work() -> None:
            try:
                svc.backups.run(job, trigger=trigger, on_event=on_event)
            except HomekeepError as exc:
                log.error("%s: %s", job.name, exc.message)
            finally:
                with self._lock:
                    self._state.pop(job.name, None)

        threading.Thread(target=work, name=f"backup-{job.name}", daemon=True).start()

    def running(self, name: str) -> bool:
        """True while this server runs ``name``."""
        with self._lock:
            return name in self._state

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every running job and its newest progress (copies)."""
        with self._lock:
            return {name: dict(state) for name, state in self._state.items()}
