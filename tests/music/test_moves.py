# mypy: disable-error-code="no-untyped-call, attr-defined"
"""Move detection: a moved file keeps its id, a look-alike never takes another's data."""

from __future__ import annotations

import shutil
from pathlib import Path

from homekeep.music.tags import SAMPLE_BYTES
from tests.music import media
from tests.music.conftest import Library


def _big_flac(library: Library, rel: str, title: str) -> Path:
    """A FLAC over 2 MiB whose tags sit in the middle, between two 2 MiB picture blocks.

    Its size does not change when its title changes (FLAC keeps padding), so two such
    files differ only in bytes the sampled move hash does not read.
    """
    from mutagen.flac import FLAC

    path = library.add(rel, "flac", title=title, artist="Same Artist", album="Same Album")
    audio = FLAC(path)
    audio.add_picture(media._flac_picture(4, bytes(2 * SAMPLE_BYTES)))
    audio.add_picture(media._flac_picture(8, bytes(2 * SAMPLE_BYTES) + b"x"))
    blocks = audio.metadata_blocks
    blocks.insert(1, blocks.pop())  # STREAMINFO, PICTURE, comments, PICTURE
    audio.save()
    return path


def test_a_look_alike_with_other_tags_is_not_taken_for_a_move(library: Library) -> None:
    old = _big_flac(library, "A/one", "First Title")
    library.scan()
    old_id = library.rows("SELECT id FROM files")[0]["id"]
    new = old.with_name("two.flac")
    shutil.copyfile(old, new)
    media.set_tag(new, "TITLE", "Other Title")  # same length: same size, same head and tail
    assert new.stat().st_size == old.stat().st_size
    with new.open("rb") as a, old.open("rb") as b:
        assert a.read(SAMPLE_BYTES) == b.read(SAMPLE_BYTES)
    old.unlink()
    result = library.scan()
    assert (result.counts["moved"], result.counts["new"], result.counts["deleted"]) == (0, 1, 1)
    rows = library.rows(
        "SELECT f.id, f.path, t.title FROM files f JOIN tracks t ON t.file_id = f.id"
    )
    assert [(r["path"], r["title"]) for r in rows] == [("A/two.flac", "Other Title")]
    assert rows[0]["id"] != old_id


def test_a_big_file_moved_unchanged_keeps_its_id(library: Library) -> None:
    old = _big_flac(library, "A/one", "First Title")
    library.scan()
    old_id = library.rows("SELECT id FROM files")[0]["id"]
    old.rename(library.root / "moved.flac")
    result = library.scan()
    assert result.counts["moved"] == 1
    rows = library.rows("SELECT f.id, t.title FROM files f JOIN tracks t ON t.file_id = f.id")
    assert rows == [{"id": old_id, "title": "First Title"}]
