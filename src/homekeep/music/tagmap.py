"""Tag names of each tag system mapped to our fields, and their values normalised.

Pure functions over plain values: the reader hands in a mutagen file's tags, this module
returns the track's fields (numbers, dates, flags, every artist and genre).
"""

from __future__ import annotations

import re
from typing import Any

TRACK_COLUMNS = (
    "title", "artist", "album", "album_artist", "track", "track_total", "disc", "disc_total",
    "date", "year", "genre", "duration", "bitrate", "sample_rate", "channels",
    "bits_per_sample", "compilation", "release_type", "mb_track_id", "mb_recording_id",
    "mb_album_id", "mb_artist_id", "mb_album_artist_id", "mb_release_group_id",
)  # fmt: skip
_NUMBER_RE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+))?")
_YEAR_RE = re.compile(r"(\d{4})")

# Tag names per tag system, mapped to our field names; the first name found wins.
# MusicBrainz Picard writes the same MusicBrainz names in Vorbis comments and APEv2.
_PICARD: dict[str, tuple[str, ...]] = {
    "mb_track_id": ("musicbrainz_releasetrackid",),
    "mb_recording_id": ("musicbrainz_trackid",),
    "mb_album_id": ("musicbrainz_albumid",),
    "mb_artist_id": ("musicbrainz_artistid",),
    "mb_album_artist_id": ("musicbrainz_albumartistid",),
    "mb_release_group_id": ("musicbrainz_releasegroupid",),
}
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
    **_PICARD,
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
    **_PICARD,
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


def tag_system(audio: Any) -> tuple[str, dict[str, Any]]:
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


def track_fields(system: str, fields: dict[str, Any]) -> dict[str, Any]:
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


def parse_number(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    match = _NUMBER_RE.match(text)
    if not match:
        return None, None
    number = int(match[1]) if int(match[1]) < 100_000 else None
    total = int(match[2]) if match[2] and int(match[2]) < 100_000 else None
    return number or None, total or None


def _normalise(raw: dict[str, str | None]) -> dict[str, Any]:
    track, track_total = parse_number(raw.get("track"))
    disc, disc_total = parse_number(raw.get("disc"))
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
        track_total=track_total or parse_number(raw.get("track_total"))[0],
        disc=disc,
        disc_total=disc_total or parse_number(raw.get("disc_total"))[0],
        date=date,
        year=int(year_match[1]) if year_match else None,
        compilation=compilation,
        release_type=release_type.lower() if release_type else None,
    )
    return out
