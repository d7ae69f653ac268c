"""What a file is, from its extension: audio formats, images, playlists and the rest."""

from __future__ import annotations

AUDIO_EXTENSIONS: dict[str, str] = {
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "vorbis",
    "oga": "vorbis",
    "opus": "opus",
    "ape": "ape",
    "m4a": "m4a",
    "m4b": "m4a",
    "mp4": "m4a",
    "alac": "m4a",
    "wv": "wavpack",
    "wma": "wma",
    "asf": "wma",
    "aif": "aiff",
    "aiff": "aiff",
    "aifc": "aiff",
    "wav": "wav",
}
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})
COVER_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp"})
_OTHER_KINDS: dict[str, str] = {
    **dict.fromkeys(("m3u", "m3u8", "pls", "xspf", "cue"), "playlist"),
    **dict.fromkeys(("txt", "nfo", "log", "md", "pdf", "accurip", "sfv", "md5"), "text"),
    **dict.fromkeys(("mkv", "avi", "mov", "webm", "mpg", "mpeg", "m4v"), "video"),
    **dict.fromkeys(IMAGE_EXTENSIONS, "image"),
}


def extension(name: str) -> str:
    """Return the lowercase extension of a file name without the dot ('' when none)."""
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if dot > 0 else ""


def kind_of(ext: str) -> str:
    """Return the kind a file is expected to be from its extension: 'audio', 'image'..."""
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return _OTHER_KINDS.get(ext, "other")


def mismatch(ext: str, detected: str | None) -> str | None:
    """Say when a file's content is not the audio format its extension claims."""
    expected = AUDIO_EXTENSIONS.get(ext)
    if detected is None or expected is None:
        return None
    if expected == "m4a" and detected in ("aac", "alac", "mp4"):
        return None
    if expected == detected:
        return None
    return f"extension .{ext} but the content is {detected}"
