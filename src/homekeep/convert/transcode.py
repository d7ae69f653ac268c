"""Run ffmpeg: progress from ``-progress pipe:1``, decode counts from its final stats, stop.

One ``run_ffmpeg`` call owns its process and its two reader threads; what the readers
learn (the latest progress, the stats, the error lines) is guarded by one lock.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from homekeep.core.errors import ExternalToolError
from homekeep.core.tools import require_tool

_STATS = re.compile(
    r"Input stream #\d+:(\d+) \((\w+)\): \d+ packets read \(\d+ bytes\); "
    r"(?:(\d+) frames decoded(?: \((\d+) samples\))?; )?"
)
_ERROR = re.compile(r"\[(error|fatal)\] ?")
STOP_GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class Progress:
    """Where a running ffmpeg is: media time done, percent, speed and wall time left."""

    out_seconds: float = 0.0
    percent: float = 0.0
    speed: float | None = None
    seconds_left: float | None = None
    frame: int = 0

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "percent": round(self.percent, 1),
            "speed": None if self.speed is None else round(self.speed, 3),
            "seconds_left": None if self.seconds_left is None else round(self.seconds_left, 1),
            "out_seconds": round(self.out_seconds, 3),
            "frame": self.frame,
        }


@dataclass(frozen=True)
class Decoded:
    """What ffmpeg decoded of one input stream."""

    kind: str
    frames: int
    samples: int | None


@dataclass
class Outcome:
    """How a run ended."""

    returncode: int
    stopped: str | None  # why it was stopped early, or None
    decoded: dict[int, Decoded] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    out_seconds: float = 0.0

    def failure(self) -> str:
        """The last words of a failed run, for the item's errors."""
        lines = self.errors or self.tail
        text = "; ".join(line.strip() for line in lines[-3:] if line.strip())
        return text[:1000] or f"ffmpeg exited with code {self.returncode}"


def base_command() -> list[str]:
    """ffmpeg with machine-readable progress and levelled, verbose logs (for final stats)."""
    ffmpeg = require_tool("ffmpeg")
    return [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "level+verbose",
        "-nostats",
        "-progress",
        "pipe:1",
    ]


class _Readers:
    """Reads ffmpeg's stdout (progress) and stderr (logs) on two threads."""

    def __init__(self, duration: float | None) -> None:
        self.lock = threading.Lock()
        self.duration = duration
        self.progress = Progress()
        self.decoded: dict[int, Decoded] = {}
        self.errors: deque[str] = deque(maxlen=20)
        self.tail: deque[str] = deque(maxlen=40)
        self.started = time.monotonic()

    def read_progress(self, stream: IO[str]) -> None:
        block: dict[str, str] = {}
        for line in stream:
            key, _, value = line.strip().partition("=")
            block[key] = value
            if key == "progress":
                self._update(block)
                block = {}

    def _update(self, block: dict[str, str]) -> None:
        try:
            out = max(0.0, int(block.get("out_time_us", "0")) / 1e6)
        except ValueError:
            out = 0.0
        try:
            frame = int(block.get("frame", "0"))
        except ValueError:
            frame = 0
        speed_text = block.get("speed", "").rstrip("x").strip()
        try:
            speed: float | None = float(speed_text) if speed_text else None
        except ValueError:
            speed = None
        percent = 0.0
        left = None
        if self.duration:
            percent = min(100.0, 100.0 * out / self.duration)
            if speed and speed > 0:
                left = max(0.0, (self.duration - out) / speed)
        if block.get("progress") == "end":
            percent, left = 100.0, 0.0
        with self.lock:
            self.progress = Progress(out, percent, speed, left, frame)

    def read_logs(self, stream: IO[str]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            with self.lock:
                self.tail.append(line[:500])
                if _ERROR.search(line):
                    self.errors.append(_ERROR.sub("", line, count=1)[:500])
                match = _STATS.search(line)
                if match:
                    frames = int(match[3]) if match[3] else 0
                    samples = int(match[4]) if match[4] else None
                    self.decoded[int(match[1])] = Decoded(match[2], frames, samples)

    def latest(self) -> Progress:
        with self.lock:
            return self.progress


def run_ffmpeg(
    cmd: Sequence[str],
    *,
    duration: float | None,
    tick: Callable[[Progress], str | None] = lambda _: None,
    timeout: float,
    interval: float = 0.2,
) -> Outcome:
    """Run ``cmd`` (from ``base_command``) to the end, or until ``tick`` names a reason to stop.

    ``tick`` is called about every ``interval`` seconds with the latest progress; a
    non-None answer stops ffmpeg (SIGTERM, then SIGKILL after a grace) and is returned
    as ``Outcome.stopped``.
    """
    readers = _Readers(duration)
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as exc:
        raise ExternalToolError(f"cannot run ffmpeg: {exc}") from exc
    assert proc.stdout is not None
    assert proc.stderr is not None
    threads = [
        threading.Thread(target=readers.read_progress, args=(proc.stdout,), daemon=True),
        threading.Thread(target=readers.read_logs, args=(proc.stderr,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    stopped: str | None = None
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            try:
                proc.wait(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                stopped = f"took longer than {timeout:g} s ([convert] job_timeout_seconds)"
            else:
                stopped = tick(readers.latest())
            if stopped is not None:
                stop_process(proc)
                break
    finally:
        if proc.poll() is None:  # an exception in tick: never leave ffmpeg running
            stop_process(proc)
        for thread in threads:
            thread.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    with readers.lock:
        return Outcome(
            returncode=proc.returncode,
            stopped=stopped,
            decoded=dict(readers.decoded),
            errors=list(readers.errors),
            tail=list(readers.tail),
            out_seconds=readers.progress.out_seconds,
        )


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Ask ffmpeg to stop (SIGTERM), and kill it if it has not after a grace."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)
