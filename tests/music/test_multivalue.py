# mypy: disable-error-code="no-untyped-call, attr-defined"
"""Multi-valued artist and genre tags: every value kept, a track listed under each."""

from __future__ import annotations

from pathlib import Path

import pytest

from homekeep.music.catalog import artist_id
from homekeep.music.library import Library as Queries
from tests.music import media
from tests.music.conftest import Library

ARTISTS = ["Alice Keys", "Bob Strings", "Carol Drums"]
GENRES = ["Jazz", "Funk"]


def _tag_many(path: Path, fmt: str) -> None:
    """Write several artists and genres the way each tag system stores them."""
    from mutagen import File
    from mutagen.apev2 import APEv2
    from mutagen.id3 import TCON, TPE1

    if fmt in ("mp3", "aiff", "wav"):
        audio = File(path)
        audio.tags.add(TPE1(encoding=3, text=ARTISTS))  # one frame, several values
        audio.tags.add(TCON(encoding=3, text=GENRES))
        audio.save()
    elif fmt in ("flac", "vorbis", "opus"):
        audio = File(path)
        audio["ARTIST"] = ARTISTS  # repeated ARTIST= comments
        audio["GENRE"] = GENRES
        audio.save()
    elif fmt in ("aac", "alac"):
        audio = File(path)
        audio["\xa9ART"] = ARTISTS
        audio["\xa9gen"] = GENRES
        audio.save()
    elif fmt in ("ape", "wavpack"):
        ape = APEv2(path)
        ape["Artist"] = ARTISTS  # NUL-separated values of one item
        ape["Genre"] = GENRES
        ape.save(path)
    else:  # wma: one attribute per value
        audio = File(path)
        audio["Author"] = ARTISTS
        audio["WM/Genre"] = GENRES
        audio.save()


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_every_artist_and_genre_is_kept(library: Library, fmt: str) -> None:
    path = library.add("multi/song", fmt, title="Together", album="Ensemble", track=1)
    _tag_many(path, fmt)
    result = library.scan()
    assert result.counts["errors"] == 0
    queries = Queries(library.db)
    track = queries.tracks(q=None, album_id=None, artist_id=None, limit=10, offset=0)["items"][0]
    assert [a["name"] for a in track["artists"]] == ARTISTS
    assert track["genres"] == GENRES
    assert track["artist"] == "Alice Keys; Bob Strings; Carol Drums"
    # the album is filed under the main (first) artist, not under a joined name
    assert track["artist_id"] == artist_id("Alice Keys")
    album = queries.album(track["album_id"])
    assert album["album_artist"] == "Alice Keys"
    # a player lists the track under each artist and each genre
    for name in ARTISTS:
        found = queries.tracks(q=None, album_id=None, artist_id=artist_id(name), limit=10, offset=0)
        assert [t["id"] for t in found["items"]] == [track["id"]], name
        assert queries.artist(artist_id(name))["track_count"] == 1
        assert [a["id"] for a in queries.artist(artist_id(name))["albums"]] == [album["id"]]
    for genre in GENRES:
        found = queries.tracks(
            q=None, album_id=None, artist_id=None, genre=genre.lower(), limit=10, offset=0
        )
        assert found["total"] == 1, genre
    genres = queries.genres(q=None, limit=10, offset=0)["items"]
    assert [(g["name"], g["tracks"]) for g in genres] == [("Funk", 1), ("Jazz", 1)]


def test_id3v1_genre_numbers_are_named(library: Library) -> None:
    from mutagen import File
    from mutagen.id3 import TCON

    path = library.add("numbered", "mp3", title="T", artist="A", album="B")
    audio = File(path)
    audio.tags.add(TCON(encoding=3, text=["(17)", "Electronic"]))
    audio.save()
    library.scan()
    assert library.rows("SELECT genre FROM tracks") == [{"genre": "Rock; Electronic"}]


def test_a_rescan_after_dropping_artists_forgets_them(library: Library) -> None:
    path = library.add("song", "flac", title="T", album="B")
    _tag_many(path, "flac")
    library.scan()
    media.set_tag(path, "ARTIST", "Alice Keys")
    library.scan()
    assert library.rows("SELECT name FROM track_artists") == [{"name": "Alice Keys"}]
    assert [r["name"] for r in library.rows("SELECT name FROM artists ORDER BY name")] == [
        "Alice Keys"
    ]


def test_a_library_from_before_keeps_its_artists_and_genres(tmp_path: Path) -> None:
    from homekeep.core.db import Database
    from homekeep.music.store import MIGRATIONS

    path = tmp_path / "music.sqlite"
    old = Database(path, area="music", migrations=MIGRATIONS[:1])
    with old.transaction() as conn:
        conn.execute("INSERT INTO roots (id, path, added_at) VALUES (1, '/m', 'now')")
        conn.execute(
            "INSERT INTO files (id, root_id, path, dir, ext, kind, size, mtime_ns, ctime_ns,"
            " inode) VALUES (7, 1, 'a.mp3', '', 'mp3', 'audio', 1, 1, 1, 1)"
        )
        conn.execute(
            "INSERT INTO tracks (file_id, title, artist, genre, artist_id, album_artist_id,"
            " album_id) VALUES (7, 'T', 'Solo', 'Blues', ?, ?, 'x')",
            (artist_id("Solo"), artist_id("Solo")),
        )
    old.close()
    db = Database(path, area="music", migrations=MIGRATIONS)
    try:
        track = Queries(db).track(7)
        assert track["artists"] == [{"id": artist_id("Solo"), "name": "Solo"}]
        assert track["genres"] == ["Blues"]
    finally:
        db.close()


def test_the_api_lists_a_track_under_each_artist_and_genre(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    from tests.support import create_token, run_cli, running

    root, data = tmp_path / "music", tmp_path / "data"
    path = media.write_track(clips["flac"], "flac", root / "Duets" / "01.flac",
                             {"title": "Together", "album": "Duets", "track": 1})  # fmt: skip
    _tag_many(path, "flac")
    media.write_track(clips["mp3"], "mp3", root / "Duets" / "02.mp3",
                      {"title": "Alone", "artist": "Bob Strings", "album": "Duets",
                       "genre": "Funk", "track": 2})  # fmt: skip
    assert run_cli("music", "scan", root, data_dir=data).returncode == 0
    token = create_token(data, "player", "music")
    with running(["serve", "--port", "0"], data_dir=data) as srv, srv.client(token) as client:
        bob = artist_id("Bob Strings")
        tracks = client.get("/api/music/tracks", params={"artist_id": bob}).json()
        assert [t["title"] for t in tracks["items"]] == ["Together", "Alone"]  # by artist
        together = tracks["items"][0]
        assert [a["name"] for a in together["artists"]] == ARTISTS
        assert together["genres"] == GENRES
        assert client.get(f"/api/music/artists/{bob}").json()["track_count"] == 2
        funk = client.get("/api/music/tracks", params={"genre": "Funk"}).json()
        assert funk["total"] == 2
        genres = client.get("/api/music/genres").json()
        assert [(g["name"], g["tracks"]) for g in genres["items"]] == [("Funk", 2), ("Jazz", 1)]
        one = client.get(f"/api/music/tracks/{together['id']}").json()
        assert one["artists"] == together["artists"]
