"""Audio out: files as they are (with HTTP Range), or transcoded on the fly by ffmpeg.

A transcode is one ffmpeg process writing Opus (Ogg) or MP3 to a pipe; the response
reads the pipe and, at the same time, listens for the client going away: whichever ends
first ends the other, and the process is killed and reaped in every case, so no ffmpeg
outlives its listener. Lossy sources are never transcoded to a lossless format.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from homekeep.core.errors import ExternalToolError, InvalidInput, Unavailable, UsageError
from homekeep.core.tools import require_tool
from homekeep.core.web import error_response

log = logging.getLogger(__name__)

LOSSLESS = frozenset({"flac", "alac", "wavpack", "ape", "aiff", "wav"})
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "vorbis": "audio/ogg",
    "opus": "audio/ogg",
    "aac": "audio/mp4",
    "alac": "audio/mp4",
    "mp4": "audio/mp4",
    "wavpack": "audio/x-wavpack",
    "ape": "audio/x-ape",
    "wma": "audio/x-ms-wma",
    "aiff": "audio/aiff",
    "wav": "audio/wav",
}
# target -> (ffmpeg codec arguments, container, media type, default kbit/s)
TARGETS: dict[str, tuple[tuple[str, ...], str, str, int]] = {
    "opus": (("-c:a", "libopus", "-vbr", "on"), "ogg", "audio/ogg", 128),
    "mp3": (("-c:a", "libmp3lame"), "mp3", "audio/mpeg", 192),
}
LOSSLESS_TARGETS = frozenset({"flac", "wav", "alac", "wavpack", "ape", "aiff"})
MIN_KBPS, MAX_KBPS = 32, 320
MAX_OFFSET = 24 * 3600.0
MAX_RANGES = 16
_RANGE_RE = re.compile(r"^bytes=\s*(\d{0,19})-(\d{0,19})(\s*,\s*\d{0,19}-\d{0,19})*$")
_CHUNK = 64 * 1024


class RangeNotSatisfiable(UsageError):
    """A Range header that is malformed or asks for bytes past the end of the file."""

    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


def check_range(header: str | None, size: int) -> None:
    """Refuse (416) a Range header that is malformed, too long or past the end of the file.

    A valid one is served by starlette's FileResponse (206, one part or several).
    """
    if header is None:
        return
    text = header.strip()
    if len(text) > 400 or text.count(",") >= MAX_RANGES or not _RANGE_RE.match(text):
        raise RangeNotSatisfiable(f"malformed Range header {text[:80]!r}", size)
    for part in text[6:].split(","):
        first, _, last = part.strip().partition("-")
        if not first and not last:
            raise RangeNotSatisfiable("a range needs a start or a suffix length", size)
        if first and (int(first) >= size or (last and int(last) < int(first))):
            raise RangeNotSatisfiable(f"range {part.strip()} is outside the {size} bytes", size)
        if not first and int(last) == 0:
            raise RangeNotSatisfiable("a suffix range of 0 bytes is empty", size)


def file_response(
    path: Path, fmt: str | None, range_header: str | None, disposition: str = "inline"
) -> FileResponse:
    """The file as it is, with Range support; 416 on a bad Range."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Unavailable(f"cannot read {path.name}: {exc.strerror}; rescan the library") from exc
    check_range(range_header, size)
    media_type = CONTENT_TYPES.get(fmt or "", "application/octet-stream")
    return FileResponse(path, media_type=media_type, filename=path.name,
                        content_disposition_type=disposition)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How to send a track: ``target`` None is the file as it is."""

    target: str | None
    kbps: int = 0
    offset: float = 0.0


def plan(
    source: str | None,
    wanted: str | None,
    max_kbps: int | None = None,
    offset: float = 0.0,
    source_kbps: int | None = None,
    *,
    strict: bool = True,
) -> Plan:
    """Decide between the file as it is and a transcode to Opus or MP3.

    ``wanted`` None or "raw" keeps the file unless a lower bit rate or a time offset is
    asked for. A lossless target for a lossy source is refused (``strict``) or answered
    with the file as it is (Subsonic clients, which cannot show an error mid-play).
    """
    if offset < 0 or offset > MAX_OFFSET or offset != offset:  # the last: NaN
        raise InvalidInput(f"time offset must be between 0 and {MAX_OFFSET:.0f} seconds")
    if max_kbps is not None and max_kbps < 0:
        raise InvalidInput("the bit rate must be 0 (no limit) or more")
    limit = max_kbps or None
    if wanted in LOSSLESS_TARGETS:
        if wanted != source and strict:
            why = "is a lossy format: it is never transcoded to lossless"
            if source in LOSSLESS:
                why = "is sent as it is or transcoded to opus or mp3, not to"
            raise InvalidInput(f"{source or 'this file'} {why} {wanted}; ask for opus, mp3 or raw")
        wanted = "raw"
    if wanted not in (None, "raw", *TARGETS):
        raise InvalidInput(f"unknown format {wanted!r}; choose raw, opus or mp3")
    if wanted in (None, "raw"):
        lower = limit is not None and (source_kbps is None or source_kbps > limit)
        if wanted == "raw" or (not lower and offset == 0):
            return Plan(None)
        wanted = "opus"
    codec = TARGETS[wanted]
    kbps = min(max(limit or codec[3], MIN_KBPS), MAX_KBPS)
    return Plan(wanted, kbps, offset)


def ffmpeg_args(ffmpeg: str, path: Path, chosen: Plan) -> list[str]:
    """The ffmpeg command line of a transcode to standard output."""
    assert chosen.target is not None
    codec, container, _, _ = TARGETS[chosen.target]
    seek = ["-ss", f"{chosen.offset:.3f}"] if chosen.offset else []
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", *seek, "-i", str(path),
        "-map", "0:a:0", "-vn", "-sn", "-dn", *codec, "-b:a", f"{chosen.kbps}k",
        "-f", container, "pipe:1",
    ]  # fmt: skip


class Transcoder:
    """Starts ffmpeg transcodes, at most ``limit`` at once (503 past that)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # written on the event loop's thread only; handlers on worker threads read it, and
        # a stale read lets at most a few more through at once
        self._running = 0

    def response(self, path: Path, chosen: Plan) -> TranscodeResponse:
        """A response that streams ``path`` transcoded as ``chosen`` says."""
        if self._running >= self.limit:
            raise Unavailable(
                f"{self.limit} transcodes are running, the most [music] max_transcodes allows; "
                "try again shortly"
            )
        ffmpeg = require_tool("ffmpeg")
        media_type = TARGETS[chosen.target or "opus"][2]
        return TranscodeResponse(self, ffmpeg_args(ffmpeg, path, chosen), media_type)


class TranscodeResponse(Response):
    """Stream an ffmpeg process's output; kill it when the client goes or the server stops."""

    def __init__(self, owner: Transcoder, args: list[str], media_type: str) -> None:
        # no super().__init__(): it would send Content-Length: 0 for the empty body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({"Cache-Control": "no-store"})
        self.owner = owner
        self.args = args

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.owner._running += 1
        proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with anyio.create_task_group() as tasks:

                async def pump() -> None:
                    await self._pump(proc, send)
                    tasks.cancel_scope.cancel()

                async def listen() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tasks.cancel_scope.cancel()

                tasks.start_soon(pump)
                tasks.start_soon(listen)
        finally:
            self.owner._running -= 1
            with anyio.CancelScope(shield=True):
                await _reap(proc)

    async def _pump(self, proc: asyncio.subprocess.Process, send: Send) -> None:
        assert proc.stdout is not None
        chunk = await proc.stdout.read(_CHUNK)
        if not chunk and await proc.wait() != 0:
            # nothing sent yet: the client can still get a proper error
            message = f"ffmpeg could not transcode this file: {await _stderr(proc)}"
            log.warning("%s", message)
            answer = error_response(502, ExternalToolError.code, message)
            await send({"type": "http.response.start", "status": 502,
                        "headers": answer.raw_headers})  # fmt: skip
            await send({"type": "http.response.body", "body": answer.body})
            return
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        while chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = await proc.stdout.read(_CHUNK)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if await proc.wait() != 0:
            log.warning("ffmpeg stopped midway: %s", await _stderr(proc))


async def _stderr(proc: asyncio.subprocess.Process) -> str:
    """The start of what ffmpeg said on standard error."""
    if proc.stderr is None:
        return ""
    return (await proc.stderr.read(2000)).decode(errors="replace").strip()[:500]


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill ffmpeg if it still runs, and wait for it (no zombie left)."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
