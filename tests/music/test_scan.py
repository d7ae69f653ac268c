"""Scanning real libraries: albums, compilations, covers, rescans, roots, broken files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from homekeep.core.errors import NotFound, UsageError
from homekeep.music.scanner import resolve_roots
from tests.music import media
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


def _stat_bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # 1 ns: never compare seconds


def test_rescan_rereads_exactly_the_touched_edited_renamed_deleted(library: Library) -> None:
    paths = [
        library.add(f"A/{n:02d}", "mp3", title=f"t{n}", artist="A", album="Al", track=n)
        for n in range(6)
    ]
    first = library.scan()
    assert (first.counts["new"], first.counts["tags_read"]) == (6, 6)
    ids = {r["path"]: r["file_id"] for r in library.rows(
        "SELECT f.path, t.file_id FROM tracks t JOIN files f ON f.id = t.file_id")}  # fmt: skip

    unchanged = library.scan()
    assert unchanged.counts["unchanged"] == 6
    assert unchanged.counts["tags_read"] == 0

    _stat_bump(paths[0])  # touched
    media.set_tag(paths[1], "TIT2", "edited title")  # edited
    paths[2].rename(paths[2].with_name("renamed.mp3"))  # renamed
    paths[3].unlink()  # deleted
    library.add("A/new", "mp3", title="brand new", artist="A", album="Al")  # added

    result = library.scan()
    c = result.counts
    assert (c["changed"], c["moved"], c["deleted"], c["new"]) == (2, 1, 1, 1)
    assert c["tags_read"] == 3  # touched, edited and added; the renamed file is not re-read
    assert c["unchanged"] == 2
    titles = {r["path"]: r["title"] for r in library.rows(
        "SELECT f.path, t.title FROM tracks t JOIN files f ON f.id = t.file_id")}  # fmt: skip
    assert titles["A/01.mp3"] == "edited title"
    assert "A/03.mp3" not in titles
    assert titles["A/renamed.mp3"] == "t2"
    moved_id = library.rows("SELECT id FROM files WHERE path = 'A/renamed.mp3'")[0]["id"]
    assert moved_id == ids["A/02.mp3"]  # the moved file kept its id, so its data
    assert titles["A/new.mp3"] == "brand new"

    full = library.scan(full=True)
    assert full.counts["tags_read"] == 6


def test_a_moved_file_across_folders_keeps_its_track(library: Library) -> None:
    old = library.add("Old/song", "flac", title="Keep me", artist="A", album="X")
    library.scan()
    new_dir = library.root / "New"
    new_dir.mkdir()
    shutil.copy2(old, new_dir / "song.flac")  # a copy and delete: new inode, same content
    old.unlink()
    result = library.scan()
    assert result.counts["moved"] == 1
    assert result.counts["tags_read"] == 0
    assert library.rows("SELECT f.path FROM tracks t JOIN files f ON f.id = t.file_id") == [
        {"path": "New/song.flac"}
    ]


def test_several_roots_and_roots_that_cannot_be_scanned(library: Library, tmp_path: Path) -> None:
    second = tmp_path / "second"
    library.add("a/1", title="one", artist="A", album="X")
    library.add("b/1", root=second, title="two", artist="B", album="Y")
    result = library.scan(library.root, second)
    assert result.counts["tracks"] == 2
    roots = [r["path"] for r in library.rows("SELECT path FROM roots ORDER BY path")]
    assert roots == sorted([str(library.root), str(second)])
    # scanning one root leaves the other root's tracks alone
    assert library.scan(second).counts["tracks"] == 2
    with pytest.raises(NotFound, match="does not exist"):
        resolve_roots([tmp_path / "missing"])
    with pytest.raises(UsageError, match="not a folder"):
        resolve_roots([library.root / "a" / "1.mp3"])
    with pytest.raises(UsageError, match="inside root"):
        resolve_roots([library.root, library.root / "a"])
    with pytest.raises(UsageError, match="overlaps"):
        library.scan(library.root / "a")
    with pytest.raises(UsageError, match="no music roots"):
        resolve_roots([])


def test_broken_files_never_stop_a_scan(library: Library, clips: dict[str, Path]) -> None:
    library.add("ok/good", "mp3", title="good", artist="A", album="X")
    broken = library.root / "broken"
    broken.mkdir()
    flac = clips["flac"].read_bytes()
    (broken / "truncated.flac").write_bytes(flac[:60])
    (broken / "truncated.mp3").write_bytes(clips["mp3"].read_bytes()[:200])
    (broken / "zero.mp3").write_bytes(b"")
    (broken / "random.mp3").write_bytes(os.urandom(4096))
    (broken / "text.ogg").write_text("hello, I am not audio\n" * 50)
    shutil.copy(clips["flac"], broken / "flac-named.mp3")  # wrong extension
    (broken / "notes.txt").write_text("liner notes")
    cut = library.add("broken/cut-download", "mp3", title="cut", artist="A", album="X")
    cut.write_bytes(cut.read_bytes()[:-3500])  # ID3 and the first frames are left
    result = library.scan()
    assert result.counts["files"] == 9
    flagged = library.rows(
        "SELECT path, error, warning FROM files WHERE error IS NOT NULL OR warning IS NOT NULL"
    )
    errors = {r["path"].rsplit("/", 1)[1]: r for r in flagged}
    assert set(errors) == {
        "truncated.flac", "truncated.mp3", "zero.mp3", "random.mp3", "text.ogg", "flac-named.mp3",
        "cut-download.mp3",
    }  # fmt: skip
    assert "empty file" in errors["zero.mp3"]["error"]
    assert errors["flac-named.mp3"]["error"] is None
    assert errors["flac-named.mp3"]["warning"] == "extension .mp3 but the content is flac"
    tracks = {r["path"] for r in library.rows(
        "SELECT f.path FROM tracks t JOIN files f ON f.id = t.file_id")}  # fmt: skip
    assert str(errors["cut-download.mp3"]["warning"]).startswith("looks truncated")
    assert tracks == {"ok/good.mp3", "broken/flac-named.mp3", "broken/cut-download.mp3"}
    # a broken file that gets fixed is read again and leaves the errors report
    shutil.copy(clips["flac"], broken / "truncated.flac")
    library.scan()
    assert not library.rows(
        "SELECT 1 FROM files WHERE path = 'broken/truncated.flac' AND error IS NOT NULL"
    )


def test_hidden_files_and_symlinked_folders_are_skipped(library: Library, tmp_path: Path) -> None:
    library.add(".hidden/song", title="h", artist="A", album="X")
    library.add("visible/song", title="v", artist="A", album="X")
    elsewhere = tmp_path / "elsewhere"
    library.add("x/song", root=elsewhere, title="e", artist="A", album="X")
    (library.root / "link").symlink_to(elsewhere, target_is_directory=True)
    result = library.scan()
    assert result.counts["files"] == 1


def _cover_of(lib: Library, title: str) -> dict[str, object]:
    rows = lib.rows(
        "SELECT a.cover_source, i.* FROM albums a LEFT JOIN images i ON i.hash = a.cover_hash"
        " WHERE a.title = ?",
        title,
    )
    return rows[0]


def test_covers_embedded_folder_none_corrupt(library: Library, covers: dict[str, bytes]) -> None:
    library.add("E/1", "flac", ((3, covers["large"]), (4, covers["png"])), title="e", artist="A",
                album="Embedded")  # fmt: skip
    library.add("S/1", "aac", ((3, covers["small"]),), title="s", artist="A", album="Small")
    library.add("N/1", "opus", title="n", artist="A", album="None")
    library.add("F/1", "ape", ((3, covers["small"]),), title="f", artist="A", album="Folder")
    (library.root / "F" / "Folder.PNG").write_bytes(covers["png"])
    library.add("C/1", "mp3", title="c", artist="A", album="Corrupt")
    (library.root / "C" / "cover.jpg").write_bytes(covers["corrupt"])
    library.add("M/CD1/1", "mp3", title="m1", artist="A", album="Multi", disc=1)
    library.add("M/CD2/1", "mp3", title="m2", artist="A", album="Multi", disc=2)
    (library.root / "M" / "front.webp").write_bytes(covers["large_red"])  # a JPEG named .webp
    library.scan()

    embedded = _cover_of(library, "Embedded")
    assert (embedded["cover_source"], embedded["width"], embedded["height"]) == (
        "embedded",
        800,
        800,
    )
    store = library.data / "images"
    thumb = store / "thumb" / str(embedded["hash"])[:2] / f"{embedded['hash']}.jpg"
    with Image.open(thumb) as img:
        assert img.size == (300, 300)
    small = _cover_of(library, "Small")
    small_thumb = store / "thumb" / str(small["hash"])[:2] / f"{small['hash']}.jpg"
    with Image.open(small_thumb) as img:
        assert img.size == (120, 100)  # never upscaled
    assert _cover_of(library, "None")["hash"] is None
    folder = _cover_of(library, "Folder")
    assert (folder["cover_source"], folder["width"]) == ("F/folder.png", 600)  # folder wins
    corrupt = _cover_of(library, "Corrupt")
    assert str(corrupt["error"]).startswith("cannot decode image")
    assert _cover_of(library, "Multi")["cover_source"] == "M/front.webp"
    # the back cover is listed with the track, and every distinct image is stored once
    pictures = library.rows("SELECT type FROM pictures ORDER BY type")
    assert [p["type"] for p in pictures] == [3, 3, 3, 4]
    hashes = {r["hash"] for r in library.rows("SELECT hash FROM images")}
    assert len(hashes) == 5
    assert len(list((store / "full").rglob("*"))) - len(list((store / "full").glob("*"))) == 5


def test_cover_priority_is_configurable(library: Library, covers: dict[str, bytes]) -> None:
    library.add("F/1", "mp3", ((3, covers["large"]),), title="f", artist="A", album="Folder")
    (library.root / "F" / "cover.jpg").write_bytes(covers["small"])
    library.scan(cover_priority=["embedded", "cover.*"])
    assert _cover_of(library, "Folder")["cover_source"] == "embedded"


def test_thumbnail_size_change_remakes_thumbnails(
    library: Library, covers: dict[str, bytes]
) -> None:
    library.add("E/1", "mp3", ((3, covers["large"]),), title="e", artist="A", album="E")
    library.scan()
    result = library.scan(thumbnail_size=100)
    assert result.counts["images_new"] == 1
    cover = _cover_of(library, "E")
    with Image.open(
        library.data / "images" / "thumb" / str(cover["hash"])[:2] / f"{cover['hash']}.jpg"
    ) as img:
        assert img.size == (100, 100)


def test_the_process_pool_reads_the_same_as_one_process(library: Library) -> None:
    for n in range(140):  # more than two chunks: below that the scan reads in-process
        fmt = ("mp3", "flac", "vorbis", "aac")[n % 4]
        library.add(f"Pool/{n:03d}", fmt, title=f"t{n}", artist=f"A{n % 5}", album=f"B{n % 7}",
                    track=n)  # fmt: skip
    pooled = library.scan(workers=2)
    assert pooled.workers == 2
    assert pooled.counts["tags_read"] == 140
    rows = library.rows("SELECT file_id, title, artist, album, album_id FROM tracks ORDER BY 1")
    assert library.scan(full=True, workers=1).workers == 1
    assert (
        library.rows("SELECT file_id, title, artist, album, album_id FROM tracks ORDER BY 1")
        == rows
    )
    assert set(pooled.timings) == {"walk", "stat_diff", "tag_read", "artwork", "database"}


def test_a_pool_forked_before_the_scan_reads_the_same(library: Library) -> None:
    import threading

    from homekeep.music.config import MusicConfig
    from homekeep.music.scanner import Scanner, prestart_pool

    for n in range(140):
        library.add(f"Pool/{n:03d}", "mp3", title=f"t{n}", artist="A", album="B", track=n)
    pool = prestart_pool(2)
    assert pool is not None
    try:
        worker_pids = set(pool.map(_pid, range(4)))
        stop = threading.Event()  # a second thread, as a progress display has
        drawer = threading.Thread(target=stop.wait)
        drawer.start()
        try:
            result = Scanner(library.db, library.data, MusicConfig(workers=2)).scan(
                [library.root], pool=pool
            )
        finally:
            stop.set()
            drawer.join()
        assert (result.workers, result.counts["tags_read"]) == (2, 140)
        assert set(pool.map(_pid, range(4))) <= worker_pids  # the same, still running
    finally:
        pool.shutdown()
    titles = {r["title"] for r in library.rows("SELECT title FROM tracks")}
    assert titles == {f"t{n}" for n in range(140)}


def _pid(_: int) -> int:
    import os

    return os.getpid()


def test_file_names_that_are_not_utf8_are_scanned(library: Library) -> None:
    path = library.add("Odd/song", title="odd", artist="A", album="X")
    odd = os.fsencode(library.root / "Odd") + b"/caf\xe9.mp3"
    os.rename(path, odd)  # noqa: PTH104 - a bytes name, which pathlib cannot spell
    first = library.scan()
    assert first.counts["tracks"] == 1
    assert library.rows("SELECT path FROM files") == [{"path": "Odd/caf\\xe9.mp3"}]
    again = library.scan()
    assert (again.counts["unchanged"], again.counts["tags_read"]) == (1, 0)


def test_a_vanished_folder_is_simply_gone(library: Library) -> None:
    library.add("Gone/song", title="gone", artist="A", album="X")
    library.add("Here/song", title="here", artist="A", album="Y")
    library.scan()
    shutil.rmtree(library.root / "Gone")
    result = library.scan()
    assert result.counts["deleted"] == 1
    assert [r["title"] for r in library.rows("SELECT title FROM albums")] == ["Y"]


def test_images_nothing_refers_to_are_removed(library: Library, covers: dict[str, bytes]) -> None:
    song = library.add("A/1", "mp3", ((3, covers["large"]),), title="a", artist="A", album="A")
    library.add("B/1", "mp3", ((3, covers["large"]),), title="b", artist="B", album="B")
    library.scan()
    store = library.data / "images" / "full"
    assert len([p for p in store.rglob("*") if p.is_file()]) == 1
    song.unlink()
    assert library.scan().counts["images_removed"] == 0  # B still shows it
    (library.root / "B" / "1.mp3").unlink()
    assert library.scan().counts["images_removed"] == 1
    assert [p for p in store.rglob("*") if p.is_file()] == []
    assert library.rows("SELECT * FROM images") == []


def test_a_deleted_tracks_id_is_never_given_to_another(library: Library) -> None:
    first = library.add("A/1", title="first", artist="A", album="X")
    library.scan()
    old_id = library.rows("SELECT file_id FROM tracks")[0]["file_id"]
    first.unlink()
    library.scan()
    library.add("B/1", "flac", title="second", artist="B", album="Y")
    library.scan()
    new_id = library.rows("SELECT file_id FROM tracks")[0]["file_id"]
    assert new_id > old_id


def test_a_stored_image_deleted_by_hand_is_reported_not_fatal(
    library: Library, covers: dict[str, bytes]
) -> None:
    library.add("E/1", "mp3", ((3, covers["large"]),), title="e", artist="A", album="E")
    library.scan()
    for stored in (library.data / "images" / "full").rglob("*"):
        if stored.is_file():
            stored.unlink()
    library.scan(thumbnail_size=100)  # remakes thumbnails from the originals
    assert str(_cover_of(library, "E")["error"]).startswith("stored image missing")


class _Task:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        pass


class _DeletingDisplay:
    """A progress display that deletes files when the tag reading starts: a file that
    vanishes after it was found and stat'ed, before its tags are read."""

    def __init__(self, doomed: list[Path]) -> None:
        self.doomed = doomed

    def task(self, description: str, total: float | None = None, *, bytes: bool = False) -> _Task:
        if description == "reading tags":
            for path in self.doomed:
                path.unlink()
        return _Task()


def test_a_file_that_vanishes_during_the_scan_is_simply_gone(library: Library) -> None:
    from homekeep.music.config import MusicConfig
    from homekeep.music.scanner import Scanner

    kept = library.add("A/kept", title="kept", artist="A", album="X")
    new = library.add("A/new", title="new", artist="A", album="X")
    changed = library.add("A/changed", title="old title", artist="A", album="X")
    library.scan()
    media.set_tag(changed, "TIT2", "edited")  # changed: it will be read again...
    library.add("A/new2", title="new2", artist="A", album="X")
    new.unlink()
    new = library.add("A/new", title="back", artist="A", album="X")  # ...and so will this
    result = Scanner(library.db, library.data, MusicConfig(workers=1)).scan(
        [library.root], display=_DeletingDisplay([changed, new])
    )
    assert result.counts["failed_reads"] == 0
    paths = [r["path"] for r in library.rows("SELECT path FROM files ORDER BY path")]
    assert paths == ["A/kept.mp3", "A/new2.mp3"]
    assert not library.rows("SELECT 1 FROM files WHERE error IS NOT NULL")
    titles = sorted(r["title"] for r in library.rows("SELECT title FROM tracks"))
    assert titles == ["kept", "new2"]
    assert kept.exists()
