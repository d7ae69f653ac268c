"""Artwork: embedded and folder covers, thumbnails, and images nothing refers to any more."""

from __future__ import annotations

from PIL import Image

from tests.music.conftest import Library


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
