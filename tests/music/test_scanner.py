"""Scanning real libraries: rescans, moves, broken, hidden and vanishing files, stable ids."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.music import media
from tests.music.conftest import Library


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
    kept = library.add("A/kept", title="kept", artist="A", album="X")
    new = library.add("A/new", title="new", artist="A", album="X")
    changed = library.add("A/changed", title="old title", artist="A", album="X")
    library.scan()
    media.set_tag(changed, "TIT2", "edited")  # changed: it will be read again...
    library.add("A/new2", title="new2", artist="A", album="X")
    new.unlink()
    new = library.add("A/new", title="back", artist="A", album="X")  # ...and so will this
    scanner = library.service().scanner()
    result = scanner.scan([library.root], display=_DeletingDisplay([changed, new]))
    assert result.counts["failed_reads"] == 0
    paths = [r["path"] for r in library.rows("SELECT path FROM files ORDER BY path")]
    assert paths == ["A/kept.mp3", "A/new2.mp3"]
    assert not library.rows("SELECT 1 FROM files WHERE error IS NOT NULL")
    titles = sorted(r["title"] for r in library.rows("SELECT title FROM tracks"))
    assert titles == ["kept", "new2"]
    assert kept.exists()
