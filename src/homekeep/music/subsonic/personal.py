"""A user's endpoints: playlists, scrobbles, stars, the play queue, the user, scans."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homekeep.core.errors import NotFound
from homekeep.music.playlists import Playlist
from homekeep.music.subsonic.calls import Call, Handler
from homekeep.music.subsonic.params import to_int
from homekeep.music.subsonic.responses import NOT_AUTHORISED, NOT_FOUND, SubsonicError
from homekeep.music.userdata import MAX_QUEUE
from homekeep.music.userlists import UserLists

# milliseconds since 1970 that a scrobble's time may have (to the year 3000)
MAX_MS = 32_503_680_000_000


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


# -- playlists (each user's own, and the shared ones: userlists.py) --------------------


def _lists(call: Call) -> UserLists:
    return call.svc.playlists.of(call.user.name)


def _playlist(call: Call, found: Playlist, with_songs: bool) -> dict[str, Any]:
    summary = found.summary()
    shared = _lists(call).is_shared(found.id)
    shaped: dict[str, Any] = {
        "id": found.id,
        "name": found.name,
        "owner": "" if shared else call.user.name,
        "public": shared,
        "songCount": summary["tracks"],
        "duration": summary["duration"],
        "created": _iso(found.changed),
        "changed": _iso(found.changed),
    }
    if with_songs:
        shaped["entry"] = call.shapes.songs(call.svc.library.tracks_by_ids(found.track_ids()))
    return shaped


def _song_ids(call: Call, name: str) -> list[int]:
    values = call.params.all(name)
    ids = [call.song_id(v, name) for v in values]
    known = {t["id"] for t in call.svc.library.tracks_by_ids(ids)}
    missing = [i for i in ids if i not in known]
    if missing:
        raise SubsonicError(NOT_FOUND, f"no song with id {missing[0]}")
    return ids


def get_playlists(call: Call) -> dict[str, Any]:
    found = _lists(call).all()
    return {"playlists": {"playlist": [_playlist(call, p, False) for p, _ in found]}}


def get_playlist(call: Call) -> dict[str, Any]:
    return {"playlist": _playlist(call, _lists(call).read(call.params.require("id")), True)}


def create_playlist(call: Call) -> dict[str, Any]:
    """A new playlist (``name``), or the songs of an existing one replaced (``playlistId``)."""
    lists, p = _lists(call), call.params
    ids = _song_ids(call, "songId")
    existing = p.get("playlistId")
    found = lists.replace(existing, ids) if existing else lists.create(p.require("name"), ids)
    return {"playlist": _playlist(call, found, True)}


def update_playlist(call: Call) -> dict[str, Any]:
    """Remove songs by index (of the songs the client was shown), add songs, rename."""
    lists, p = _lists(call), call.params
    playlist_id = p.require("playlistId")
    current = lists.read(playlist_id)
    shown = [n for n, e in enumerate(current.entries) if e.track_id is not None]
    removed = [
        to_int("songIndexToRemove", v, 0, len(shown) - 1) for v in p.all("songIndexToRemove")
    ]
    added = _song_ids(call, "songIdToAdd")
    if removed:
        lists.remove(playlist_id, [shown[i] for i in removed])
    if added:
        lists.add(playlist_id, added)
    if name := p.get("name"):
        lists.rename(playlist_id, name)
    return {}


def delete_playlist(call: Call) -> dict[str, Any]:
    _lists(call).delete(call.params.require("id"))
    return {}


# -- plays and stars -----------------------------------------------------------------------


def scrobble(call: Call) -> dict[str, Any]:
    """Count plays (``submission`` true, the default); a now-playing note counts nothing."""
    p = call.params
    ids = _song_ids(call, "id")
    if not ids:
        raise SubsonicError(10, "required parameter 'id' is missing")
    times = [to_int("time", v, 0, MAX_MS) / 1000 for v in p.all("time")]
    if times and len(times) != len(ids):
        raise SubsonicError(0, "send one time per id, or none")
    if p.flag("submission", True):
        now = datetime.now(UTC).timestamp()
        call.data.played(call.user.id, ids, [_iso(t) for t in times or [now] * len(ids)])
    return {}


def _starred_items(call: Call) -> tuple[list[int], list[str], list[str]]:
    """The songs, albums and artists named by ``id``, ``albumId`` and ``artistId``."""
    p = call.params
    songs, albums, artists = [], [], []
    for value in p.all("id"):
        if value.startswith("al-"):
            albums.append(call.album_id(value))
        elif value.startswith("ar-"):
            artists.append(call.artist_id(value))
        else:
            songs.append(call.song_id(value))
    albums += [call.album_id(v) for v in p.all("albumId")]
    artists += [call.artist_id(v) for v in p.all("artistId")]
    known = {t["id"] for t in call.svc.library.tracks_by_ids(songs)}
    for song in songs:
        if song not in known:
            raise SubsonicError(NOT_FOUND, f"no song with id {song}")
    for album in albums:
        call.svc.library.album(album)
    for artist in artists:
        call.svc.library.artist(artist)
    return songs, albums, artists


def star(call: Call) -> dict[str, Any]:
    songs, albums, artists = _starred_items(call)
    user = call.user.id
    call.data.star(user, "track", [str(s) for s in songs])
    call.data.star(user, "album", albums)
    call.data.star(user, "artist", artists)
    return {}


def unstar(call: Call) -> dict[str, Any]:
    songs, albums, artists = _starred_items(call)
    user = call.user.id
    call.data.unstar(user, "track", [str(s) for s in songs])
    call.data.unstar(user, "album", albums)
    call.data.unstar(user, "artist", artists)
    return {}


def _starred(call: Call, folder: bool) -> dict[str, Any]:
    user, library = call.user.id, call.svc.library
    song_ids = [int(i) for i in call.data.stars(user, "track")]
    albums, artists = [], []
    for album_id in call.data.stars(user, "album"):
        try:
            albums.append(library.album(album_id))
        except NotFound:
            continue  # starred, then gone from the library: kept for when it comes back
    for artist_id in call.data.stars(user, "artist"):
        try:
            artist = library.artist(artist_id)
        except NotFound:
            continue
        artists.append({**artist, "album_count": len(artist["albums"])})
    return {
        "artist": call.shapes.artists(artists),
        "album": call.shapes.albums(albums, folder=folder),
        "song": call.shapes.songs(library.tracks_by_ids(song_ids)),
    }


def get_starred(call: Call) -> dict[str, Any]:
    return {"starred": _starred(call, folder=True)}


def get_starred2(call: Call) -> dict[str, Any]:
    return {"starred2": _starred(call, folder=False)}


# -- the play queue ----------------------------------------------------------------------


def get_play_queue(call: Call) -> dict[str, Any]:
    saved = call.data.queue(call.user.id)
    if saved is None:
        return {}
    songs = call.shapes.songs(call.svc.library.tracks_by_ids(saved["track_ids"]))
    return {
        "playQueue": {
            "current": None if saved["current"] is None else str(saved["current"]),
            "position": saved["position_ms"],
            "username": call.user.name,
            "changed": saved["changed_at"],
            "changedBy": saved["changed_by"],
            "entry": songs,
        }
    }


def save_play_queue(call: Call) -> dict[str, Any]:
    p = call.params
    values = p.all("id")
    if len(values) > MAX_QUEUE:
        raise SubsonicError(0, f"a play queue holds at most {MAX_QUEUE} songs")
    ids = _song_ids(call, "id")
    current = call.song_id(p.require("current"), "current") if p.get("current") else None
    if current is not None and current not in ids:
        raise SubsonicError(0, "current must be one of the queue's ids")
    position = p.integer("position", 0, 0, MAX_MS)
    call.data.save_queue(call.user.id, ids, current, position, call.client)
    return {}


# -- the user and scans --------------------------------------------------------------------


def get_user(call: Call) -> dict[str, Any]:
    name = call.params.require("username")
    if name != call.user.name and not call.user.admin:
        raise SubsonicError(NOT_AUTHORISED, "you may only see your own user")
    if name != call.user.name:
        raise SubsonicError(NOT_FOUND, "only your own user is shown here; see 'homekeep user list'")
    folders = [r["id"] for r in call.svc.library.roots()]
    return {
        "user": {
            "username": call.user.name,
            "scrobblingEnabled": True,
            "adminRole": call.user.admin,
            "settingsRole": False,
            "downloadRole": True,
            "uploadRole": False,
            "playlistRole": True,
            "coverArtRole": False,
            "commentRole": False,
            "podcastRole": False,
            "streamRole": True,
            "jukeboxRole": False,
            "shareRole": False,
            "videoConversionRole": False,
            "folder": folders,
        }
    }


def get_scan_status(call: Call) -> dict[str, Any]:
    count = call.svc.db.query_one("SELECT COUNT(*) FROM tracks")
    return {"scanStatus": {"scanning": call.scans.running, "count": int(count[0]) if count else 0}}


def start_scan(call: Call) -> dict[str, Any]:
    if not call.user.admin:
        raise SubsonicError(NOT_AUTHORISED, "only an admin may start a scan")
    call.scans.start()
    return get_scan_status(call)


HANDLERS: dict[str, Handler] = {
    "getPlaylists": get_playlists,
    "getPlaylist": get_playlist,
    "createPlaylist": create_playlist,
    "updatePlaylist": update_playlist,
    "deletePlaylist": delete_playlist,
    "scrobble": scrobble,
    "star": star,
    "unstar": unstar,
    "getStarred": get_starred,
    "getStarred2": get_starred2,
    "getPlayQueue": get_play_queue,
    "savePlayQueue": save_play_queue,
    "getUser": get_user,
    "getScanStatus": get_scan_status,
    "startScan": start_scan,
}
