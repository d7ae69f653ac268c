"""ffprobe decides what an input is (never its name): kind, streams, duration, size."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from homekeep.core.errors import ExternalToolError, InvalidInput, PayloadTooLarge, UnsupportedMedia
from homekeep.core.tools import require_tool

# Formats ffprobe names for still and animated images (its image "pipe" demuxers).
IMAGE_FORMATS = {"png_pipe": "png", "jpeg_pipe": "jpeg", "gif": "gif", "apng": "apng"}
ANIMATED_FORMATS = {"gif", "apng"}
# Container formats that hold audio or video; raw streams and images are left out on purpose.
_NOT_CONTAINERS = {"image2", "tty", "lavfi", "concat", "data"}
_OUTPUT_CAP = 4 << 20  # ffprobe's JSON for a sane file is a few KiB


@dataclass(frozen=True)
class Stream:
    """One stream as ffprobe saw it."""

    index: int
    type: str
    codec: str
    width: int = 0
    height: int = 0
    frames: int | None = None
    duration: float | None = None
    frame_rate: float | None = None
    attached_pic: bool = False


@dataclass(frozen=True)
class MediaInfo:
    """What an input is: its kind (audio, image, video), format, streams and duration."""

    kind: str
    format: str
    duration: float | None
    streams: tuple[Stream, ...] = field(default=())

    @property
    def video(self) -> Stream | None:
        """The main picture stream (cover art does not count)."""
        return next((s for s in self.streams if s.type == "video" and not s.attached_pic), None)

    @property
    def audio(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.type == "audio")

    @property
    def subtitles(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.type == "subtitle")

    @property
    def animated(self) -> bool:
        return self.kind == "image" and self.format in ANIMATED_FORMATS

    def describe(self) -> str:
        """``video (mov,mp4,... h264 1920x1080, aac)`` for messages."""
        parts = []
        for s in self.streams:
            size = f" {s.width}x{s.height}" if s.width else ""
            parts.append(f"{s.codec}{size}")
        return f"{self.kind} ({self.format}: {', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaInfo:
        streams = tuple(Stream(**s) for s in data.get("streams", ()))
        return cls(data["kind"], data["format"], data.get("duration"), streams)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number >= 0 else None  # drops NaN


def _rate(text: Any) -> float | None:
    if not isinstance(text, str) or "/" not in text:
        return None
    num, _, den = text.partition("/")
    try:
        n, d = int(num), int(den)
    except ValueError:
        return None
    return n / d if n > 0 and d > 0 else None


def parse(doc: dict[str, Any]) -> MediaInfo:
    """Turn ffprobe's JSON into a MediaInfo, or raise 415 when it is no media we take."""
    fmt = doc.get("format") or {}
    name = str(fmt.get("format_name") or "")
    streams: list[Stream] = []
    for raw in doc.get("streams") or []:
        if not isinstance(raw, dict):
            continue
        frames = _number(raw.get("nb_frames"))
        streams.append(
            Stream(
                index=int(raw.get("index", len(streams))),
                type=str(raw.get("codec_type") or ""),
                codec=str(raw.get("codec_name") or "unknown"),
                width=int(raw.get("width") or 0),
                height=int(raw.get("height") or 0),
                frames=int(frames) if frames is not None else None,
                duration=_number(raw.get("duration")),
                frame_rate=_rate(raw.get("avg_frame_rate")) or _rate(raw.get("r_frame_rate")),
                attached_pic=bool((raw.get("disposition") or {}).get("attached_pic")),
            )
        )
    duration = _number(fmt.get("duration"))
    pictures = [s for s in streams if s.type == "video" and not s.attached_pic]
    sounds = [s for s in streams if s.type == "audio"]
    if name in IMAGE_FORMATS and pictures:
        return MediaInfo("image", IMAGE_FORMATS[name], duration, tuple(streams))
    if name.endswith("_pipe") or name in _NOT_CONTAINERS or not name:
        raise UnsupportedMedia(f"{name or 'unknown'} input is not a format this server takes")
    if pictures:
        return MediaInfo("video", name, duration, tuple(streams))
    if sounds:
        return MediaInfo("audio", name, duration, tuple(streams))
    raise UnsupportedMedia(f"the input ({name}) has no audio or video stream")


def probe(path: Path, *, timeout: float) -> MediaInfo:
    """Run ffprobe on ``path``; 415 when it is not media at all."""
    ffprobe = require_tool("ffprobe", debian_package="ffmpeg")
    cmd = [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UnsupportedMedia(f"ffprobe could not read the input within {timeout:g} s") from exc
    except OSError as exc:
        raise ExternalToolError(f"cannot run ffprobe: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = reason[-1].rsplit(": ", 1)[-1] if reason else f"exit code {done.returncode}"
        raise UnsupportedMedia(f"not a media file ffmpeg can read: {last}")
    if len(done.stdout) > _OUTPUT_CAP:
        raise UnsupportedMedia("the input has too many streams to take")
    try:
        doc = json.loads(done.stdout)
    except ValueError as exc:
        raise ExternalToolError(f"ffprobe answered no JSON: {exc}") from exc
    return parse(doc)


def check_limits(info: MediaInfo, *, max_pixels: int, max_duration: float) -> None:
    """Refuse pictures past ``max_pixels`` (a PNG bomb) and media past ``max_duration``."""
    for s in info.streams:
        if s.type == "video" and s.width * s.height > max_pixels:
            raise PayloadTooLarge(
                f"the picture is {s.width}x{s.height} = {s.width * s.height} pixels; "
                f"the limit is {max_pixels} ([convert] max_pixels)"
            )
        if s.type == "video" and not s.attached_pic and (s.width <= 0 or s.height <= 0):
            raise InvalidInput("the picture has no size; it is damaged or not what it claims")
    if info.kind != "image" and info.duration is not None and info.duration > max_duration:
        raise PayloadTooLarge(
            f"the input lasts {info.duration:.0f} s; the limit is {max_duration:.0f} s "
            "([convert] max_duration_seconds)"
        )
    if info.kind != "image" and not info.duration:
        raise InvalidInput("the input has no duration; it is damaged or not what it claims")
