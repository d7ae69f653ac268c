# mypy: disable-error-code="no-untyped-call, attr-defined"
"""Real audio files for the music tests and benchmark: ffmpeg clips tagged with mutagen.

APE cannot be encoded by ffmpeg, so ``ape`` clips are a hand-built Monkey's Audio 3.99
file (descriptor and header for one second of 44.1 kHz stereo, then filler where the
compressed frames would be) carrying a real APEv2 tag written by mutagen: mutagen reads
it as Monkey's Audio exactly as it reads a file from the real encoder.
"""

from __future__ import annotations

import base64
import io
import shutil
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# format -> (file extension, ffmpeg output arguments)
ENCODERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mp3": ("mp3", ("-c:a", "libmp3lame", "-b:a", "32k")),
    "flac": ("flac", ("-c:a", "flac")),
    "vorbis": ("ogg", ("-c:a", "libvorbis", "-q:a", "0")),
    "opus": ("opus", ("-c:a", "libopus", "-b:a", "24k")),
    "aac": ("m4a", ("-c:a", "aac", "-b:a", "32k")),
    "alac": ("m4a", ("-c:a", "alac")),
    "wavpack": ("wv", ("-c:a", "wavpack")),
    "wma": ("wma", ("-c:a", "wmav2", "-b:a", "32k", "-f", "asf")),
    "aiff": ("aiff", ("-c:a", "pcm_s16be", "-f", "aiff")),
    "wav": ("wav", ("-c:a", "pcm_s16le")),
}
FORMATS = (*ENCODERS, "ape")


def extension(fmt: str) -> str:
    """Return the file extension used for a format."""
    return "ape" if fmt == "ape" else ENCODERS[fmt][0]


def make_clips(folder: Path, seconds: float = 1.0) -> dict[str, Path]:
    """Encode one silent clip per format into ``folder``; return format -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    clips: dict[str, Path] = {}
    for fmt, (ext, args) in ENCODERS.items():
        target = folder / f"{fmt}.{ext}"
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", str(seconds),
                *args, str(target),
            ],
            check=True,
            timeout=60,
        )  # fmt: skip
        clips[fmt] = target
    clips["ape"] = folder / "ape.ape"
    clips["ape"].write_bytes(ape_bytes(seconds))
    return clips


def ape_bytes(seconds: float = 1.0, sample_rate: int = 44100) -> bytes:
    """Return a Monkey's Audio 3.99 file without a tag (see the module docstring)."""
    blocks = int(seconds * sample_rate)
    blocks_per_frame = 73728 * 4
    total_frames = max(1, -(-blocks // blocks_per_frame))
    final_blocks = blocks - (total_frames - 1) * blocks_per_frame
    audio = bytes(64)
    descriptor = b"MAC " + struct.pack(
        "<HHIIIIIII16s", 3990, 0, 52, 24, 4, 0, len(audio), 0, 0, bytes(16)
    )
    header = struct.pack(
        "<HHIIIHHI", 2000, 0, blocks_per_frame, final_blocks, total_frames, 16, 2, sample_rate
    )
    seek_table = struct.pack("<I", 52 + 24 + 4)
    return descriptor + header + seek_table + audio


def image_bytes(width: int, height: int, fmt: str = "JPEG", color: str = "navy") -> bytes:
    """Return an encoded image of the given size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt)
    return buf.getvalue()


def write_track(
    clip: Path,
    fmt: str,
    target: Path,
    tags: Mapping[str, Any],
    pictures: tuple[tuple[int, bytes], ...] = (),
) -> Path:
    """Copy ``clip`` to ``target`` and tag it; pictures are (picture type, image bytes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, target)
    _TAGGERS[fmt](target, dict(tags), pictures)
    return target


def set_tag(path: Path, key: str, value: str) -> None:
    """Set one raw tag in place: an ID3 frame id (TIT2...) or a Vorbis comment name."""
    from mutagen import File
    from mutagen.id3 import Frames

    audio = File(path)
    if key in Frames:
        audio.tags.add(Frames[key](encoding=3, text=[value]))
    else:
        audio[key] = [value]
    audio.save()


def _str(tags: dict[str, Any], key: str) -> str | None:
    value = tags.get(key)
    return None if value is None else str(value)


def _number_pair(tags: dict[str, Any], key: str) -> str | None:
    number, total = tags.get(key), tags.get(f"{key}_total")
    if number is None:
        return None
    return f"{number}/{total}" if total else str(number)


def _mime(data: bytes) -> str:
    return "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"


def _tag_id3(path: Path, tags: dict[str, Any], pictures: tuple[tuple[int, bytes], ...]) -> None:
    from mutagen import File
    from mutagen.id3 import APIC, TALB, TCMP, TCON, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK, TXXX

    audio = File(path)
    if audio.tags is None:
        audio.add_tags()
    id3 = audio.tags
    frames = {
        "title": TIT2, "artist": TPE1, "album": TALB, "album_artist": TPE2,
        "genre": TCON, "date": TDRC,
    }  # fmt: skip
    for key, frame in frames.items():
        if _str(tags, key):
            id3.add(frame(encoding=3, text=[_str(tags, key)]))
    if track := _number_pair(tags, "track"):
        id3.add(TRCK(encoding=3, text=[track]))
    if disc := _number_pair(tags, "disc"):
        id3.add(TPOS(encoding=3, text=[disc]))
    if tags.get("compilation"):
        id3.add(TCMP(encoding=3, text=["1"]))
    if tags.get("mb_album_id"):
        id3.add(TXXX(encoding=3, desc="MusicBrainz Album Id", text=[tags["mb_album_id"]]))
    if tags.get("release_type"):
        id3.add(TXXX(encoding=3, desc="MusicBrainz Album Type", text=[tags["release_type"]]))
    for ptype, data in pictures:
        id3.add(APIC(encoding=3, mime=_mime(data), type=ptype, desc=f"p{ptype}", data=data))
    audio.save()


_VORBIS_KEYS = {
    "title": "TITLE", "artist": "ARTIST", "album": "ALBUM", "album_artist": "ALBUMARTIST",
    "genre": "GENRE", "date": "DATE", "mb_album_id": "MUSICBRAINZ_ALBUMID",
    "release_type": "RELEASETYPE",
}  # fmt: skip


def _flac_picture(ptype: int, data: bytes) -> Any:
    from mutagen.flac import Picture

    picture = Picture()
    picture.type = ptype
    picture.mime = _mime(data)
    picture.desc = f"p{ptype}"
    picture.data = data
    return picture


def _tag_vorbis(path: Path, tags: dict[str, Any], pictures: tuple[tuple[int, bytes], ...]) -> None:
    from mutagen import File

    audio = File(path)
    if audio.tags is None:
        audio.add_tags()
    for key, name in _VORBIS_KEYS.items():
        if _str(tags, key):
            audio[name] = [_str(tags, key)]
    for key, name in (("track", "TRACKNUMBER"), ("disc", "DISCNUMBER")):
        if tags.get(key) is not None:
            audio[name] = [str(tags[key])]
        if tags.get(f"{key}_total"):
            audio["TRACKTOTAL" if key == "track" else "DISCTOTAL"] = [str(tags[f"{key}_total"])]
    if tags.get("compilation"):
        audio["COMPILATION"] = ["1"]
    if hasattr(audio, "add_picture"):
        for ptype, data in pictures:
            audio.add_picture(_flac_picture(ptype, data))
    elif pictures:
        audio["METADATA_BLOCK_PICTURE"] = [
            base64.b64encode(_flac_picture(ptype, data).write()).decode("ascii")
            for ptype, data in pictures
        ]
    audio.save()


def _tag_mp4(path: Path, tags: dict[str, Any], pictures: tuple[tuple[int, bytes], ...]) -> None:
    from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm

    audio = MP4(path)
    if audio.tags is None:
        audio.add_tags()
    keys = {
        "title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "album_artist": "aART",
        "genre": "\xa9gen", "date": "\xa9day",
    }  # fmt: skip
    for key, name in keys.items():
        if _str(tags, key):
            audio[name] = [_str(tags, key)]
    if tags.get("track") is not None:
        audio["trkn"] = [(int(tags["track"]), int(tags.get("track_total") or 0))]
    if tags.get("disc") is not None:
        audio["disk"] = [(int(tags["disc"]), int(tags.get("disc_total") or 0))]
    if tags.get("compilation"):
        audio["cpil"] = True
    if tags.get("mb_album_id"):
        audio["----:com.apple.iTunes:MusicBrainz Album Id"] = [
            MP4FreeForm(tags["mb_album_id"].encode())
        ]
    if pictures:
        audio["covr"] = [
            MP4Cover(
                data,
                MP4Cover.FORMAT_PNG if data.startswith(b"\x89PNG") else MP4Cover.FORMAT_JPEG,
            )
            for _, data in pictures
        ]
    audio.save()


def _tag_ape(path: Path, tags: dict[str, Any], pictures: tuple[tuple[int, bytes], ...]) -> None:
    from mutagen.apev2 import BINARY, APEv2, APEValue

    ape = APEv2()
    keys = {
        "title": "Title", "artist": "Artist", "album": "Album", "album_artist": "Album Artist",
        "genre": "Genre", "date": "Year", "mb_album_id": "MUSICBRAINZ_ALBUMID",
        "release_type": "MUSICBRAINZ_ALBUMTYPE",
    }  # fmt: skip
    for key, name in keys.items():
        if _str(tags, key):
            ape[name] = _str(tags, key)
    if track := _number_pair(tags, "track"):
        ape["Track"] = track
    if disc := _number_pair(tags, "disc"):
        ape["Disc"] = disc
    if tags.get("compilation"):
        ape["Compilation"] = "1"
    names = {3: "Cover Art (Front)", 4: "Cover Art (Back)", 8: "Cover Art (Artist)"}
    for ptype, data in pictures:
        ape[names.get(ptype, "Cover Art (Other)")] = APEValue(b"cover.jpg\x00" + data, BINARY)
    ape.save(path)


def _tag_asf(path: Path, tags: dict[str, Any], pictures: tuple[tuple[int, bytes], ...]) -> None:
    from mutagen.asf import ASF, ASFByteArrayAttribute

    audio = ASF(path)
    keys = {
        "title": "Title", "artist": "Author", "album": "WM/AlbumTitle",
        "album_artist": "WM/AlbumArtist", "genre": "WM/Genre", "date": "WM/Year",
        "mb_album_id": "MusicBrainz/Album Id", "release_type": "MusicBrainz/Album Type",
    }  # fmt: skip
    for key, name in keys.items():
        if _str(tags, key):
            audio[name] = [_str(tags, key)]
    if tags.get("track") is not None:
        audio["WM/TrackNumber"] = [str(tags["track"])]
    if disc := _number_pair(tags, "disc"):
        audio["WM/PartOfSet"] = [disc]
    if tags.get("compilation"):
        audio["WM/IsCompilation"] = ["1"]
    values = []
    for ptype, data in pictures:
        mime = _mime(data).encode("utf-16-le") + b"\x00\x00"
        blob = struct.pack("<BI", ptype, len(data)) + mime + b"\x00\x00" + data
        values.append(ASFByteArrayAttribute(blob))
    if values:
        audio["WM/Picture"] = values
    audio.save()


_TAGGERS = {
    "mp3": _tag_id3,
    "aiff": _tag_id3,
    "wav": _tag_id3,
    "flac": _tag_vorbis,
    "vorbis": _tag_vorbis,
    "opus": _tag_vorbis,
    "aac": _tag_mp4,
    "alac": _tag_mp4,
    "ape": _tag_ape,
    "wavpack": _tag_ape,
    "wma": _tag_asf,
}
