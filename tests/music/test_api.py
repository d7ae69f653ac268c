"""The /api/music endpoints through a real `homekeep serve` process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.music import media
from tests.support import Server, create_token, run_cli, running


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path], covers: dict[str, bytes]
) -> Iterator[tuple[Server, str]]:
    base = tmp_path_factory.mktemp("api")
    root, data = base / "music", base / "data"
    for n in (1, 2, 3):
        media.write_track(clips["flac"], "flac", root / "Band" / "Album" / f"0{n}.flac",
                          {"title": f"Song {n}", "artist": "Band", "album": "Album", "track": n,
                           "date": "2010", "release_type": "album"},
                          ((3, covers["large"]), (4, covers["png"])))  # fmt: skip
    for n, artist in enumerate(("Ann", "Bob"), 1):
        media.write_track(clips["mp3"], "mp3", root / "Comp" / f"0{n}.mp3",
                          {"title": f"Hit {n}", "artist": artist, "album": "Hits",
                           "compilation": True, "track": n})  # fmt: skip
    result = run_cli("music", "scan", root, data_dir=data)
    assert result.returncode == 0, result.stderr
    token = create_token(data, "player", "music")
    with running(["serve", "--port", "0"], data_dir=data) as srv:
        yield srv, token


@pytest.fixture
def client(server: tuple[Server, str]) -> Iterator[httpx.Client]:
    srv, token = server
    with srv.client(token) as c:
        yield c


def test_requires_a_music_token(server: tuple[Server, str]) -> None:
    srv, _ = server
    with srv.client() as anonymous:
        response = anonymous.get("/api/music/albums")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    other = create_token(srv.data_dir or Path(), "other", "all")
    with srv.client("hk_000000000000_" + "x" * 43) as bad:
        assert bad.get("/api/music/albums").status_code == 401
    with srv.client(other) as ok:
        assert ok.get("/api/music/albums").status_code == 200


def test_artists_albums_tracks(client: httpx.Client) -> None:
    artists = client.get("/api/music/artists").json()
    names = [a["name"] for a in artists["items"]]
    assert names == ["Ann", "Band", "Bob", "Various Artists"]
    band = next(a for a in artists["items"] if a["name"] == "Band")
    detail = client.get(f"/api/music/artists/{band['id']}").json()
    assert [a["title"] for a in detail["albums"]] == ["Album"]

    albums = client.get("/api/music/albums", params={"sort": "title"}).json()
    assert albums["total"] == 2
    album = next(a for a in albums["items"] if a["title"] == "Album")
    assert (album["cover_width"], album["track_count"], album["year"]) == (800, 3, 2010)
    full = client.get(f"/api/music/albums/{album['id']}").json()
    assert [t["title"] for t in full["tracks"]] == ["Song 1", "Song 2", "Song 3"]
    assert full["tracks"][0]["format"] == "flac"

    page = client.get("/api/music/tracks", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (5, 2, 1, 2)
    found = client.get("/api/music/tracks", params={"q": "hit 2"}).json()
    assert [t["title"] for t in found["items"]] == ["Hit 2"]
    track = client.get(f"/api/music/tracks/{full['tracks'][0]['id']}").json()
    assert sorted(p["type"] for p in track["pictures"]) == [3, 4]
    assert track["pictures"][0]["width"] in (800, 600)


def test_album_groups(client: httpx.Client) -> None:
    by_type = client.get("/api/music/album-groups", params={"by": "release_type"}).json()
    assert {(g["name"], g["albums"]) for g in by_type} == {("album", 1), ("unknown", 1)}
    comps = client.get("/api/music/album-groups", params={"by": "compilation"}).json()
    assert [(g["name"], g["albums"]) for g in comps] == [("Compilations", 1), ("Albums", 1)]
    only = client.get("/api/music/albums", params={"compilation": "true"}).json()
    assert [a["album_artist"] for a in only["items"]] == ["Various Artists"]
    by_artist = client.get("/api/music/album-groups").json()
    assert {g["name"] for g in by_artist} == {"Band", "Various Artists"}


def test_the_folders_as_on_disk(client: httpx.Client) -> None:
    roots = client.get("/api/music/roots").json()
    top = client.get("/api/music/folders", params={"root": roots[0]["id"]}).json()
    assert top["root"]["path"] == roots[0]["path"]
    assert (top["path"], top["parent"], top["tracks"]) == ("", None, [])
    assert [(f["name"], f["path"], f["tracks"]) for f in top["folders"]] == [
        ("Band", "Band", 3),
        ("Comp", "Comp", 2),
    ]
    band = client.get("/api/music/folders", params={"root": 1, "path": "Band/"}).json()
    [album] = band["folders"]
    assert (album["name"], album["path"], album["tracks"]) == ("Album", "Band/Album", 3)
    assert album["cover_hash"]  # the album stored in that folder lends it its cover
    inside = client.get("/api/music/folders", params={"root": 1, "path": "Band/Album"}).json()
    assert inside["parent"] == "Band"
    assert [t["title"] for t in inside["tracks"]] == ["Song 1", "Song 2", "Song 3"]
    everything = client.get("/api/music/folders/tracks", params={"root": 1}).json()
    assert everything["total"] == 5
    assert [t["title"] for t in everything["items"]][:3] == ["Song 1", "Song 2", "Song 3"]
    # a folder whose name starts like another's is not inside it
    assert client.get("/api/music/folders", params={"root": 1, "path": "Ban"}).status_code == 404


def test_albums_by_group_and_recently_added(client: httpx.Client) -> None:
    newest = client.get("/api/music/albums", params={"sort": "added"}).json()["items"]
    assert {a["title"] for a in newest} == {"Album", "Hits"}
    assert all(a["added_at"] for a in newest)
    decades = client.get("/api/music/album-groups", params={"by": "decade"}).json()
    assert [(g["id"], g["albums"]) for g in decades] == [("2010", 1), ("unknown", 1)]
    assert client.get("/api/music/album-groups", params={"by": "genre"}).json() == []
    in_2010s = client.get("/api/music/albums", params={"decade": 2010}).json()["items"]
    assert [a["title"] for a in in_2010s] == ["Album"]
    album_artists = client.get("/api/music/artists", params={"role": "album_artist"}).json()
    assert [a["name"] for a in album_artists["items"]] == ["Band", "Various Artists"]


def test_covers_full_and_thumbnail(client: httpx.Client, covers: dict[str, bytes]) -> None:
    album = client.get("/api/music/albums", params={"q": "Album"}).json()["items"][0]
    full = client.get(f"/api/music/albums/{album['id']}/cover", params={"size": "full"})
    assert full.status_code == 200
    assert full.headers["content-type"] == "image/jpeg"
    assert full.content == covers["large"]
    thumb = client.get(f"/api/music/albums/{album['id']}/cover")
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.size == (300, 300)
    assert "immutable" in thumb.headers["cache-control"]
    by_hash = client.get(f"/api/music/images/{album['cover_hash']}", params={"size": "thumb"})
    assert by_hash.content == thumb.content
    hits = client.get("/api/music/albums", params={"q": "Hits"}).json()["items"][0]
    none = client.get(f"/api/music/albums/{hits['id']}/cover")
    assert none.status_code == 404
    assert "no front cover" in none.json()["error"]["message"]


def test_reports_and_timings(client: httpx.Client) -> None:
    types = client.get("/api/music/reports/types").json()
    assert {(t["ext"], t["files"]) for t in types} == {("flac", 3), ("mp3", 2)}
    missing = client.get("/api/music/reports/missing-tags", params={"fields": "title,genre"})
    assert len(missing.json()) == 5
    artwork = client.get("/api/music/reports/artwork").json()
    assert [a["problem"] for a in artwork] == ["missing"]
    assert client.get("/api/music/reports/errors").json() == []
    timings = client.get("/api/music/timings").json()
    assert timings[0]["counts"]["tracks"] == 5
    roots = client.get("/api/music/roots").json()
    assert roots[0]["files"] == 5


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/music/albums/nope", 404),
        ("/api/music/artists/nope", 404),
        ("/api/music/tracks/999999", 404),
        ("/api/music/tracks/abc", 422),
        ("/api/music/images/" + "0" * 64, 404),
        ("/api/music/images/../../etc/passwd", 404),
        ("/api/music/images/notahash", 404),
        ("/api/music/albums?limit=100000", 422),
        ("/api/music/albums?sort=evil", 422),
        ("/api/music/albums?offset=-1", 422),
        ("/api/music/album-groups?by=nope", 422),
        ("/api/music/reports/missing-tags?fields=bogus", 400),
        ("/api/music/tracks?q=" + "x" * 5000, 422),
        ("/api/music/tracks/" + "9" * 30, 422),
        ("/api/music/tracks/-1", 404),
        ("/api/music/tracks/1e3", 422),
        ("/api/music/tracks?artist_id=" + "a" * 100, 422),
        ("/api/music/tracks?genre=" + "g" * 300, 422),
        ("/api/music/genres?limit=0", 422),
        ("/api/music/albums?compilation=maybe", 422),
        ("/api/music/albums/%00", 404),
        ("/api/music/albums/nope/cover?size=huge", 422),
        ("/api/music/images/" + "0" * 64 + "?size=huge", 422),
        ("/api/music/timings?limit=0", 422),
        ("/api/music/timings?limit=" + "9" * 30, 422),
        ("/api/music/reports/artwork?min_size=-5", 422),
        ("/api/music/reports/missing-tags?limit=-1", 422),
        ("/api/music/reports/missing-tags?offset=" + "9" * 30, 422),
        ("/api/music/albums?decade=-2", 422),
        ("/api/music/albums?decade=1e3", 422),
        ("/api/music/albums?sort=added;DROP", 422),
        ("/api/music/albums?genre=" + "g" * 300, 422),
        ("/api/music/artists?role=admin", 422),
        # the folder browser: no client path leaves its root
        ("/api/music/folders?root=1&path=..", 400),
        ("/api/music/folders?root=1&path=../..", 400),
        ("/api/music/folders?root=1&path=Band/../../..", 400),
        ("/api/music/folders?root=1&path=/etc", 400),
        ("/api/music/folders?root=1&path=//etc", 400),
        ("/api/music/folders?root=1&path=Band//Album", 400),
        ("/api/music/folders?root=1&path=./Band", 400),
        ("/api/music/folders?root=1&path=..%5C..%5Cetc", 400),
        ("/api/music/folders?root=1&path=Band%00", 400),
        ("/api/music/folders?root=1&path=Band%0A", 400),
        ("/api/music/folders?root=1&path=%2E%2E", 400),
        ("/api/music/folders?root=1&path=" + "a/" * 3000, 422),
        ("/api/music/folders?root=1&path=Nowhere", 404),
        ("/api/music/folders?root=1&path=etc", 404),
        ("/api/music/folders?root=999&path=", 404),
        ("/api/music/folders?root=abc", 422),
        ("/api/music/folders?root=" + "9" * 30, 422),
        ("/api/music/folders?path=Band", 422),
        ("/api/music/folders/tracks?root=1&path=../../etc", 400),
        ("/api/music/folders/tracks?root=1&path=/", 400),
        ("/api/music/folders/tracks?root=1&path=Nowhere", 404),
        ("/api/music/folders/tracks?root=2", 404),
    ],
)
def test_bad_requests_answer_in_the_error_shape(
    client: httpx.Client, path: str, status: int
) -> None:
    response = client.get(path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}


def test_search_text_is_not_sql(client: httpx.Client) -> None:
    for q in ("%", "_", "' OR 1=1 --", "\\"):
        response = client.get("/api/music/tracks", params={"q": q})
        assert response.status_code == 200
        assert response.json()["items"] == []
