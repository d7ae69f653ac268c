"""Reading one audio file with mutagen: its tags, stream facts and embedded pictures.

Runs in worker processes, so everything here takes and returns plain picklable values;
picture bytes never travel back to the parent: they are stored by content hash here.
"""

from __future__ import annotations

import base64
import io
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from homekeep.core.hashing import hash_bytes
from homekeep.music.catalog import artist_id, track_ids
from homekeep.music.images import MAX_IMAGE_BYTES, ImageStore, sniff_mime

SAMPLE_BYTES = 1 << 20
TRACK_COLUMNS = (
    "title", "artist", "album", "album_artist", "track", "track_total", "disc", "disc_total",
    "date", "year", "genre", "duration", "bitrate", "sample_rate", "channels",
    "bits_per_sample", "compilation", "release_type", "mb_track_id", "mb_recording_id",
    "mb_album_id", "mb_artist_id", "mb_album_artist_id", "mb_release_group_id",
)  # fmt: skip
FRONT_COVER = 3
_NUMBER_RE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+))?")
_YEAR_RE = re.compile(r"(\d{4})")

# Tag names per tag system, mapped to our field names.
_VORBIS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("albumartist", "album artist", "album_artist"),
    "track": ("tracknumber",),
    "track_total": ("tracktotal", "totaltracks"),
    "disc": ("discnumber",),
    "disc_total": ("disctotal", "totaldiscs"),
    "date": ("date", "originaldate", "year"),
    "genre": ("genre",),
    "compilation": ("compilation",),
    "release_type": ("releasetype", "musicbrainz_albumtype"),
    "mb_track_id": ("musicbrainz_releasetrackid",),
    "mb_recording_id": ("musicbrainz_trackid",),
    "mb_album_id": ("musicbrainz_albumid",),
    "mb_artist_id": ("musicbrainz_artistid",),
    "mb_album_artist_id": ("musicbrainz_albumartistid",),
    "mb_release_group_id": ("musicbrainz_releasegroupid",),
}
_ID3: dict[str, tuple[str, ...]] = {
    "title": ("TIT2",),
    "artist": ("TPE1",),
    "album": ("TALB",),
    "album_artist": ("TPE2",),
    "track": ("TRCK",),
    "disc": ("TPOS",),
    "date": ("TDRC", "TDOR", "TYER"),
    "genre": ("TCON",),
    "compilation": ("TCMP",),
    "release_type": ("TXXX:MusicBrainz Album Type", "TXXX:RELEASETYPE"),
    "mb_track_id": ("TXXX:MusicBrainz Release Track Id",),
    "mb_album_id": ("TXXX:MusicBrainz Album Id",),
    "mb_artist_id": ("TXXX:MusicBrainz Artist Id",),
    "mb_album_artist_id": ("TXXX:MusicBrainz Album Artist Id",),
    "mb_release_group_id": ("TXXX:MusicBrainz Release Group Id",),
}
_ITUNES = "----:com.apple.iTunes:"
_MP4: dict[str, tuple[str, ...]] = {
    "title": ("\xa9nam",),
    "artist": ("\xa9ART",),
    "album": ("\xa9alb",),
    "album_artist": ("aART",),
    "date": ("\xa9day",),
    "genre": ("\xa9gen",),
    "release_type": (_ITUNES + "MusicBrainz Album Type", _ITUNES + "RELEASETYPE"),
    "mb_track_id": (_ITUNES + "MusicBrainz Release Track Id",),
    "mb_recording_id": (_ITUNES + "MusicBrainz Track Id",),
    "mb_album_id": (_ITUNES + "MusicBrainz Album Id",),
    "mb_artist_id": (_ITUNES + "MusicBrainz Artist Id",),
    "mb_album_artist_id": (_ITUNES + "MusicBrainz Album Artist Id",),
    "mb_release_group_id": (_ITUNES + "MusicBrainz Release Group Id",),
}
_APE: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("album artist", "albumartist"),
    "track": ("track",),
    "track_total": ("tracktotal", "totaltracks"),
    "disc": ("disc", "discnumber"),
    "disc_total": ("disctotal", "totaldiscs"),
    "date": ("year", "date"),
    "genre": ("genre",),
    "compilation": ("compilation",),
    "release_type": ("musicbrainz_albumtype", "releasetype"),
    "mb_track_id": ("musicbrainz_releasetrackid",),
    "mb_recording_id": ("musicbrainz_trackid",),
    "mb_album_id": ("musicbrainz_albumid",),
    "mb_artist_id": ("musicbrainz_artistid",),
    "mb_album_artist_id": ("musicbrainz_albumartistid",),
    "mb_release_group_id": ("musicbrainz_releasegroupid",),
}
_ASF: dict[str, tuple[str, ...]] = {
    "title": ("Title",),
    "artist": ("Author",),
    "album": ("WM/AlbumTitle",),
    "album_artist": ("WM/AlbumArtist",),
    "track": ("WM/TrackNumber",),
    "track_total": ("TotalTracks", "WM/TrackTotal"),
    "disc": ("WM/PartOfSet",),
    "disc_total": ("TotalDiscs", "WM/DiscTotal"),
    "date": ("WM/Year",),
    "genre": ("WM/Genre",),
    "compilation": ("WM/IsCompilation",),
    "release_type": ("MusicBrainz/Album Type",),
    "mb_track_id": ("MusicBrainz/Release Track Id",),
    "mb_recording_id": ("MusicBrainz/Track Id",),
    "mb_album_id": ("MusicBrainz/Album Id",),
    "mb_artist_id": ("MusicBrainz/Artist Id",),
    "mb_album_artist_id": ("MusicBrainz/Album Artist Id",),
    "mb_release_group_id": ("MusicBrainz/Release Group Id",),
}
_APE_PICTURE_TYPES = {"cover art (front)": 3, "cover art (back)": 4, "cover art (artist)": 8}


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
    warning: str | None = None
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
    store = ImageStore(Path(images_root))
    results = [_read_safely(file_id, path, size, store) for file_id, path, size in items]
    for result in results:
        result.tags = {}  # the parent stores ``row``: do not pickle the same values twice
    return results


def _read_safely(file_id: int, path: str, size: int, store: ImageStore) -> ReadResult:
    # One file must never take its chunk, and so the scan, down with it.
    try:
        return read_file(file_id, path, size, store)
    except Exception as exc:
        return ReadResult(file_id, error=_describe(exc))


def read_file(file_id: int, path: str | Path, size: int, store: ImageStore) -> ReadResult:
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
        system, fields = _fields(audio)
        result.tags.update(_tags(system, fields))
        result.warning = _truncated(result.detected, size, result.tags)
        result.row = (*(result.tags.get(c) for c in TRACK_COLUMNS), *track_ids(result.tags))
        result.artists = [(artist_id(name), name) for name in result.tags["artists"]]
        result.genres = result.tags["genres"]
        result.pictures = [
            Picture(ptype, mime, desc, store.save(data), len(data))
            for ptype, mime, desc, data in _pictures(audio, system, fields)
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


def _all(values: Any) -> list[str]:
    """Return every non-empty text of a tag, in order: ID3 frames and Vorbis comments
    hold lists, APEv2 text items hold NUL-separated values, MP4 and ASF hold lists."""
    if values is None:
        return []
    if hasattr(values, "genres"):  # ID3 TCON: "(17)" and "17" are ID3v1 genre numbers
        items: list[Any] = list(values.genres)
    elif hasattr(values, "text"):
        items = list(values.text)
    elif isinstance(values, list | tuple):
        items = []
        for value in values:
            items.extend(_all(value) if hasattr(value, "text") else [value])
    else:
        items = [values]
    out: list[str] = []
    for item in items:
        if hasattr(item, "value") and not isinstance(item, str | int | bytes):
            item = item.value  # APE, ASF values
        if isinstance(item, bytes):
            item = item.decode("utf-8", "replace")
        for part in str(item).split("\x00"):
            text = part.strip()
            if text and text not in out:
                out.append(text)
    return out


def _fields(audio: Any) -> tuple[str, dict[str, Any]]:
    """Return the tag system and its tags as a plain dict, made once per file.

    Lookups in mutagen's tag objects are Python calls that raise KeyError on a miss, and
    most wanted keys miss; a dict answers them all for a fraction of the cost. Vorbis
    comment and APEv2 keys are case-insensitive, so they are lowercased here.
    """
    tags = audio.tags
    name = type(audio).__name__
    if tags is None:
        return "none", {}
    kind = type(tags).__name__
    if hasattr(tags, "getall"):
        return "id3", dict(tags.items())
    if name == "MP4":
        return "mp4", dict(tags.items())
    if kind == "ASFTags" or name == "ASF":
        return "asf", tags.as_dict()
    if kind == "APEv2":
        return "ape", {key.lower(): value for key, value in tags.items()}
    comments: dict[str, list[str]] = {}
    for key, value in tags:
        comments.setdefault(key.lower(), []).append(value)
    return "vorbis", comments


_SYSTEMS: dict[str, dict[str, tuple[str, ...]]] = {
    "id3": _ID3,
    "mp4": _MP4,
    "asf": _ASF,
    "ape": _APE,
    "vorbis": _VORBIS,
}


# tag name -> (our field, preference: lower wins), per tag system
_REVERSE: dict[str, dict[str, tuple[str, int]]] = {
    system: {name: (f, n) for f, names in table.items() for n, name in enumerate(names)}
    for system, table in _SYSTEMS.items()
}


def _tags(system: str, fields: dict[str, Any]) -> dict[str, Any]:
    # Walk the tags the file has (a handful) rather than every name we know (dozens):
    # most wanted names are missing from any one file.
    reverse = _REVERSE.get(system, {})
    best: dict[str, tuple[int, list[str]]] = {}
    for key, value in fields.items():
        hit = reverse.get(key)
        if hit is None:
            continue
        name, rank = hit
        if name in best and best[name][0] < rank:
            continue
        values = _all(value)
        if values:
            best[name] = (rank, values)
    raw: dict[str, str | None] = {name: values[0] for name, (_, values) in best.items()}
    # several artists and genres are kept: a player lists the track under each of them
    many = {key: best[key][1] if key in best else [] for key in ("artist", "genre")}
    if system == "id3":
        ufid = fields.get("UFID:http://musicbrainz.org")
        if ufid is not None:
            raw["mb_recording_id"] = ufid.data.decode("ascii", "replace")
    elif system == "mp4":
        for key, total_key, pair in (
            ("track", "track_total", "trkn"),
            ("disc", "disc_total", "disk"),
        ):
            pairs = fields.get(pair)
            if pairs:
                number, total = pairs[0]
                raw[key] = str(number) if number else None
                raw[total_key] = str(total) if total else None
        if fields.get("cpil"):
            raw["compilation"] = "1"
        if not many["genre"] and fields.get("gnre"):
            many["genre"] = _all(fields.get("gnre"))
    out = _normalise(raw)
    out["artists"], out["genres"] = many["artist"], many["genre"]
    # the display strings hold every value; the first artist is the track's main artist
    out["artist"] = "; ".join(many["artist"]) or None
    out["genre"] = "; ".join(many["genre"]) or None
    return out


def _number(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    match = _NUMBER_RE.match(text)
    if not match:
        return None, None
    number = int(match[1]) if int(match[1]) < 100_000 else None
    total = int(match[2]) if match[2] and int(match[2]) < 100_000 else None
    return number or None, total or None


def _normalise(raw: dict[str, str | None]) -> dict[str, Any]:
    track, track_total = _number(raw.get("track"))
    disc, disc_total = _number(raw.get("disc"))
    date = raw.get("date")
    year_match = _YEAR_RE.search(date) if date else None
    compilation = (raw.get("compilation") or "").strip().lower() in ("1", "true", "yes")
    release_type = raw.get("release_type")
    out: dict[str, Any] = {
        key: raw.get(key)
        for key in (
            "title",
            "artist",
            "album",
            "album_artist",
            "genre",
            "mb_track_id",
            "mb_recording_id",
            "mb_album_id",
            "mb_artist_id",
            "mb_album_artist_id",
            "mb_release_group_id",
        )
    }
    out.update(
        track=track,
        track_total=track_total or _number(raw.get("track_total"))[0],
        disc=disc,
        disc_total=disc_total or _number(raw.get("disc_total"))[0],
        date=date,
        year=int(year_match[1]) if year_match else None,
        compilation=compilation,
        release_type=release_type.lower() if release_type else None,
    )
    return out


def _pictures(audio: Any, system: str, fields: dict[str, Any]) -> list[tuple[int, str, str, bytes]]:
    """Return every embedded picture as (type, mime, description, bytes)."""
    found: list[tuple[int, str, str, bytes]] = []
    for picture in getattr(audio, "pictures", None) or ():  # FLAC PICTURE blocks
        found.append((int(picture.type), picture.mime, picture.desc, bytes(picture.data)))
    if system == "id3":
        for frame in audio.tags.getall("APIC"):
            found.append((int(frame.type), frame.mime, frame.desc, bytes(frame.data)))
    elif system == "mp4":
        for n, cover in enumerate(fields.get("covr") or ()):  # untyped: the first is the front
            found.append((FRONT_COVER if n == 0 else 0, sniff_mime(bytes(cover)), "", bytes(cover)))
    elif system == "ape":
        for key, value in fields.items():
            ptype = _APE_PICTURE_TYPES.get(key)
            if ptype is None or getattr(value, "kind", None) != 1:  # 1: binary item
                continue
            filename, _, data = bytes(value.value).partition(b"\x00")
            found.append((ptype, sniff_mime(data), filename.decode("utf-8", "replace"), data))
    elif system == "asf":
        for value in fields.get("WM/Picture") or ():
            parsed = _asf_picture(bytes(value.value))
            if parsed is not None:
                found.append(parsed)
    elif system == "vorbis":
        found.extend(_vorbis_pictures(fields))
    return found


def _vorbis_pictures(comments: dict[str, Any]) -> list[tuple[int, str, str, bytes]]:
    from mutagen import flac

    parse: Any = flac.Picture  # mutagen's classes are not annotated
    found: list[tuple[int, str, str, bytes]] = []
    for encoded in comments.get("metadata_block_picture") or ():
        try:
            picture = parse(base64.b64decode(encoded))
        except Exception:  # noqa: S112 - a broken block is skipped, the rest still count
            continue
        found.append((int(picture.type), picture.mime, picture.desc, bytes(picture.data)))
    for encoded in comments.get("coverart") or ():  # the old unofficial field
        try:
            data = base64.b64decode(encoded)
        except ValueError:
            continue
        found.append((FRONT_COVER, sniff_mime(data), "", data))
    return found


def _asf_picture(blob: bytes) -> tuple[int, str, str, bytes] | None:
    """Parse WM/Picture: type byte, data length, UTF-16 mime and description, data."""
    try:
        ptype, length = struct.unpack_from("<BI", blob)
        pos = 5
        strings = []
        for _ in range(2):
            end = pos
            while blob[end : end + 2] != b"\x00\x00":
                end += 2
                if end >= len(blob):
                    return None
            strings.append(blob[pos:end].decode("utf-16-le", "replace"))
            pos = end + 2
        return ptype, strings[0], strings[1], blob[pos : pos + length]
    except (struct.error, IndexError):
        return None
