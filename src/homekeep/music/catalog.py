"""Artists and albums derived from the tracks, with stable ids, and each album's cover.

An album's key is its MusicBrainz album id when tagged, else its album artist ("Various
Artists" for compilations) plus its title plus its year. Ids are short hashes of keys,
so they survive a full rebuild and the player's links stay valid. No SQL here: the store
reads the rows, ``derive`` turns them into albums and artists, the store writes them.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Any

from homekeep.core.hashing import hash_bytes
from homekeep.music.kinds import COVER_EXTENSIONS

UNKNOWN_ARTIST = "[Unknown Artist]"
UNKNOWN_ALBUM = "[Unknown Album]"
VARIOUS_ARTISTS = "Various Artists"
EMBEDDED = "embedded"
_DISC_DIR_RE = re.compile(r"^(cd|disc|disk)\s*[-_.]?\s*\d+\b", re.IGNORECASE)


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def artist_id(name: str) -> str:
    """Return the stable id of an artist name (case and spacing ignored)."""
    return hash_bytes(f"artist\x1f{_fold(name)}".encode())[:16]


def main_artist(tags: dict[str, Any]) -> str:
    """Return a track's main artist: the first of its artists."""
    artists = tags.get("artists")
    return str(artists[0] if artists else tags.get("artist") or UNKNOWN_ARTIST)


def album_artist_of(tags: dict[str, Any]) -> str:
    """Return the artist an album is filed under (the main artist when untagged)."""
    if tags.get("compilation"):
        return VARIOUS_ARTISTS
    return str(tags.get("album_artist") or main_artist(tags))


def album_key(tags: dict[str, Any]) -> str:
    """Return the key that identifies a track's album."""
    if tags.get("mb_album_id"):
        return f"mb:{str(tags['mb_album_id']).strip().lower()}"
    year = tags.get("year") or ""
    title = _fold(str(tags.get("album") or UNKNOWN_ALBUM))
    return f"{_fold(album_artist_of(tags))}\x1f{title}\x1f{year}"


def track_ids(tags: dict[str, Any]) -> tuple[str, str, str]:
    """Return (artist id, album artist id, album id) for a track's tags."""
    return (
        artist_id(main_artist(tags)),
        artist_id(album_artist_of(tags)),
        hash_bytes(album_key(tags).encode())[:16],
    )


@dataclass
class _Album:
    id: str
    key: str
    titles: Counter[str] = field(default_factory=Counter)
    album_artist: str = ""
    album_artist_id: str = ""
    years: Counter[int] = field(default_factory=Counter)
    dates: Counter[str] = field(default_factory=Counter)
    genres: Counter[str] = field(default_factory=Counter)
    compilation: bool = False
    release_type: str | None = None
    mb_album_id: str | None = None
    mb_release_group_id: str | None = None
    tracks: int = 0
    discs: int = 1
    duration: float = 0.0
    files: list[tuple[int, int, str]] = field(default_factory=list)  # (file id, root, dir)
    added_at: str | None = None  # when its first file was first scanned


@functools.lru_cache(maxsize=65536)
def _disc_parent(directory: str) -> str | None:
    """Return the parent of a disc folder (``CD1``, ``Disc 2``...), else None."""
    parent, _, name = directory.rstrip("/").rpartition("/")
    if directory and _DISC_DIR_RE.match(name):
        return parent
    return None


def derive(
    tracks: Iterable[tuple[Any, ...]],
    track_artists: Iterable[tuple[str, str, int]],
    folder_images: Iterable[tuple[int, str, str, str, str]],
    pictures: Iterable[tuple[int, int, str]],
    cover_priority: list[str],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Return the rows of the albums and artists tables, derived from the tracks.

    ``tracks`` in album, disc, track and path order, each as (album_id, album, year,
    date, genre, compilation, release_type, mb_album_id, mb_release_group_id, disc,
    disc_total, duration, file_id, root_id, dir, main artist name, artist_id,
    mb_artist_id, album_artist tag, album_artist_id, file added_at); ``track_artists``
    as (artist id, name, tracks); ``folder_images`` as (root_id, dir, path, ext, hash)
    in path order; ``pictures`` as (file_id, type, hash) in position order, read only
    when ``embedded`` is a cover source.
    """
    albums: dict[str, _Album] = {}
    artist_names: dict[str, Counter[str]] = {}
    artist_mbids: dict[str, str] = {}
    artist_tracks: Counter[str] = Counter()
    for (album_id, title, year, date, genre, compilation, release_type, mb_album_id, mb_group,
         disc, disc_total, duration, file_id, root_id, directory, artist, track_artist_id,
         mb_artist_id, tag_album_artist, album_artist_id, added_at) in tracks:  # fmt: skip
        album = albums.get(album_id)
        if album is None:
            tags = {
                "compilation": compilation,
                "album_artist": tag_album_artist,
                "artists": [artist] if artist else [],
                "mb_album_id": mb_album_id,
                "year": year,
                "album": title,
            }
            album_artist = album_artist_of(tags)
            album = albums[album_id] = _Album(
                id=album_id,
                key=album_key(tags),
                album_artist=album_artist,
                album_artist_id=album_artist_id,
            )
            artist_names.setdefault(album_artist_id, Counter())[album_artist] += 1
        album.titles[title or UNKNOWN_ALBUM] += 1
        if year:
            album.years[year] += 1
        if date:
            album.dates[date] += 1
        if genre:
            album.genres[genre] += 1
        if compilation:
            album.compilation = True
        album.release_type = album.release_type or release_type
        album.mb_album_id = album.mb_album_id or mb_album_id
        album.mb_release_group_id = album.mb_release_group_id or mb_group
        album.tracks += 1
        if disc or disc_total:
            album.discs = max(album.discs, disc or 1, disc_total or 1)
        album.duration += duration or 0.0
        album.files.append((file_id, root_id, directory))
        if added_at and (album.added_at is None or added_at < album.added_at):
            album.added_at = added_at
        if mb_artist_id:
            artist_mbids.setdefault(track_artist_id, mb_artist_id)
    # every artist of every track (multi-valued tags): a track counts for each of them
    for aid, name, count in track_artists:
        artist_names.setdefault(aid, Counter())[name] += count
        artist_tracks[aid] += count
    covers = _covers(albums, cover_priority, folder_images, pictures)
    album_rows = [
        (
            a.id,
            a.key,
            a.titles.most_common(1)[0][0],
            a.album_artist,
            a.album_artist_id,
            a.years.most_common(1)[0][0] if a.years else None,
            min(a.dates) if a.dates else None,
            a.genres.most_common(1)[0][0] if a.genres else None,
            int(a.compilation),
            a.release_type,
            a.mb_album_id,
            a.mb_release_group_id,
            a.tracks,
            a.discs,
            round(a.duration, 3),
            a.files[0][1],
            _album_dir(a),
            *covers.get(a.id, (None, None)),
            a.added_at,
        )
        for a in albums.values()
    ]
    album_counts = Counter(a.album_artist_id for a in albums.values())
    artist_rows = [
        (aid, names.most_common(1)[0][0], artist_mbids.get(aid), artist_tracks[aid],
         album_counts[aid])
        for aid, names in artist_names.items()
    ]  # fmt: skip
    return album_rows, artist_rows


def _album_dir(album: _Album) -> str:
    dirs = Counter(d for _, _, d in album.files)
    top = dirs.most_common(1)[0][0]
    parent = _disc_parent(top)
    return top if parent is None else parent


def _covers(
    albums: dict[str, _Album],
    priority: list[str],
    folder_images: Iterable[tuple[int, str, str, str, str]],
    pictures: Iterable[tuple[int, int, str]],
) -> dict[str, tuple[str, str]]:
    """Pick each album's front cover: (image hash, source) by the configured priority."""
    folder: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for root_id, directory, path, ext, digest in folder_images:
        if ext in COVER_EXTENSIONS:
            name = PurePosixPath(path).name.lower()
            folder.setdefault((root_id, directory), []).append((name, digest))
    embedded: dict[int, list[tuple[int, str]]] = {}
    if EMBEDDED in priority:
        for file_id, ptype, digest in pictures:
            embedded.setdefault(file_id, []).append((ptype, digest))
    covers: dict[str, tuple[str, str]] = {}
    for album in albums.values():
        found = _cover(album, priority, folder, embedded)
        if found is not None:
            covers[album.id] = found
    return covers


def _cover(
    album: _Album,
    priority: list[str],
    folder: dict[tuple[int, str], list[tuple[str, str]]],
    embedded: dict[int, list[tuple[int, str]]],
) -> tuple[str, str] | None:
    places: list[tuple[int, str]] = []
    for _, root, directory in album.files:
        for place in ((root, directory), (root, _disc_parent(directory))):
            if place[1] is not None and place not in places:
                places.append(place)  # type: ignore[arg-type]
    for source in priority:
        if source == EMBEDDED:
            for wanted in (3, 0):  # front cover, else an untyped picture
                for file_id, _, _ in album.files:
                    for ptype, digest in embedded.get(file_id, ()):
                        if ptype == wanted:
                            return digest, EMBEDDED
            continue
        pattern = source.lower()
        for place in places:
            for name, digest in folder.get(place, ()):
                if fnmatchcase(name, pattern):
                    return digest, f"{place[1]}/{name}".lstrip("/")
    return None
