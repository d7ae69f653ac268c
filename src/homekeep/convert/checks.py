"""An output counts only once checked: decoded whole, its duration and frames as the input's."""

from __future__ import annotations

from pathlib import Path

from homekeep.convert.probing import MediaInfo
from homekeep.convert.transcode import Outcome, base_command, run_ffmpeg


def tolerance(duration: float) -> float:
    """How far a decoded duration may stray: codec priming and the last frame's length."""
    return 0.2 + 0.01 * duration


def input_frames(info: MediaInfo, conversion_run: Outcome) -> int | None:
    """The picture frames ffmpeg decoded from the input while converting it."""
    video = info.video
    if video is None:
        return None
    decoded = conversion_run.decoded.get(video.index)
    return decoded.frames if decoded is not None else None


def decode_command(path: Path) -> list[str]:
    """ffmpeg decoding every picture and sound frame of ``path`` to nowhere.

    The pixels are never compared, so the deblocking filter is skipped: the bitstream is
    still parsed and every frame decoded and counted, at a sixth less work.
    """
    return [
        *base_command(),
        "-skip_loop_filter",
        "all",
        "-i",
        str(path),
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-f",
        "null",
        "-",
    ]


def check_output(
    path: Path, info: MediaInfo, conversion_run: Outcome, *, timeout: float
) -> list[str]:
    """Decode the output and compare it with the input; return the problems found."""
    if not path.is_file() or path.stat().st_size == 0:
        return ["ffmpeg wrote no output"]
    if path.suffix == ".webp":
        return _check_webp(path, info, conversion_run)
    decode = run_ffmpeg(decode_command(path), duration=info.duration, timeout=timeout)
    problems = [f"the output does not decode: {e}" for e in decode.errors[:3]]
    if decode.returncode != 0:
        return [*problems, f"the output does not decode: {decode.failure()}"]
    expected = input_frames(info, conversion_run)
    if expected is not None:
        got = decode.decoded.get(0)  # the picture is the output's first stream
        frames = got.frames if got is not None else 0
        if frames != expected:
            problems.append(f"the output has {frames} frames, the input {expected}")
    if info.duration:
        lasted = decode.out_seconds
        if abs(lasted - info.duration) > tolerance(info.duration):
            problems.append(
                f"the output lasts {lasted:.3f} s decoded, the input {info.duration:.3f} s"
            )
    return problems


def _check_webp(path: Path, info: MediaInfo, conversion_run: Outcome) -> list[str]:
    # ffmpeg 5 cannot decode animated WebP; Pillow's libwebp decodes both kinds.
    from PIL import Image, UnidentifiedImageError

    expected = input_frames(info, conversion_run) or 1
    video = info.video
    try:
        with Image.open(path) as image:
            if image.format != "WEBP":
                return [f"the output is {image.format}, not WebP"]
            frames = getattr(image, "n_frames", 1)
            lasted = 0.0
            for n in range(frames):
                image.seek(n)
                image.load()
                lasted += float(image.info.get("duration") or 0) / 1000
            size = image.size
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        return [f"the output does not decode: {exc}"]
    problems = []
    if frames != expected:
        problems.append(f"the output has {frames} frames, the input {expected}")
    if video is not None and size != (video.width, video.height):
        problems.append(
            f"the output is {size[0]}x{size[1]}, the input {video.width}x{video.height}"
        )
    if info.animated and info.duration and abs(lasted - info.duration) > tolerance(info.duration):
        problems.append(f"the output lasts {lasted:.3f} s, the input {info.duration:.3f} s")
    return problems
