"""Artists and albums derived from the tracks: album keys, compilations, discs, stable ids."""

from __future__ import annotations

from tests.music.conftest import Library


def _album(lib: Library, title: str) -> dict[str, object]:
    rows = lib.rows("SELECT * FROM albums WHERE title = ?", title)
    assert len(rows) == 1, rows
    return rows[0]


def test_albums_compilations_and_multi_disc(library: Library) -> None:
    for n in (1, 2):
        library.add(f"Band/Debut/0{n}", "flac", title=f"S{n}", artist="Band", album="Debut",
                    track=n, date="1999")  # fmt: skip
    for disc in (1, 2):
        for n in (1, 2):
            library.add(
                f"Band/Double/CD{disc}/0{n}", "mp3", title=f"D{disc}-{n}", artist="Band",
                album="Double", album_artist="Band", track=n, disc=disc, disc_total=2, date="2003",
            )  # fmt: skip
    for n, artist in enumerate(("Ann", "Bob", "Cid"), 1):
        library.add(f"Comp/Hits/0{n}", "vorbis", title=f"H{n}", artist=artist, album="Hits",
                    compilation=True, track=n)  # fmt: skip
    result = library.scan()
    assert result.counts["tracks"] == 9
    debut, double, hits = (_album(library, t) for t in ("Debut", "Double", "Hits"))
    assert (debut["album_artist"], debut["track_count"], debut["year"]) == ("Band", 2, 1999)
    assert (double["track_count"], double["disc_count"], double["dir"]) == (4, 2, "Band/Double")
    assert hits["album_artist"] == "Various Artists"
    assert hits["compilation"] == 1
    assert hits["track_count"] == 3
    names = {r["name"] for r in library.rows("SELECT name FROM artists")}
    assert {"Band", "Ann", "Bob", "Cid", "Various Artists"} <= names


def test_the_same_title_by_two_artists_or_years_makes_two_albums(library: Library) -> None:
    library.add("a/1", title="x", artist="A", album="Greatest Hits", date="1990")
    library.add("b/1", title="y", artist="B", album="Greatest Hits", date="1990")
    library.add("c/1", title="z", artist="A", album="Greatest Hits", date="2000")
    library.scan()
    assert len(library.rows("SELECT * FROM albums WHERE title = 'Greatest Hits'")) == 3


def test_musicbrainz_album_id_keys_the_album(library: Library) -> None:
    mbid = "9e1b8b4e-6a3c-4c8e-8f5e-3c2d6d8b9a10"
    library.add("x/1", title="a", artist="A", album="Live", mb_album_id=mbid, date="2001")
    library.add("x/2", title="b", artist="A", album="Live!", mb_album_id=mbid, date="2002")
    library.scan()
    rows = library.rows("SELECT * FROM albums")
    assert len(rows) == 1
    assert rows[0]["key"] == f"mb:{mbid}"
    assert rows[0]["mb_album_id"] == mbid


def test_album_ids_are_stable_across_full_rescans(library: Library) -> None:
    library.add("a/1", title="x", artist="A", album="One")
    library.scan()
    before = library.rows("SELECT id FROM albums")
    library.scan(full=True)
    assert library.rows("SELECT id FROM albums") == before


def test_missing_tags_are_filed_under_unknown(library: Library) -> None:
    library.add("loose/nothing", "opus")
    library.scan()
    album = library.rows("SELECT title, album_artist FROM albums")[0]
    assert album == {"title": "[Unknown Album]", "album_artist": "[Unknown Artist]"}
