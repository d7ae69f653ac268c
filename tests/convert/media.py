"""Real media for the convert tests and benchmark, made by ffmpeg from its lavfi sources.

Plus the broken kinds the server must refuse or fail cleanly: a truncated video, a text
file named .mp4, a PNG bomb (a small file that claims 15,000 x 15,000 pixels), and an
empty file.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path


def ffmpeg(*args: str | Path, timeout: float = 120) -> None:
    """Run ffmpeg quietly; fail the test on an error."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *(str(a) for a in args)],
        check=True,
        timeout=timeout,
    )


def video(
    path: Path,
    *,
    seconds: float = 1.0,
    size: str = "160x120",
    rate: int = 25,
    audio: bool = True,
    subtitles: bool = False,
    faststart: bool = False,
) -> Path:
    """An H.264 clip (with AAC audio, and a mov_text subtitle in MP4) from test sources."""
    args: list[str | Path] = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:d={seconds}"]
    if subtitles:
        srt = path.with_suffix(".srt")
        srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nhello <b>there</b>\n\n", "utf-8")
        args += ["-i", srt]
    args += ["-map", "0:v"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "48k"]
    if subtitles:
        args += ["-map", f"{2 if audio else 1}:s", "-c:s", "mov_text"]
    if faststart:  # the index first: a cut file still says how long it should be
        args += ["-movflags", "+faststart"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path]
    ffmpeg(*args)
    return path


def flac(path: Path, *, seconds: float = 1.5) -> Path:
    """A FLAC tone at 44.1 kHz (Opus resamples it to 48 kHz)."""
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:d={seconds}", path)
    return path


def picture(path: Path, *, size: str = "120x90") -> Path:
    """A still PNG or JPEG (by the suffix of ``path``)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:d=0.04", "-frames:v", "1", path)
    return path


def gif(path: Path, *, frames: int = 6, size: str = "64x48") -> Path:
    """An animated GIF of ``frames`` frames at 10 fps."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-frames:v", str(frames), path)
    return path


def truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of a file: a download that broke off."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def png_bomb(path: Path, side: int = 15_000) -> Path:
    """A PNG whose header claims ``side`` x ``side`` pixels over a few KiB of zlib zeros."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = zlib.compress(bytes(side + 1) * 64, 9)  # 64 rows of zeros; the rest would follow
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def raw_video(path: Path, *, frames: int, size: str = "320x240") -> Path:
    """Uncompressed 4:2:0 video in Matroska: large for its length, and quick to make."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
        "-frames:v", str(frames), "-c:v", "rawvideo", "-pix_fmt", "yuv420p", path,
    )  # fmt: skip
    return path
