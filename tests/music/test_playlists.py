"""Playlists as .m3u8 files: written atomically, read back from disk, imported with a report."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from homekeep.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from homekeep.music.playlists import MAX_ENTRIES, Playlists
from tests.music import player
from tests.music.conftest import Library
from tests.music.player import Player


@pytest.fixture
def lists(library: Library, tmp_path: Path) -> Playlists:
    library.add("Band/Album/01", "flac", title="One", artist="Band", album="Album", track=1)
    library.add("Band/Album/02", "flac", title="Two", artist="Band", album="Album", track=2)
    library.add(unicodedata.normalize("NFD", "Zoë/Café/03"), "mp3", title="Three", artist="Zoë")
    library.scan()
    # a token without a user works on the shared folder: Playlists as it is
    return library.service(playlists_dir=tmp_path / "lists").playlists.of(None).own


def _ids(library: Library) -> dict[str, int]:
    return {r["title"]: r["file_id"] for r in library.rows("SELECT file_id, title FROM tracks")}


def test_create_edit_and_the_file_on_disk(lists: Playlists, library: Library) -> None:
    ids = _ids(library)
    made = lists.create("Evening", [ids["One"], ids["Two"]])
    path = lists.folder / "Evening.m3u8"
    assert path.read_text("utf-8") == (
        "#EXTM3U\n#EXTINF:1,Band - One\n../music/Band/Album/01.flac\n"
        "#EXTINF:1,Band - Two\n../music/Band/Album/02.flac\n"
    )
    assert made.track_ids() == [ids["One"], ids["Two"]]
    lists.add(made.id, [ids["Three"]], position=0)
    lists.reorder(made.id, [1, 2, 0])
    assert lists.read(made.id).track_ids() == [ids["One"], ids["Two"], ids["Three"]]
    lists.remove(made.id, [1])
    renamed = lists.rename(made.id, "Late evening")
    assert renamed.id == "Late evening.m3u8"
    assert not path.exists()
    assert lists.read(renamed.id).track_ids() == [ids["One"], ids["Three"]]
    assert [p.name for p in lists.folder.iterdir()] == ["Late evening.m3u8"]  # no temp left
    with pytest.raises(Conflict):
        lists.create("Late evening")
    lists.delete(renamed.id)
    assert lists.summaries() == []


def test_an_edit_by_another_program_is_read_back(lists: Playlists, library: Library) -> None:
    ids = _ids(library)
    made = lists.create("Mine", [ids["One"]])
    with (lists.folder / made.id).open("a", encoding="utf-8") as fh:
        fh.write("../music/Band/Album/02.flac\n../music/missing.flac\n/etc/hostname\n")
    again = lists.read(made.id)
    assert again.track_ids() == [ids["One"], ids["Two"]]
    assert [e.problem for e in again.entries] == [
        None, None, "not found in the library", "outside the music roots",
    ]  # fmt: skip
    lists.remove(made.id, [0])  # kept as written: nothing another program wrote is lost
    assert "../music/missing.flac\n/etc/hostname\n" in (lists.folder / made.id).read_text("utf-8")


def test_import_finds_tracks_in_any_spelling(
    lists: Playlists, library: Library, tmp_path: Path
) -> None:
    ids = _ids(library)
    outside = tmp_path / "elsewhere.mp3"
    outside.write_bytes(b"not in the library")
    root = str(library.root)
    text = "\r\n".join([
        "#EXTM3U",
        "#EXTINF:1,Band - One",
        f"{root}/Band/Album/01.flac",  # absolute
        "Band\\Album\\02.flac",  # relative to a root, Windows separators
        "C:\\Users\\me\\Music\\Zoë\\Café\\03.mp3",  # another machine, NFC where disk has NFD
        "Band/Album/99.flac",
        str(outside),
    ])  # fmt: skip
    report = lists.import_m3u("Imported", text.encode("cp1252"))
    assert report["imported"] == 3
    assert [(r["line"], r["problem"]) for r in report["not_found"]] == [
        (3, "not found in the library"), (4, "outside the music roots"),
    ]  # fmt: skip
    assert lists.read("Imported.m3u8").track_ids() == [ids["One"], ids["Two"], ids["Three"]]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x00\x01binary", InvalidInput),
        (b"\xff\xfe\x00\xd8", InvalidInput),  # a UTF-16 mark, then a lone surrogate
        (b"x" * (5 * 1024 * 1024), PayloadTooLarge),
        (("a.mp3\n" * (MAX_ENTRIES + 1)).encode(), PayloadTooLarge),
    ],
)
def test_import_refuses_bad_files_and_writes_nothing(
    lists: Playlists, data: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        lists.import_m3u("Bad", data)
    assert not lists.folder.exists() or list(lists.folder.iterdir()) == []


def test_import_of_utf16(lists: Playlists, library: Library) -> None:
    report = lists.import_m3u("Wide", "#EXTM3U\nBand/Album/01.flac\n".encode("utf-16"))
    assert report["imported"] == 1


@pytest.mark.parametrize("name", ["", " ", ".hidden", "a/b", "a\\b", "x" * 121, "tab\there"])
def test_bad_names(lists: Playlists, name: str) -> None:
    with pytest.raises(InvalidInput):
        lists.create(name)


@pytest.mark.parametrize("playlist_id", ["../x.m3u8", "x", "/etc/passwd", "nope.m3u8", ".m3u8"])
def test_unknown_ids(lists: Playlists, playlist_id: str) -> None:
    with pytest.raises(NotFound):
        lists.read(playlist_id)


# -- through the API ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path], covers: dict[str, bytes]
) -> Iterator[Player]:
    with player.running(tmp_path_factory.mktemp("lists"), clips, covers) as running:
        yield running


def test_playlist_api(srv: Player) -> None:
    with srv.client() as c:
        tracks = c.get("/api/music/tracks", params={"limit": 500}).json()["items"]
        by_title = {t["title"]: t["id"] for t in tracks}
        made = c.post("/api/music/playlists",
                      json={"name": "Trip", "track_ids": [by_title["Song 1"]]})  # fmt: skip
        assert made.status_code == 201
        pid = made.json()["id"]
        c.post(f"/api/music/playlists/{pid}/tracks", json={"track_ids": [by_title["Blue"]]})
        c.put(f"/api/music/playlists/{pid}/order", json={"order": [1, 0]})
        got = c.get(f"/api/music/playlists/{pid}").json()
        assert [i["track_id"] for i in got["items"]] == [by_title["Blue"], by_title["Song 1"]]
        file = c.get(f"/api/music/playlists/{pid}/m3u8")
        assert file.text == (srv.data / "music" / "playlists" / "Trip.m3u8").read_text()
        assert file.text.startswith("#EXTM3U\n#EXTINF:1,Trio - Blue\n")
        imported = c.post("/api/music/playlists/import", params={"name": "From phone"},
                          content=b"#EXTM3U\nTrio/Live/01.wv\nnope.mp3\n")  # fmt: skip
        assert imported.status_code == 201
        assert imported.json()["imported"] == 1
        assert [n["path"] for n in imported.json()["not_found"]] == ["nope.mp3"]
        for method, url, body, status in [
            ("post", "/api/music/playlists", {"name": "../up"}, 422),
            ("post", "/api/music/playlists", {"name": "Trip"}, 409),
            ("post", "/api/music/playlists", {"name": "x", "track_ids": [2**63]}, 422),
            ("post", "/api/music/playlists", {"name": "y", "track_ids": [123456789]}, 404),
            ("put", f"/api/music/playlists/{pid}/order", {"order": [0, 0]}, 422),
            ("post", f"/api/music/playlists/{pid}/remove", {"positions": [7]}, 422),
            ("get", "/api/music/playlists/..%2F..%2Fetc%2Fpasswd", None, 404),
            ("patch", f"/api/music/playlists/{pid}", {"name": "a/b"}, 422),
        ]:
            answer = c.request(method, url, json=body)
            assert answer.status_code == status, (url, body, answer.text)
            assert set(answer.json()["error"]) == {"code", "message"}
        huge = c.post("/api/music/playlists/import", params={"name": "big"},
                      content=b"a" * (5 * 1024 * 1024))  # fmt: skip
        assert huge.status_code == 413
        assert c.delete(f"/api/music/playlists/{pid}").status_code == 204
        names = [p["name"] for p in c.get("/api/music/playlists").json()]
        assert names == ["From phone"]


def test_cookie_writes_need_csrf(srv: Player) -> None:
    with httpx.Client(base_url=srv.server.url, timeout=30) as anonymous:
        assert anonymous.get("/api/music/playlists").status_code == 401
