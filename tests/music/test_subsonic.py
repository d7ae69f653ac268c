# mypy: disable-error-code="no-untyped-call"
"""The Subsonic API through a real `homekeep serve`, driven by real client libraries
(py-sonic, py-opensonic) and by the request shapes real apps send."""

from __future__ import annotations

import hashlib
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import libopensonic
import libsonic
import pytest
from PIL import Image

from tests.music import player
from tests.music.player import PASSWORD, Player
from tests.support import WebSession

NS = "{http://subsonic.org/restapi}"


def _xml(data: bytes) -> ET.Element:
    """Parse an answer of our own server under test."""
    return ET.fromstring(data)  # noqa: S314


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path], covers: dict[str, bytes]
) -> Iterator[Player]:
    with player.running(tmp_path_factory.mktemp("subsonic"), clips, covers) as running:
        yield running


@pytest.fixture
def sonic(srv: Player) -> libsonic.Connection:
    """py-sonic as apps use it: salted-token auth, form POSTs."""
    return libsonic.Connection("http://127.0.0.1", "ann", PASSWORD, port=srv.port)


def _songs(sonic: libsonic.Connection) -> dict[str, dict[str, Any]]:
    found = sonic.search3("", artistCount=0, albumCount=0, songCount=500)
    return {s["title"]: s for s in found["searchResult3"]["song"]}


def test_browse_with_py_sonic(sonic: libsonic.Connection) -> None:
    assert sonic.ping() is True
    assert sonic.getLicense()["license"]["valid"] is True
    folders = sonic.getMusicFolders()["musicFolders"]["musicFolder"]
    assert [f["name"] for f in folders] == ["music"]
    index = sonic.getArtists()["artists"]["index"]
    names = [a["name"] for letter in index for a in letter["artist"]]
    assert names == ["Band", "Tone", "Trio", "Various Artists", "Zoë"]
    band = next(a for letter in index for a in letter["artist"] if a["name"] == "Band")
    artist = sonic.getArtist(band["id"])["artist"]
    assert [a["name"] for a in artist["album"]] == ["Album"]
    album = sonic.getAlbum(artist["album"][0]["id"])["album"]
    assert [s["title"] for s in album["song"]] == ["Song 1", "Song 2", "Song 3"]
    assert (album["songCount"], album["year"], album["genre"]) == (3, 2010, "Rock")
    song = sonic.getSong(album["song"][0]["id"])["song"]
    assert (song["suffix"], song["contentType"], song["track"]) == ("flac", "audio/flac", 1)
    directory = sonic.getMusicDirectory(band["id"])["directory"]
    assert [c["title"] for c in directory["child"]] == ["Album"]
    songs = sonic.getMusicDirectory(directory["child"][0]["id"])["directory"]["child"]
    assert len(songs) == 3
    indexes = sonic.getIndexes()["indexes"]["index"]
    assert [i["name"] for i in indexes] == ["B", "T", "V", "Z"]
    genres = {g["value"]: g["songCount"] for g in sonic.getGenres()["genres"]["genre"]}
    assert genres == {"Jazz": 2, "Pop": 2, "Rock": 3}
    jazz = sonic.getSongsByGenre("Jazz")["songsByGenre"]["song"]
    assert {s["title"] for s in jazz} == {"Blue", "Green"}
    assert len(sonic.getRandomSongs(size=4)["randomSongs"]["song"]) == 4


@pytest.mark.parametrize(
    "kind",
    ["random", "newest", "highest", "frequent", "recent", "alphabeticalByName",
     "alphabeticalByArtist", "starred", "byYear", "byGenre"],
)  # fmt: skip
def test_every_album_list_type(sonic: libsonic.Connection, kind: str) -> None:
    extra: dict[str, int | str] = {"fromYear": 2020, "toYear": 1990} if kind == "byYear" else {}
    extra |= {"genre": "Jazz"} if kind == "byGenre" else {}
    albums = sonic.getAlbumList2(kind, size=500, **extra)["albumList2"].get("album", [])
    titles = [a["name"] for a in albums]
    if kind == "alphabeticalByName":
        assert titles == ["Album", "Café", "Hits", "Live", "Tones"]
    if kind == "byYear":
        assert titles == ["Album", "Hits"]  # newest first: fromYear > toYear
    if kind == "byGenre":
        assert titles == ["Live"]
    if kind in ("random", "newest", "highest"):
        assert sorted(titles) == ["Album", "Café", "Hits", "Live", "Tones"]
    old = sonic.getAlbumList(kind, size=2, **extra)["albumList"].get("album", [])
    assert all(a["isDir"] for a in old)


def test_stream_and_download_are_the_file(srv: Player, sonic: libsonic.Connection) -> None:
    songs = _songs(sonic)
    for title, rel in (("Song 2", "Band/Album/02.flac"), ("Hit 1", "Comp/01.mp3")):
        data = (srv.root / rel).read_bytes()
        assert sonic.stream(songs[title]["id"]).read() == data
        assert sonic.download(songs[title]["id"]).read() == data
    opus = sonic.stream(songs["Blue"]["id"], tformat="opus").read()
    assert opus.startswith(b"OggS")
    lossy = sonic.stream(songs["Hit 1"]["id"], tformat="flac").read()
    assert lossy == (srv.root / "Comp/01.mp3").read_bytes()  # never lossy to lossless


def test_cover_art_with_size(sonic: libsonic.Connection, covers: dict[str, bytes]) -> None:
    song = _songs(sonic)["Song 1"]
    original = sonic.getCoverArt(song["coverArt"]).read()
    assert original == covers["large"]
    for size in (100, 256, 777):
        small = sonic.getCoverArt(song["coverArt"], size=size).read()
        with Image.open(io.BytesIO(small)) as img:
            assert img.size == (size, size)
    assert sonic.getCoverArt(song["id"], size=64).read()[:2] == b"\xff\xd8"
    assert sonic.getCoverArt(song["coverArt"], size=5000).read() == covers["large"]


def test_search_everything_in_pages_of_500(srv: Player, sonic: libsonic.Connection) -> None:
    # Symfonium: search3?query="" (with the quotes), songCount=500, then the next page
    first = srv.rest("search3", query='""', songCount="500", songOffset="0", artistCount="0",
                     albumCount="0").json()["subsonic-response"]  # fmt: skip
    assert first["status"] == "ok"
    assert len(first["searchResult3"]["song"]) == 9
    after = srv.rest("search3", query='""', songCount="500", songOffset="500").json()
    assert after["subsonic-response"]["searchResult3"]["song"] == []
    found = sonic.search3("crème")["searchResult3"]
    assert [s["title"] for s in found["song"]] == ["Crème"]
    assert sonic.search2("Trio")["searchResult2"]["artist"][0]["name"] == "Trio"


def test_playlists_with_py_sonic(srv: Player, sonic: libsonic.Connection) -> None:
    songs = _songs(sonic)
    ids = [songs[t]["id"] for t in ("Song 1", "Blue", "Crème")]
    made = sonic.createPlaylist(name="Road trip", songIds=ids)["playlist"]
    assert [e["title"] for e in made["entry"]] == ["Song 1", "Blue", "Crème"]
    on_disk = srv.data / "music" / "playlists" / "ann" / "Road trip.m3u8"  # ann's own folder
    text = on_disk.read_text("utf-8")
    assert text.startswith("#EXTM3U\n#EXTINF:1,Band - Song 1\n")
    assert "../../../../music/Band/Album/01.flac" in text
    sonic.updatePlaylist(made["id"], songIdsToAdd=[songs["Hit 2"]["id"]],
                         songIndexesToRemove=[0])  # fmt: skip
    listed = sonic.getPlaylists()["playlists"]["playlist"]
    assert [(p["name"], p["songCount"]) for p in listed] == [("Road trip", 3)]
    again = sonic.getPlaylist(made["id"])["playlist"]
    assert [e["title"] for e in again["entry"]] == ["Blue", "Crème", "Hit 2"]
    sonic.deletePlaylist(made["id"])
    assert not on_disk.exists()


def test_each_user_has_their_own_playlists(srv: Player) -> None:
    songs = {s["title"]: s["id"] for s in srv.rest("search3", query="")
             .json()["subsonic-response"]["searchResult3"]["song"]}  # fmt: skip
    made = srv.rest("createPlaylist", name="Ann's", songId=songs["Blue"]).json()
    assert made["subsonic-response"]["status"] == "ok"
    with srv.client() as token:  # a token without a user: the shared playlists
        party = token.post("/api/music/playlists", json={"name": "Party",
                           "track_ids": [int(songs["Hit 1"])]})  # fmt: skip
        assert party.status_code == 201
        assert [p["name"] for p in token.get("/api/music/playlists").json()] == ["Party"]
    try:
        assert (srv.data / "music" / "playlists" / "Party.m3u8").is_file()
        assert (srv.data / "music" / "playlists" / "ann" / "Ann's.m3u8").is_file()
        ann = srv.rest("getPlaylists").json()["subsonic-response"]["playlists"]["playlist"]
        assert [(p["id"], p["owner"], p["public"]) for p in ann] == [
            ("Ann's.m3u8", "ann", False),
            ("shared:Party.m3u8", "", True),
        ]
        root = srv.rest("getPlaylists", user="root").json()["subsonic-response"]
        assert [p["name"] for p in root["playlists"]["playlist"]] == ["Party"]
        # another user's playlist is not there for root; the shared one is read-only
        other = srv.rest("getPlaylist", user="root", id="Ann's.m3u8").json()
        assert other["subsonic-response"]["error"]["code"] == 70
        shared = srv.rest("getPlaylist", id="shared:Party.m3u8").json()["subsonic-response"]
        assert [e["title"] for e in shared["playlist"]["entry"]] == ["Hit 1"]
        refused = srv.rest("deletePlaylist", id="shared:Party.m3u8").json()
        assert refused["subsonic-response"]["error"]["code"] == 50
        for escape in ("shared:../ann/Ann's.m3u8", "../ann/Ann's.m3u8", "shared:ann"):
            answer = srv.rest("getPlaylist", user="root", id=escape).json()
            assert answer["subsonic-response"]["error"]["code"] == 70, escape
    finally:
        srv.rest("deletePlaylist", id="Ann's.m3u8")
        (srv.data / "music" / "playlists" / "Party.m3u8").unlink()


def test_scrobble_star_and_play_queue(sonic: libsonic.Connection) -> None:
    songs = _songs(sonic)
    green = songs["Green"]
    sonic.scrobble(green["id"])
    sonic.scrobble(green["id"], submission=False)  # "now playing": no count
    sonic.scrobble(green["id"])
    assert sonic.getSong(green["id"])["song"]["playCount"] == 2
    frequent = sonic.getAlbumList2("frequent")["albumList2"]["album"]
    assert [a["name"] for a in frequent] == ["Live"]
    sonic.star(sids=[songs["Blue"]["id"]], albumIds=[green["albumId"]])
    starred = sonic.getStarred2()["starred2"]
    assert [s["title"] for s in starred["song"]] == ["Blue"]
    assert [a["name"] for a in starred["album"]] == ["Live"]
    assert sonic.getAlbumList2("starred")["albumList2"]["album"][0]["name"] == "Live"
    sonic.unstar(sids=[songs["Blue"]["id"]])
    assert sonic.getStarred2()["starred2"]["song"] == []
    queue = [songs[t]["id"] for t in ("Song 3", "Hit 1", "Blue")]
    sonic.savePlayQueue(queue, current=queue[1], position=61_500)
    saved = sonic.getPlayQueue()["playQueue"]
    assert [e["id"] for e in saved["entry"]] == queue
    assert (saved["current"], saved["position"], saved["username"]) == (queue[1], 61_500, "ann")


def _personal_token(srv: Player) -> str:
    web = WebSession.open(srv.server.url)
    assert web.login("ann", "login-pass-123").status_code == 303
    made = web.post("/account/tokens", {"name": "phone", "scope": "music"})
    found = re.search(r'id="new-token-secret">([^<]+)<', made.text)
    assert found is not None
    return found[1]


def test_py_opensonic_with_an_api_key(srv: Player) -> None:
    conn = libopensonic.Connection("http://127.0.0.1", api_key=_personal_token(srv),
                                   port=srv.port)  # fmt: skip
    assert conn.ping()
    names = {e.name for e in conn.get_open_subsonic_extensions()}
    assert "apiKeyAuthentication" in names
    albums = conn.get_album_list2("alphabeticalByName", size=10)
    assert [a.name for a in albums] == ["Album", "Café", "Hits", "Live", "Tones"]
    album = conn.get_album(albums[0].id)
    assert [s.title for s in album.song or []] == ["Song 1", "Song 2", "Song 3"]
    user = conn.get_user("ann")
    assert user.username == "ann"
    assert conn.get_scan_status().count == 9


def test_py_opensonic_with_a_password(srv: Player) -> None:
    conn = libopensonic.Connection("http://127.0.0.1", "ann", PASSWORD, port=srv.port)
    found = conn.search3("Blue")
    assert [s.title for s in found.song or []] == ["Blue"]
    assert conn.create_playlist(name="Mix", song_ids=[s.id for s in found.song or []])
    mix = next(p for p in conn.get_playlists() if p.name == "Mix")
    assert mix.song_count == 1
    assert [e.title for e in conn.get_playlist(mix.id).entry or []] == ["Blue"]
    conn.delete_playlist(mix.id)


def test_dsub_requests(srv: Player) -> None:
    """DSub: XML, v=1.2.0, the password hex-encoded after enc:."""
    hexed = "enc:" + PASSWORD.encode().hex()
    with httpx.Client(base_url=srv.server.url, timeout=30) as c:
        for endpoint in ("ping.view", "getIndexes.view", "getMusicFolders.view"):
            answer = c.get(f"/rest/{endpoint}", params={"u": "ann", "p": hexed, "v": "1.2.0",
                                                        "c": "DSub"})  # fmt: skip
            assert answer.headers["content-type"].startswith("application/xml")
            root = _xml(answer.content)
            assert root.tag == f"{NS}subsonic-response"
            assert root.get("status") == "ok", answer.text
        index = _xml(c.get("/rest/getIndexes.view", params={
            "u": "ann", "p": hexed, "v": "1.2.0", "c": "DSub"}).content)  # fmt: skip
        artists = [a.get("name") for a in index.iter(f"{NS}artist")]
        assert artists == ["Band", "Tone", "Trio", "Various Artists", "Zoë"]
        genres = _xml(c.get("/rest/getGenres.view", params={
            "u": "ann", "p": hexed, "v": "1.2.0", "c": "DSub"}).content)  # fmt: skip
        assert sorted(g.text or "" for g in genres.iter(f"{NS}genre")) == ["Jazz", "Pop", "Rock"]


def test_substreamer_ping(srv: Player) -> None:
    """Substreamer: GET /rest/ping.view with salted-token auth and f=json."""
    salt = "a1b2c3"
    token = hashlib.md5((PASSWORD + salt).encode(), usedforsecurity=False).hexdigest()
    with httpx.Client(base_url=srv.server.url, timeout=30) as c:
        shape = {"u": "ann", "t": token, "s": salt, "v": "1.16.1", "c": "Substreamer"}
        answer = c.get("/rest/ping.view", params={**shape, "f": "json"})
        body = answer.json()["subsonic-response"]
        assert (body["status"], body["openSubsonic"]) == ("ok", True)
        jsonp = c.get("/rest/ping", params={"u": "ann", "t": token, "s": salt, "f": "jsonp",
                                            "callback": "cb"})  # fmt: skip
        assert jsonp.text.startswith('cb({"subsonic-response"')
        evil = c.get("/rest/ping", params={"u": "ann", "t": token, "s": salt, "f": "jsonp",
                                           "callback": "alert(1)//"})  # fmt: skip
        assert evil.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 10),
        ({"u": "ann"}, 10),
        ({"u": "ann", "t": "abc"}, 10),
        ({"u": "ann", "p": "wrong-password"}, 40),
        ({"u": "nobody", "p": PASSWORD}, 40),
        ({"u": "ann", "p": "enc:zz"}, 40),
        ({"u": "ann", "p": PASSWORD, "t": "x", "s": "y"}, 43),
        ({"apiKey": "hk_nope", "u": "ann"}, 43),
        ({"apiKey": "hk_000000000000_" + "x" * 43}, 44),
        ({"u": "bob", "p": PASSWORD}, 50),
    ],
)
def test_auth_errors(srv: Player, params: dict[str, str], code: int) -> None:
    with httpx.Client(base_url=srv.server.url, timeout=30) as c:
        answer = c.get("/rest/ping.view", params={**params, "f": "json", "c": "t", "v": "1.16.1"})
    assert answer.status_code == 200
    body = answer.json()["subsonic-response"]
    assert (body["status"], body["error"]["code"]) == ("failed", code)


def test_a_cli_token_is_no_api_key(srv: Player) -> None:
    with httpx.Client(base_url=srv.server.url, timeout=30) as c:
        answer = c.get("/rest/ping", params={"apiKey": srv.token, "f": "json"})
    error = answer.json()["subsonic-response"]["error"]
    assert error["code"] == 44
    assert "personal token" in error["message"]


@pytest.mark.parametrize(
    ("endpoint", "params", "code"),
    [
        ("getAlbum", {}, 10),
        ("getAlbum", {"id": "al-nope"}, 70),
        ("getAlbum", {"id": "42"}, 70),
        ("getArtist", {"id": "x" * 3000}, 0),
        ("getSong", {"id": "9" * 40}, 70),
        ("getSong", {"id": "-1"}, 70),
        ("getSong", {"id": "1e3"}, 70),
        ("getSong", {"id": "١٢"}, 70),
        ("getSong", {"id": "--5"}, 70),
        ("getAlbumList2", {"type": "newest", "size": "--5"}, 0),
        ("getMusicDirectory", {"id": "../../etc"}, 70),
        ("getCoverArt", {"id": "al-nope", "size": "100"}, 70),
        ("getCoverArt", {"id": "1", "size": "-5"}, 0),
        ("getCoverArt", {"id": "1", "size": "99999999999999999999999"}, 0),
        ("getCoverArt", {"id": "1", "size": "0"}, 0),
        ("getAlbumList2", {"type": "evil"}, 0),
        ("getAlbumList2", {"type": "newest", "size": "100000"}, 0),
        ("getAlbumList2", {"type": "newest", "offset": "-1"}, 0),
        ("getAlbumList2", {"type": "byYear"}, 10),
        ("getAlbumList2", {"type": "byGenre"}, 10),
        ("search3", {"query": "x", "songCount": "501"}, 0),
        ("stream", {"id": "1", "maxBitRate": "lots"}, 0),
        ("stream", {"id": "1", "timeOffset": "nan"}, 0),
        ("stream", {"id": "1", "timeOffset": "-3"}, 0),
        ("stream", {"id": "1", "format": "exe"}, 0),
        ("stream", {"id": "99999999"}, 70),
        ("download", {"id": "al-x"}, 70),
        ("scrobble", {"id": "1", "time": "soon"}, 0),
        ("savePlayQueue", {"id": "1", "current": "2"}, 0),
        ("savePlayQueue", {"id": "1", "position": "-1"}, 0),
        ("getPlaylist", {"id": "../../../etc/passwd"}, 70),
        ("getPlaylist", {"id": "nope.m3u8"}, 70),
        ("createPlaylist", {"name": "../escape", "songId": "1"}, 0),
        ("createPlaylist", {"name": "x", "songId": "123456789"}, 70),
        ("updatePlaylist", {"playlistId": "nope.m3u8"}, 70),
        ("star", {"id": "al-missing"}, 70),
        ("getUser", {"username": "root"}, 50),
        ("startScan", {}, 50),
        ("getSongsByGenre", {}, 10),
        ("nonsense", {}, 70),
    ],
)
def test_hostile_params_get_subsonic_errors(
    srv: Player, endpoint: str, params: dict[str, str], code: int
) -> None:
    answer = srv.rest(endpoint, **params)
    assert answer.status_code == (404 if endpoint == "nonsense" else 200)
    body = answer.json()["subsonic-response"]
    assert (body["status"], body["error"]["code"]) == ("failed", code), body
    assert srv.rest("ping").json()["subsonic-response"]["status"] == "ok"


def test_form_post_and_get_agree(srv: Player) -> None:
    form = {"u": "ann", "p": PASSWORD, "f": "json", "c": "t", "v": "1.16.1", "type": "newest"}
    with httpx.Client(base_url=srv.server.url, timeout=30) as c:
        posted = c.post("/rest/getAlbumList2.view", data=form).json()
        got = c.get("/rest/getAlbumList2", params=form).json()
    assert posted["subsonic-response"]["albumList2"] == got["subsonic-response"]["albumList2"]


def test_the_password_is_encrypted_at_rest(srv: Player) -> None:
    db = (srv.data / "music" / "music.sqlite").read_bytes()
    assert PASSWORD.encode() not in db
    key = srv.data / "music" / "subsonic.key"
    assert key.stat().st_mode & 0o777 == 0o600
