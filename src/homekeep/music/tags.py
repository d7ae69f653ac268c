"""Reading one audio file with mutagen: its tags, stream facts and embedded pictures.

Runs in worker processes, so everything here takes and returns plain picklable values;
picture bytes never travel back to the parent: they are stored by content hash here.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from homekeep.core.hashing import hash_bytes
from homekeep.music.artwork import MAX_IMAGE_BYTES, ArtworkStore
from homekeep.music.catalog import artist_id, track_ids
from homekeep.music.kinds import extension, mismatch
from homekeep.music.pictures import embedded
from homekeep.music.tagmap import TRACK_COLUMNS, tag_system, track_fields

SAMPLE_BYTES = 1 << 20


@dataclass(slots=True)
class Picture:
    """One embedded picture: its ID3/FLAC picture type and where its bytes were stored."""

    type: int
    mime: str
    description: str
    hash: str
    size: int


@dataclass(slots=True)
class ReadResult:
    """The outcome of reading one file: tags and facts, or the reason it failed."""

    file_id: int
    fingerprint: str | None = None
    detected: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    pictures: list[Picture] = field(default_factory=list)
    error: str | None = None
    warning: str | None = None  # content not what the extension says; looks truncated
    vanished: bool = False
    row: tuple[Any, ...] = ()  # the tracks table row: TRACK_COLUMNS, then the three ids
    artists: list[tuple[str, str]] = field(default_factory=list)  # every (id, name), in order
    genres: list[str] = field(default_factory=list)  # every genre, in order


def fingerprint(path: Path, size: int) -> str:
    """Return the content hash used to recognise moved files.

    Whole files up to 2 MiB; beyond that the size plus the first and last MiB, where
    every tag format keeps its tags and stream headers, so a cold scan does not read
    whole libraries just to detect renames.
    """
    with path.open("rb") as fh:
        return _fingerprint(fh, size)[0]


def _fingerprint(fh: BinaryIO, size: int) -> tuple[str, bytes | None]:
    """Return (fingerprint, the whole content when it was read whole)."""
    if size <= 2 * SAMPLE_BYTES:
        data = fh.read()
        return hash_bytes(size.to_bytes(8, "little") + data), data
    head = fh.read(SAMPLE_BYTES)
    fh.seek(-SAMPLE_BYTES, 2)
    return hash_bytes(size.to_bytes(8, "little") + head + fh.read(SAMPLE_BYTES)), None


def read_batch(items: list[tuple[int, str, int]], images_root: str) -> list[ReadResult]:
    """Read a chunk of files (id, path, size) in a worker; never raises for a bad file."""
    store = ArtworkStore(Path(images_root))
    results = [_read_safely(file_id, path, size, store) for file_id, path, size in items]
    for result in results:
        result.tags = {}  # the parent stores ``row``: do not pickle the same values twice
    return results


def _read_safely(file_id: int, path: str, size: int, store: ArtworkStore) -> ReadResult:
    # One file must never take its chunk, and so the scan, down with it.
    try:
        return read_file(file_id, path, size, store)
    except Exception as exc:
        return ReadResult(file_id, error=_describe(exc))


def read_file(file_id: int, path: str | Path, size: int, store: ArtworkStore) -> ReadResult:
    """Read one file's tags, stream facts and pictures."""
    path = os.fspath(path)  # plain strings: pathlib costs show at thousands of files

    result = ReadResult(file_id)
    try:
        with open(path, "rb") as fh:  # noqa: PTH123
            # one open per file: small files are parsed from memory, large ones from fh
            result.fingerprint, whole = _fingerprint(fh, size)
            if not whole:
                if size == 0:
                    result.error = "empty file (0 bytes)"
                    return result
                fh.seek(0)
            audio = _open_by_extension(path, io.BytesIO(whole) if whole else fh)
    except FileNotFoundError:
        result.vanished = True
        return result
    except Exception as exc:  # mutagen raises many types for broken files
        # mutagen trusts the extension first; a FLAC named .mp3 still reads by content
        audio = _by_content(path)
        if audio is None:
            result.error = _describe(exc)
            return result
    if audio is None:
        result.error = "not a recognised audio file (unknown format or no audio header)"
        return result
    try:
        result.detected = detected_format(audio)
        result.tags = _facts(audio)
        system, fields = tag_system(audio)
        result.tags.update(track_fields(system, fields))
        ext = extension(path.rpartition("/")[2])
        warnings = (mismatch(ext, result.detected), _truncated(result.detected, size, result.tags))
        result.warning = "; ".join(w for w in warnings if w) or None
        result.row = (*(result.tags.get(c) for c in TRACK_COLUMNS), *track_ids(result.tags))
        result.artists = [(artist_id(name), name) for name in result.tags["artists"]]
        result.genres = result.tags["genres"]
        result.pictures = [
            Picture(ptype, mime, desc, store.save(data), len(data))
            for ptype, mime, desc, data in embedded(audio, system, fields)
            if 0 < len(data) <= MAX_IMAGE_BYTES
        ]
    except Exception as exc:
        result.error = _describe(exc)
    return result


def _truncated(detected: str | None, size: int, tags: dict[str, Any]) -> str | None:
    """Say when a file is far smaller than its headers promise (a cut-off download).

    Only for formats whose length mutagen takes from headers (MP3 Xing/first frame, MP4
    and ASF headers); for FLAC, Vorbis and Opus it is measured, so it always fits.
    """
    duration, bitrate = tags.get("duration"), tags.get("bitrate")
    if detected not in ("mp3", "aac", "wma") or not duration or not bitrate:
        return None
    expected = int(duration * bitrate / 8)
    if size >= expected * 3 // 4:
        return None
    return (
        f"looks truncated: {size} bytes where {duration:.0f} s at {bitrate // 1000} kbit/s "
        f"needs about {expected}"
    )


def _open_by_extension(path: str, fh: BinaryIO) -> Any:
    """Open with the class the extension names (saves scoring every format), else guess."""
    import mutagen

    cls = _classes().get(path.rpartition(".")[2].lower())
    if cls is not None:
        try:
            return cls(fh)
        except FileNotFoundError:
            raise
        except Exception:  # noqa: S110 - not what the extension says: let mutagen guess
            pass
    return mutagen.File(path)


_CLASSES: dict[str, Any] = {}


def _classes() -> dict[str, Any]:
    if not _CLASSES:
        from mutagen import (
            aiff,
            asf,
            flac,
            monkeysaudio,
            mp3,
            mp4,
            oggopus,
            oggvorbis,
            wave,
            wavpack,
        )

        _CLASSES.update(
            mp3=mp3.MP3, flac=flac.FLAC, ogg=oggvorbis.OggVorbis, oga=oggvorbis.OggVorbis,
            opus=oggopus.OggOpus, ape=monkeysaudio.MonkeysAudio, m4a=mp4.MP4, m4b=mp4.MP4,
            mp4=mp4.MP4, wv=wavpack.WavPack, wma=asf.ASF, aif=aiff.AIFF, aiff=aiff.AIFF,
            aifc=aiff.AIFF, wav=wave.WAVE,
        )  # fmt: skip
    return _CLASSES


def _by_content(path: str) -> Any:
    """Open a file with the mutagen class its first bytes name, or return None."""
    import mutagen
    from mutagen import aiff, asf, flac, monkeysaudio, mp3, mp4, oggopus, oggvorbis, wave, wavpack

    try:
        with open(path, "rb") as fh:  # noqa: PTH123
            head = fh.read(16)
    except OSError:
        return None
    candidates: list[Any]
    if head.startswith(b"fLaC"):
        candidates = [flac.FLAC]
    elif head.startswith(b"OggS"):
        candidates = [oggvorbis.OggVorbis, oggopus.OggOpus, flac.FLAC]
    elif head.startswith(b"MAC "):
        candidates = [monkeysaudio.MonkeysAudio]
    elif head.startswith(b"wvpk"):
        candidates = [wavpack.WavPack]
    elif head.startswith(b"RIFF"):
        candidates = [wave.WAVE]
    elif head.startswith(b"FORM"):
        candidates = [aiff.AIFF]
    elif head[4:8] == b"ftyp":
        candidates = [mp4.MP4]
    elif head.startswith(b"0&\xb2u"):
        candidates = [asf.ASF]
    elif head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xfa"):
        candidates = [mp3.MP3]
    else:
        return None
    try:
        return mutagen.File(path, options=candidates)
    except Exception:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def detected_format(audio: Any) -> str:
    """Return the format mutagen found: mp3, flac, vorbis, opus, ape, aac, alac..."""
    name = type(audio).__name__
    if name == "MP4":
        codec = str(getattr(audio.info, "codec", ""))
        return "alac" if codec == "alac" else "aac" if codec.startswith("mp4a") else "mp4"
    return {
        "MP3": "mp3",
        "EasyMP3": "mp3",
        "FLAC": "flac",
        "OggFLAC": "flac",
        "OggVorbis": "vorbis",
        "OggOpus": "opus",
        "MonkeysAudio": "ape",
        "WavPack": "wavpack",
        "ASF": "wma",
        "AIFF": "aiff",
        "WAVE": "wav",
    }.get(name, name.lower())


def _facts(audio: Any) -> dict[str, Any]:
    info = audio.info
    length = getattr(info, "length", None)
    bitrate = getattr(info, "bitrate", None)
    return {
        "duration": round(float(length), 3) if length else None,
        "bitrate": int(bitrate) if bitrate else None,
        # Opus always decodes at 48 kHz; mutagen does not report it.
        "sample_rate": getattr(info, "sample_rate", None)
        or (48000 if type(audio).__name__ == "OggOpus" else None),
        "channels": getattr(info, "channels", None) or None,
        "bits_per_sample": getattr(info, "bits_per_sample", None) or None,
    }
