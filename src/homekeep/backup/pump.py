"""Run one rsync or rclone process: every line to the run log, stdout and stderr to their
readers, progress lines thinned out, and a stop that takes the whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from homekeep.backup.cmdlines import describe

Reader = Callable[[str], None]
PROGRESS_EVERY = 0.25  # seconds between progress lines handed on


@dataclass(frozen=True)
class Exit:
    """How the process ended: its exit code, and whether ``cancel`` stopped it."""

    code: int
    cancelled: bool


def pump(
    cmd: list[str],
    out: IO[str],
    *,
    on_stdout: Reader,
    on_stderr: Reader,
    on_progress: Reader | None = None,
    cancel: threading.Event | None = None,
) -> Exit:
    """Run ``cmd`` to its end; KeyboardInterrupt stops it and is raised again.

    ``on_stderr`` runs on a thread of its own; the run log ``out`` is shared with it
    under a lock.
    """
    out.write(f"$ {describe(cmd)}\n")
    out.flush()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lock = threading.Lock()  # guards ``out`` between this thread and the stderr reader

    def read_stderr(stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with lock:
                out.write(line + "\n")
            on_stderr(line)

    err_thread = threading.Thread(target=read_stderr, args=(proc.stderr,), daemon=True)
    err_thread.start()
    stopped = threading.Event()
    watcher: threading.Thread | None = None
    if cancel is not None:
        watcher = threading.Thread(target=_watch_cancel, args=(proc, cancel, stopped), daemon=True)
        watcher.start()
    last_progress = 0.0
    buffer = b""
    try:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            buffer += chunk
            *lines, buffer = buffer.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                # Progress lines (--info=progress2) are the only ones that start with a
                # space; they can be 50,000 a run, so decode them only when one is due.
                if raw[:1] == b" ":
                    now = time.monotonic()
                    if on_progress is not None and now - last_progress > PROGRESS_EVERY:
                        last_progress = now
                        on_progress(raw.decode("utf-8", "replace"))
                    continue
                if not raw:
                    continue
                line = raw.decode("utf-8", "replace")
                with lock:
                    out.write(line + "\n")
                on_stdout(line)
        code = proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        raise
    err_thread.join(timeout=10)
    if watcher is not None:
        watcher.join(timeout=1)
    return Exit(code, stopped.is_set())


def _watch_cancel(
    proc: subprocess.Popen[bytes], cancel: threading.Event, stopped: threading.Event
) -> None:
    while proc.poll() is None:
        if cancel.wait(0.2):
            stopped.set()
            _stop(proc)
            return


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
