"""Album sorts and groups, and album artists: what the player's browse views read."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.music import media
from tests.music.conftest import Library


def _albums(library: Library, **query: Any) -> list[str]:
    found = library.service().library.albums(
        q=None, artist_id=None, release_type=None, compilation=None, limit=100, offset=0,
        **{"sort": "artist", **query},
    )  # fmt: skip
    return [a["title"] for a in found["items"]]


def test_recently_added_is_when_a_file_was_first_scanned(library: Library) -> None:
    old = library.add("Old/Old/01", title="A", artist="Zed", album="Old", date="1971")
    library.add("Old/Old/02", title="B", artist="Zed", album="Old", date="1971")
    library.scan()
    time.sleep(1.1)  # the times are stored to the second: the next album comes a second later
    library.add("New/New/01", title="C", artist="Abe", album="New", date="2001")
    library.scan()
    assert _albums(library, sort="added") == ["New", "Old"]
    assert _albums(library) == ["New", "Old"]  # by artist: Abe, then Zed
    before = library.rows("SELECT title, added_at FROM albums ORDER BY title")

    # a retagged file and a moved one keep the time they came in
    time.sleep(1.1)
    media.set_tag(old, "TIT2", "A (remastered)")
    os.utime(old, (time.time() + 5, time.time() + 5))
    moved = library.root / "Moved" / "02.mp3"
    moved.parent.mkdir()
    (library.root / "Old" / "Old" / "02.mp3").rename(moved)
    library.scan()
    assert library.rows("SELECT title FROM tracks WHERE title LIKE 'A%'") == [
        {"title": "A (remastered)"}
    ]
    assert library.rows("SELECT title, added_at FROM albums ORDER BY title") == before
    assert _albums(library, sort="added") == ["New", "Old"]


def test_genre_and_decade_groups(library: Library) -> None:
    library.add("a/1", title="1", artist="X", album="Blue", date="1959", genre="Jazz")
    library.add("a/2", title="2", artist="X", album="Blue", date="1959", genre="Cool")
    library.add("b/1", title="1", artist="Y", album="Loud", date="1994", genre="Rock")
    library.add("c/1", title="1", artist="Y", album="Undated", genre="rock")
    library.scan()
    lib = library.service().library
    genres = [(g["name"], g["albums"]) for g in lib.groups("genre")]
    # an album is in the group of each of its tracks' genres, case folded (Rock, rock)
    assert genres == [("Cool", 1), ("Jazz", 1), ("Rock", 2)]
    decades = [(g["id"], g["name"], g["albums"]) for g in lib.groups("decade")]
    assert decades == [("1950", "1950s", 1), ("1990", "1990s", 1), ("unknown", "unknown", 1)]
    assert _albums(library, genre="cool") == ["Blue"]
    assert _albums(library, genre="ROCK", sort="title") == ["Loud", "Undated"]
    assert _albums(library, decade=1990) == ["Loud"]
    assert _albums(library, decade=-1) == ["Undated"]
    assert _albums(library, genre="Jazz", decade=1990) == []


def test_compilations_are_filed_under_various_artists(library: Library) -> None:
    library.add("Comp/1", title="Hit", artist="Ann", album="Hits", compilation=True)
    library.add("Comp/2", title="Hit 2", artist="Bob", album="Hits", compilation=True)
    library.add("Ann/Solo/1", title="Own", artist="Ann", album="Solo")
    library.scan()
    lib = library.service().library
    every = lib.artists(q=None, limit=100, offset=0)
    assert [a["name"] for a in every["items"]] == ["Ann", "Bob", "Various Artists"]
    album_artists = lib.artists(q=None, limit=100, offset=0, album_artists=True)
    assert [a["name"] for a in album_artists["items"]] == ["Ann", "Various Artists"]
    ann = next(a for a in every["items"] if a["name"] == "Ann")
    shown = lib.artist(ann["id"])["albums"]
    assert [(a["title"], a["appears_on"]) for a in shown] == [("Solo", False), ("Hits", True)]
    various = next(a for a in every["items"] if a["name"] == "Various Artists")
    assert [(a["title"], a["appears_on"]) for a in lib.artist(various["id"])["albums"]] == [
        ("Hits", False)
    ]
