"""The conversions a server offers, and the ffmpeg arguments of each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homekeep.convert.config import ConvertConfig
from homekeep.convert.probing import MediaInfo
from homekeep.core.errors import UnsupportedMedia, UsageError

# Subtitle codecs Matroska holds as they are; text ones from MP4 (mov_text) become SubRip.
_MKV_SUBTITLES = {
    "subrip",
    "ass",
    "ssa",
    "webvtt",
    "dvd_subtitle",
    "hdmv_pgs_subtitle",
    "dvb_subtitle",
    "text",
}
_TEXT_SUBTITLES = {"mov_text", "eia_608", "microdvd", "sami", "realtext", "subviewer", "jacosub"}


@dataclass(frozen=True)
class Conversion:
    """One conversion: what it takes, what it makes, and how much room its output needs."""

    name: str
    media_type: str
    extension: str
    mime_type: str
    summary: str
    output_ratio: float  # expected output size per input byte, for the free-space check

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "media_type": self.media_type,
            "extension": self.extension,
            "mime_type": self.mime_type,
            "summary": self.summary,
        }


CONVERSIONS: dict[str, Conversion] = {
    c.name: c
    for c in (
        Conversion(
            "mkv-x264",
            "video",
            "mkv",
            "video/x-matroska",
            "H.264 (libx264) in Matroska; audio, subtitles and attachments kept",
            1.5,
        ),
        Conversion(
            "mkv-x265",
            "video",
            "mkv",
            "video/x-matroska",
            "H.265 (libx265) in Matroska; audio, subtitles and attachments kept",
            1.5,
        ),
        Conversion(
            "webp",
            "image",
            "webp",
            "image/webp",
            "PNG or JPEG to WebP; animated GIF or APNG to animated WebP",
            2.0,
        ),
        Conversion("opus", "audio", "opus", "audio/ogg", "Any audio to Opus in Ogg", 1.0),
    )
}


def offered(config: ConvertConfig) -> dict[str, Conversion]:
    """The conversions this server offers: those of the media types it accepts."""
    return {n: c for n, c in CONVERSIONS.items() if c.media_type in config.media_types}


def get(name: str, config: ConvertConfig) -> Conversion:
    """The conversion called ``name``, or a 400 that lists the offered ones."""
    found = offered(config).get(name)
    if found is None:
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise UsageError(
            f"conversion {shown!r} is not offered here; choose from: "
            f"{', '.join(offered(config)) or 'none (no media types accepted)'}",
            code="unknown_conversion",
        )
    return found


def check_fits(conversion: Conversion, info: MediaInfo) -> None:
    """Refuse (415) an input whose probed kind the conversion does not take."""
    if info.kind != conversion.media_type:
        raise UnsupportedMedia(
            f"the input is {info.describe()}; {conversion.name} takes {conversion.media_type}"
        )
    if conversion.name == "webp" and info.format not in ("png", "jpeg", "gif", "apng"):
        raise UnsupportedMedia(f"webp takes PNG, JPEG, GIF or APNG, not {info.format}")


def _even_pad(info: MediaInfo) -> list[str]:
    video = info.video
    if video is not None and (video.width % 2 or video.height % 2):
        return ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]  # 4:2:0 needs even sizes
    return []


def _mkv(info: MediaInfo, codec: list[str]) -> list[str]:
    args = ["-map", "0:V:0", "-map", "0:a?", "-map", "0:t?"]
    kept = 0  # output subtitle indexes count only the subtitles mapped
    for sub in info.subtitles:
        if sub.codec in _MKV_SUBTITLES or sub.codec in _TEXT_SUBTITLES:
            how = "copy" if sub.codec in _MKV_SUBTITLES else "srt"
            args += ["-map", f"0:{sub.index}", f"-c:s:{kept}", how]
            kept += 1
    return [
        *args,
        *codec,
        *_even_pad(info),
        "-c:a",
        "copy",
        "-c:t",
        "copy",
        "-fps_mode",
        "passthrough",
        "-f",
        "matroska",
    ]


def ffmpeg_args(name: str, info: MediaInfo, config: ConvertConfig) -> list[str]:
    """The ffmpeg arguments between the input and the output file for one conversion."""
    if name == "mkv-x264":
        codec = ["-c:v", "libx264", "-crf", str(config.x264_crf), "-preset", config.x264_preset]
        return _mkv(info, codec)
    if name == "mkv-x265":
        codec = [
            "-c:v",
            "libx265",
            "-crf",
            str(config.x265_crf),
            "-preset",
            config.x265_preset,
            "-x265-params",
            "log-level=error",
        ]
        return _mkv(info, codec)
    if name == "webp":
        quality = ["-quality", str(config.webp_quality)]
        if info.animated:
            return ["-map", "0:V:0", "-c:v", "libwebp_anim", *quality, "-loop", "0", "-f", "webp"]
        return ["-map", "0:V:0", "-frames:v", "1", "-c:v", "libwebp", *quality, "-f", "webp"]
    if name == "opus":
        bits = str(config.opus_bits_per_second)
        return ["-map", "0:a:0", "-vn", "-c:a", "libopus", "-b:a", bits, "-f", "ogg"]
    raise UsageError(f"unknown conversion {name!r}")
