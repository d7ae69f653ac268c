"""The catalogue endpoints: folders, indexes, artists, albums, songs, lists, genres, search."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homekeep.music.library import ALBUM_SELECT, ALBUM_SORTS, IN_GENRE, album_dict
from homekeep.music.subsonic.calls import Call, Handler
from homekeep.music.subsonic.params import MAX_ID
from homekeep.music.subsonic.responses import GENERIC, MISSING, NOT_FOUND, SubsonicError
from homekeep.music.subsonic.shapes import ARTIST, IGNORED_ARTICLES

MAX_PAGE = 500
MAX_OFFSET = 10_000_000
EXTENSIONS = [
    {"name": "apiKeyAuthentication", "versions": [1]},
    {"name": "formPost", "versions": [1]},
    {"name": "transcodeOffset", "versions": [1]},
]
_STARS = " stars s ON s.item_id = a.id AND s.kind = 'album' AND s.user_id = ?"
_ALBUM_ARTISTS = (
    "SELECT a.album_artist_id AS id, MIN(a.album_artist) AS name, COUNT(*) AS album_count,"
    " ar.mb_artist_id FROM albums a LEFT JOIN artists ar ON ar.id = a.album_artist_id"
)


def ping(call: Call) -> dict[str, Any]:
    return {}


def get_license(call: Call) -> dict[str, Any]:
    return {"license": {"valid": True}}


def get_extensions(call: Call) -> dict[str, Any]:
    return {"openSubsonicExtensions": EXTENSIONS}


def get_music_folders(call: Call) -> dict[str, Any]:
    roots = call.svc.library.roots()
    folders = [{"id": r["id"], "name": r["path"].rstrip("/").rsplit("/", 1)[-1]} for r in roots]
    return {"musicFolders": {"musicFolder": folders}}


def _folder(call: Call) -> int | None:
    text = call.params.get("musicFolderId")
    return None if not text else call.params.integer("musicFolderId", 0, 0, MAX_ID)


def _album_artists(call: Call) -> list[dict[str, Any]]:
    folder = _folder(call)
    where, params = ("", []) if folder is None else (" WHERE a.root_id = ?", [folder])
    rows = call.svc.db.query(
        f"{_ALBUM_ARTISTS}{where} GROUP BY a.album_artist_id ORDER BY name COLLATE NOCASE",
        params,
    )
    return [dict(r) for r in rows]


def get_indexes(call: Call) -> dict[str, Any]:
    scanned = call.svc.db.query_one("SELECT MAX(finished_at) FROM scans")
    when = datetime.fromisoformat(scanned[0]) if scanned and scanned[0] else None
    return {
        "indexes": {
            "lastModified": int(when.timestamp() * 1000) if when else 0,
            "ignoredArticles": IGNORED_ARTICLES,
            "index": call.shapes.indexed(_album_artists(call)),
        }
    }


def get_artists(call: Call) -> dict[str, Any]:
    return {
        "artists": {
            "ignoredArticles": IGNORED_ARTICLES,
            "index": call.shapes.indexed(_album_artists(call)),
        }
    }


def get_artist(call: Call) -> dict[str, Any]:
    artist = call.svc.library.artist(call.artist_id(call.params.require("id")))
    shaped = call.shapes.artists([{**artist, "album_count": len(artist["albums"])}])[0]
    return {"artist": {**shaped, "album": call.shapes.albums(artist["albums"])}}


def get_album(call: Call) -> dict[str, Any]:
    album = call.svc.library.album(call.album_id(call.params.require("id")))
    shaped = call.shapes.albums([album])[0]
    return {"album": {**shaped, "song": call.shapes.songs(album["tracks"])}}


def get_song(call: Call) -> dict[str, Any]:
    found = call.svc.library.tracks_by_ids([call.song_id(call.params.require("id"))])
    if not found:
        raise SubsonicError(NOT_FOUND, "no such song")
    return {"song": call.shapes.songs(found)[0]}


def get_music_directory(call: Call) -> dict[str, Any]:
    """An artist's albums, or an album's songs (the folders clients browse)."""
    given = call.params.require("id")
    if given.startswith(ARTIST):
        artist = call.svc.library.artist(call.artist_id(given))
        children = call.shapes.albums(artist["albums"], folder=True)
        return {"directory": {"id": given, "name": artist["name"], "child": children}}
    album = call.svc.library.album(call.album_id(given))
    return {
        "directory": {
            "id": given,
            "parent": ARTIST + album["album_artist_id"],
            "name": album["title"],
            "child": call.shapes.songs(album["tracks"]),
        }
    }


def _year(call: Call, name: str) -> int:
    text = call.params.get(name)
    if not text:
        raise SubsonicError(MISSING, f"required parameter {name!r} is missing")
    return call.params.integer(name, 0, -9999, 9999)


def album_page(call: Call) -> list[dict[str, Any]]:
    """The albums of getAlbumList(2): one ``type`` of list, paged by ``size``/``offset``."""
    p = call.params
    kind = p.require("type")
    size = p.integer("size", 10, 0, MAX_PAGE)
    offset = p.integer("offset", 0, 0, MAX_OFFSET)
    user = call.user.id
    joins, clauses, params = "", [], list[Any]()
    plays = (
        " JOIN (SELECT t.album_id, SUM(p.count) AS n, MAX(p.last_played) AS last FROM plays p"
        " JOIN tracks t ON t.file_id = p.file_id WHERE p.user_id = ? GROUP BY t.album_id) pl"
        " ON pl.album_id = a.id"
    )
    if kind == "random":
        order = "RANDOM()"
    elif kind == "newest":
        order = ALBUM_SORTS["added"]
    elif kind == "alphabeticalByName":
        order = ALBUM_SORTS["title"]
    elif kind == "alphabeticalByArtist":
        order = ALBUM_SORTS["artist"]
    elif kind == "starred":
        joins, params = (
            " JOIN stars s ON s.item_id = a.id AND s.kind = 'album' AND s.user_id = ?",
            [user],
        )
        order = "s.starred_at DESC"
    elif kind == "highest":  # no ratings: the user's starred albums rank highest
        joins, params = (
            " LEFT JOIN stars s ON s.item_id = a.id AND s.kind = 'album' AND s.user_id = ?",
            [user],
        )
        order = f"s.item_id IS NULL, {ALBUM_SORTS['title']}"
    elif kind in ("frequent", "recent"):
        joins, params = plays, [user]
        order = "pl.n DESC, pl.last DESC" if kind == "frequent" else "pl.last DESC"
    elif kind == "byYear":
        low, high = _year(call, "fromYear"), _year(call, "toYear")
        clauses.append("a.year BETWEEN ? AND ?")
        params += [min(low, high), max(low, high)]
        order = (
            "a.year DESC, a.title COLLATE NOCASE"
            if low > high
            else "a.year, a.title COLLATE NOCASE"
        )
    elif kind == "byGenre":
        clauses.append(IN_GENRE)
        params.append(p.require("genre"))
        order = ALBUM_SORTS["title"]
    else:
        raise SubsonicError(GENERIC, f"unknown album list type {kind[:40]!r}")
    folder = _folder(call)
    if folder is not None:
        clauses.append("a.root_id = ?")
        params.append(folder)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = call.svc.db.query(
        f"{ALBUM_SELECT}{joins}{where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, size, offset],
    )
    return [album_dict(r) for r in rows]


def get_album_list(call: Call) -> dict[str, Any]:
    return {"albumList": {"album": call.shapes.albums(album_page(call), folder=True)}}


def get_album_list2(call: Call) -> dict[str, Any]:
    return {"albumList2": {"album": call.shapes.albums(album_page(call))}}


def get_random_songs(call: Call) -> dict[str, Any]:
    p = call.params
    size = p.integer("size", 10, 0, MAX_PAGE)
    clauses, params = [], list[Any]()
    if genre := p.get("genre"):
        clauses.append(
            "t.file_id IN (SELECT file_id FROM track_genres WHERE genre = ? COLLATE NOCASE)"
        )
        params.append(genre)
    if p.get("fromYear"):
        clauses.append("t.year >= ?")
        params.append(p.integer("fromYear", 0, -9999, 9999))
    if p.get("toYear"):
        clauses.append("t.year <= ?")
        params.append(p.integer("toYear", 0, -9999, 9999))
    folder = _folder(call)
    if folder is not None:
        clauses.append("t.file_id IN (SELECT id FROM files WHERE root_id = ?)")
        params.append(folder)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    ids = [
        int(r[0])
        for r in call.svc.db.query(
            f"SELECT t.file_id FROM tracks t{where} ORDER BY RANDOM() LIMIT ?",  # noqa: S608
            [*params, size],
        )
    ]
    return {"randomSongs": {"song": call.shapes.songs(call.svc.library.tracks_by_ids(ids))}}


def get_genres(call: Call) -> dict[str, Any]:
    rows = call.svc.db.query(
        "SELECT MIN(g.genre) AS name, COUNT(DISTINCT g.file_id) AS songs,"
        " COUNT(DISTINCT t.album_id) AS albums FROM track_genres g"
        " JOIN tracks t ON t.file_id = g.file_id GROUP BY g.genre COLLATE NOCASE"
        " ORDER BY name COLLATE NOCASE"
    )
    genres = [
        {"value": r["name"], "songCount": r["songs"], "albumCount": r["albums"]} for r in rows
    ]
    return {"genres": {"genre": genres}}


def get_songs_by_genre(call: Call) -> dict[str, Any]:
    p = call.params
    page = call.svc.library.tracks(
        q=None, album_id=None, artist_id=None, genre=p.require("genre"),
        limit=p.integer("count", 10, 0, MAX_PAGE), offset=p.integer("offset", 0, 0, MAX_OFFSET),
    )  # fmt: skip
    return {"songsByGenre": {"song": call.shapes.songs(page["items"])}}


def _query(call: Call) -> str | None:
    """The search text; empty, ``""`` (Symfonium sends the quotes) or ``*`` is everything."""
    text = (call.params.get("query") or "").strip()
    if text in ("", '""', "''", "*"):
        return None
    return text.strip('"')[:200]


def _search(call: Call) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    p, library, q = call.params, call.svc.library, _query(call)

    def page(name: str) -> tuple[int, int]:
        return p.integer(f"{name}Count", 20, 0, MAX_PAGE), p.integer(
            f"{name}Offset", 0, 0, MAX_OFFSET
        )

    artists: list[dict[str, Any]] = []
    albums: list[dict[str, Any]] = []
    songs: list[dict[str, Any]] = []
    if (n := page("artist"))[0]:
        artists = library.artists(q=q, limit=n[0], offset=n[1])["items"]
    if (n := page("album"))[0]:
        albums = library.albums(q=q, artist_id=None, release_type=None, compilation=None,
                                sort="title", limit=n[0], offset=n[1])["items"]  # fmt: skip
    if (n := page("song"))[0]:
        songs = library.tracks(q=q, album_id=None, artist_id=None, limit=n[0], offset=n[1])["items"]
    return artists, albums, songs


def search2(call: Call) -> dict[str, Any]:
    artists, albums, songs = _search(call)
    return {
        "searchResult2": {
            "artist": call.shapes.artists(artists),
            "album": call.shapes.albums(albums, folder=True),
            "song": call.shapes.songs(songs),
        }
    }


def search3(call: Call) -> dict[str, Any]:
    artists, albums, songs = _search(call)
    return {
        "searchResult3": {
            "artist": call.shapes.artists(artists),
            "album": call.shapes.albums(albums),
            "song": call.shapes.songs(songs),
        }
    }


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "getLicense": get_license,
    "getOpenSubsonicExtensions": get_extensions,
    "getMusicFolders": get_music_folders,
    "getIndexes": get_indexes,
    "getArtists": get_artists,
    "getArtist": get_artist,
    "getAlbum": get_album,
    "getSong": get_song,
    "getMusicDirectory": get_music_directory,
    "getAlbumList": get_album_list,
    "getAlbumList2": get_album_list2,
    "getRandomSongs": get_random_songs,
    "getGenres": get_genres,
    "getSongsByGenre": get_songs_by_genre,
    "search2": search2,
    "search3": search3,
}
