"""Library rows as Subsonic elements: songs, albums (ID3 and folder form), artists.

Ids carry their kind: ``al-<album id>``, ``ar-<artist id>``, and a song's is its track
id; a cover's id is its album's (``al-...``) or a song's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from homekeep.core.users import User
from homekeep.music.streaming import CONTENT_TYPES
from homekeep.music.userdata import UserData

ALBUM, ARTIST = "al-", "ar-"
IGNORED_ARTICLES = "The El La Los Las Le Les"


def _int(value: Any) -> int | None:
    return None if value is None else round(value)


def index_letter(name: str) -> str:
    """The index heading of an artist: the first letter without a leading article."""
    words = name.split(maxsplit=1)
    if len(words) == 2 and words[0] in IGNORED_ARTICLES.split():
        name = words[1]
    first = name[:1].upper()
    return first if first.isalpha() else "#"


class Shapes:
    """Shapes rows for one user: their stars and play counts come along."""

    def __init__(self, data: UserData, user: User) -> None:
        self.data = data
        self.user = user

    def songs(self, tracks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [t["id"] for t in tracks]
        stars = self.data.stars(self.user.id, "track", [str(i) for i in ids])
        plays = self.data.plays(self.user.id, ids)
        return [self._song(t, stars.get(str(t["id"])), plays.get(t["id"])) for t in tracks]

    def _song(
        self, t: dict[str, Any], starred: str | None, played: tuple[int, str] | None
    ) -> dict[str, Any]:
        name = PurePosixPath(t["path"])
        album = ALBUM + t["album_id"]
        return {
            "id": str(t["id"]),
            "parent": album,
            "isDir": False,
            "title": t["title"] or name.stem,
            "album": t["album"],
            "artist": t["artist"],
            "track": t["track"],
            "discNumber": t["disc"],
            "year": t["year"],
            "genre": t["genre"],
            "coverArt": album if t["cover_hash"] else str(t["id"]),
            "size": t["size"],
            "contentType": CONTENT_TYPES.get(t["format"] or "", "application/octet-stream"),
            "suffix": t["ext"],
            "duration": _int(t["duration"]),
            "bitRate": t["bitrate"] // 1000 if t["bitrate"] else None,
            "path": "/".join(name.parts[-3:]),
            "albumId": album,
            "artistId": ARTIST + t["artist_id"],
            "type": "music",
            "mediaType": "song",
            "isVideo": False,
            "starred": starred,
            "playCount": played[0] if played else 0,
            "played": played[1] if played else None,
            "bitDepth": t["bits_per_sample"],
            "samplingRate": t["sample_rate"],
            "channelCount": t["channels"],
            "musicBrainzId": t["mb_recording_id"] or t["mb_track_id"],
            "displayArtist": t["artist"],
            "displayAlbumArtist": t["album_artist"],
            "genres": [{"name": g} for g in t.get("genres", ())],
            "artists": [{"id": ARTIST + a["id"], "name": a["name"]} for a in t.get("artists", ())],
            "albumArtists": [{"id": ARTIST + t["album_artist_id"], "name": t["album_artist"]}]
            if t["album_artist"]
            else [],
        }

    def albums(
        self, albums: Sequence[dict[str, Any]], folder: bool = False
    ) -> list[dict[str, Any]]:
        """Albums in ID3 form (getAlbumList2, search3), or as folders (``folder``)."""
        stars = self.data.stars(self.user.id, "album", [a["id"] for a in albums])
        return [self._album(a, stars.get(a["id"]), a.get("added_at"), folder) for a in albums]

    def _album(
        self, a: dict[str, Any], starred: str | None, created: str | None, folder: bool
    ) -> dict[str, Any]:
        album_id = ALBUM + a["id"]
        shape: dict[str, Any] = {
            "id": album_id,
            "created": created or "1970-01-01T00:00:00Z",
            "name": a["title"],
            "title": a["title"],
            "album": a["title"],
            "artist": a["album_artist"],
            "artistId": ARTIST + a["album_artist_id"],
            "coverArt": album_id if a["cover_hash"] else None,
            "songCount": a["track_count"],
            "duration": _int(a["duration"]),
            "year": a["year"],
            "genre": a["genre"],
            "starred": starred,
            "isCompilation": bool(a["compilation"]),
            "musicBrainzId": a["mb_album_id"],
            "releaseTypes": [a["release_type"]] if a["release_type"] else [],
            "genres": [{"name": a["genre"]}] if a["genre"] else [],
        }
        if folder:
            shape.update(isDir=True, parent=ARTIST + a["album_artist_id"])
        return shape

    def artists(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        stars = self.data.stars(self.user.id, "artist", [r["id"] for r in rows])
        return [
            {
                "id": ARTIST + r["id"],
                "name": r["name"],
                "albumCount": r["album_count"],
                "starred": stars.get(r["id"]),
                "musicBrainzId": r.get("mb_artist_id"),
            }
            for r in rows
        ]

    def indexed(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Artists under their index letters, as getIndexes and getArtists answer."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for shaped in self.artists(rows):
            groups.setdefault(index_letter(shaped["name"]), []).append(shaped)
        return [{"name": letter, "artist": groups[letter]} for letter in sorted(groups)]
