"""The web player at /music/ in a real headless Chromium against a real `homekeep serve`.

With ``HOMEKEEP_SCREENSHOTS=1`` the screenshots of each view (desktop and phone size) are
written to docs/screenshots/ for the README.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, FilePayload, Page, sync_playwright

from tests.core.test_pages import DESKTOP, shoot, shots_dir
from tests.music.player import Player, running
from tests.support import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def player(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path], covers: dict[str, bytes]
) -> Iterator[Player]:
    with running(tmp_path_factory.mktemp("player"), clips, covers) as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def page(browser: Browser, player: Player) -> Iterator[Page]:
    """A logged-in page on the player, as ann (who may use music)."""
    context = browser.new_context(viewport=DESKTOP)
    found = context.new_page()
    found.goto(f"{player.server.url}/login?next=/music/")
    found.fill("#name", "ann")
    found.fill("#password", "login-pass-123")
    found.click("#login")
    found.wait_for_url(f"{player.server.url}/music/")
    yield found
    context.close()


def audio(page: Page, what: str) -> Any:
    return page.evaluate(f"document.getElementById('audio').{what}")


def call(page: Page, method: str, path: str, body: object = None) -> Any:
    """An API call from the page, with its session: [status, JSON body]."""
    return page.evaluate(
        """async ([method, path, body]) => {
             const r = await homekeep.fetch(path, body === null ? {method} : {method,
               headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
             return [r.status, r.status === 204 ? null : await r.json()];
           }""",
        [method, path, body],
    )


def delete_shown_playlist(page: Page, saved: Path) -> None:
    """Delete the playlist on the page (saying yes to the question); its file goes."""
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-playlist")
    page.wait_for_selector("#view h1:text-is('Playlists')")
    assert not saved.exists()


def open_album(page: Page, title: str) -> None:
    page.goto(page.url.split("#")[0] + "#/albums")
    page.click(f"#albums a.album:has(.title:text-is('{title}'))")
    page.wait_for_selector(f"h1:text-is('{title}')")


def test_play_seek_pause_volume_count_and_the_queue_comes_back(page: Page, player: Player) -> None:
    open_album(page, "Tones")
    page.click("#play-album")
    page.wait_for_function("document.getElementById('audio').currentTime > 0.5", timeout=30_000)
    assert audio(page, "dataset.mode") == "direct"  # FLAC: Chromium plays the file itself
    assert "format=" not in audio(page, "src")
    page.eval_on_selector(
        "#seek", "s => { s.value = 125; s.dispatchEvent(new Event('change')); }"
    )  # past half of the 240 s track: the play is counted
    page.wait_for_function("document.getElementById('audio').currentTime > 125.3", timeout=30_000)
    page.click("#play")  # pause
    page.wait_for_function("document.getElementById('audio').paused")
    stopped_at = audio(page, "currentTime")
    assert 125 < stopped_at < 200
    page.click("#view")  # out of any field: the keys go to the player
    page.keyboard.press("-")
    page.keyboard.press("-")
    assert audio(page, "volume") == pytest.approx(0.8)
    page.click("#mute")
    assert audio(page, "muted") is True
    page.keyboard.press("ArrowLeft")  # 10 s back
    assert audio(page, "currentTime") == pytest.approx(stopped_at - 10, abs=1)
    status, recent = call(page, "GET", "/api/music/recent")
    assert status == 200
    assert [(t["title"], t["play_count"]) for t in recent["items"]] == [("Long", 1)]

    # the page saves the position a moment after a seek: reload once the server holds it
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        saved = call(page, "GET", "/api/music/queue")[1]["position_ms"] / 1000
        if abs(saved - (stopped_at - 10)) <= 2:
            break
        time.sleep(0.1)
    page.reload()
    page.wait_for_selector("#queue li.current:has-text('Long')")
    page.wait_for_function("document.getElementById('audio').currentTime > 100", timeout=20_000)
    assert audio(page, "currentTime") == pytest.approx(stopped_at - 10, abs=2)
    assert audio(page, "paused") is True  # restored, not started by itself
    assert audio(page, "volume") == pytest.approx(0.8)
    assert audio(page, "muted") is True
    assert page.inner_text("#now-title") == "Long"


def test_a_format_chromium_cannot_play_is_transcoded(page: Page) -> None:
    assert page.evaluate("document.getElementById('audio').canPlayType('audio/x-wavpack')") == ""
    page.evaluate(
        """() => { window.played = [];
             const a = document.getElementById('audio');
             a.addEventListener('timeupdate', () => {
               if (a.currentTime > 0) played.push(a.src);
             }); }"""
    )
    open_album(page, "Live")
    page.click("#play-album")
    page.wait_for_function("window.played.some((s) => s.includes('format=opus'))", timeout=30_000)
    assert audio(page, "dataset.mode") == "transcoded"
    assert page.inner_text("#queue li:first-child .what").startswith("Blue")
    # the AIFF after it is transcoded too: the queue moves on by itself at the end
    page.wait_for_selector("#queue li.current:has-text('Green')", timeout=30_000)
    assert audio(page, "dataset.mode") == "transcoded"


def test_a_playlist_built_on_the_page_is_saved_as_m3u8(page: Page, player: Player) -> None:
    page.goto(page.url.split("#")[0] + "#/playlists")
    page.fill("#new-playlist", "Road trip")
    page.click("#view button[type=submit]")
    page.wait_for_selector("h1:text-is('Road trip')")
    open_album(page, "Album")
    page.click("#album-to-playlist")
    page.click("#pick-list button:has-text('Road trip')")
    page.wait_for_selector("#status:has-text('added 3 tracks')")
    saved = next(player.data.rglob("Road trip.m3u8"))
    text = saved.read_text(encoding="utf-8")
    assert text.startswith("#EXTM3U")
    assert "Band - Song 1" in text
    assert "Band - Song 3" in text
    page.goto(page.url.split("#")[0] + "#/playlists")
    page.click("#playlists a:text-is('Road trip')")
    page.wait_for_selector("#playlist tr >> nth=2")
    page.click("#playlist tr:first-child button.down")  # Song 1 goes second
    page.wait_for_selector("#playlist tr:first-child:has-text('Song 2')")
    page.click("#playlist tr:has-text('Song 3') button.remove")
    page.wait_for_function("document.querySelectorAll('#playlist tr').length === 2")
    lines = [line for line in saved.read_text(encoding="utf-8").splitlines() if line.strip()]
    titles = [line.split(" - ", 1)[1] for line in lines if line.startswith("#EXTINF")]
    assert titles == ["Song 2", "Song 1"]
    href = page.get_attribute("#download", "href")
    assert href is not None
    status = page.evaluate("async (u) => (await homekeep.fetch(u)).status", href)
    assert status == 200
    page.click("#play-playlist")
    page.wait_for_selector("#queue li.current:has-text('Song 2')")
    delete_shown_playlist(page, saved)
    page.wait_for_selector("#view p:has-text('No playlists yet')")


def test_each_view_fits_a_desktop_and_a_phone(page: Page, tmp_path: Path) -> None:
    folder = shots_dir(tmp_path)
    base = page.url.split("#")[0]
    page.wait_for_selector("#albums a.album img[loading=lazy]")
    shoot(page, "music-albums", folder)
    open_album(page, "Album")
    page.wait_for_selector("#album-cover")
    page.click("#album-cover")
    page.wait_for_selector("#lightbox[open] img")
    assert "size=full" in (page.get_attribute("#lightbox-img", "src") or "")
    page.click("#lightbox button")
    page.click("#play-album")
    page.wait_for_selector("#queue li.current")
    shoot(page, "music-album", folder)
    page.goto(base + "#/albums?decade=1990")
    page.wait_for_selector("#group-genre option:has-text('Jazz (1)')", state="attached")
    page.wait_for_function("document.querySelectorAll('#albums a.album').length === 1")
    shoot(page, "music-album-groups", folder)
    page.goto(base + "#/artists")
    page.wait_for_selector("#artists a:text-is('Zoë')")
    shoot(page, "music-artists", folder)
    page.goto(base + "#/folders?root=1&path=Band")
    page.wait_for_selector("#folders a:text-is('Album')")
    shoot(page, "music-folders", folder)
    page.goto(base + "#/tracks")
    page.wait_for_selector("#tracks [data-track] >> nth=8")  # a virtual list
    page.click("#tracks .vhead button[data-sort=title]")
    page.wait_for_selector("#tracks [aria-rowindex='2']:has-text('Blue')")
    page.click("#tracks .vhead button[data-sort=title]")  # again: the other way
    page.wait_for_selector("#tracks [aria-rowindex='2']:has-text('Song 3')")
    page.fill("#track-filter", "Hit")
    page.press("#track-filter", "Enter")
    page.wait_for_function("document.querySelectorAll('#tracks [data-track]').length === 2")
    shoot(page, "music-tracks", folder)
    page.fill("#q", "trio")
    page.press("#q", "Enter")
    page.wait_for_selector("#view h2:has-text('Tracks (2)')")
    shoot(page, "music-search", folder)
    page.goto(base + "#/reports?kind=missing-tags")
    page.wait_for_selector("#report-missing-tags a")
    shoot(page, "music-reports", folder)
    page.goto(base + "#/reports?kind=artwork")
    page.wait_for_selector("#report-artwork a")
    page.click("#report-artwork a:has-text('Live')")
    page.wait_for_selector("h1:text-is('Live')")


def test_the_queue_routes_refuse_bad_input(page: Page, player: Player) -> None:
    assert call(page, "PUT", "/api/music/queue", {"track_ids": [1], "current": 2})[0] == 422
    assert call(page, "PUT", "/api/music/queue", {"track_ids": "x"})[0] == 422
    assert call(page, "PUT", "/api/music/queue", {"track_ids": [1] * 5001})[0] == 422
    big = {"track_ids": [2**70]}
    assert call(page, "PUT", "/api/music/queue", big)[0] == 422
    assert call(page, "POST", "/api/music/plays", {"track_id": 999_999})[0] == 404
    status, found = call(page, "POST", "/api/music/track-list", {"track_ids": [999_999]})
    assert status == 200
    assert found == {"items": []}
    assert call(page, "GET", "/api/music/tracks?sort=nonsense")[0] == 422
    with player.client() as client:  # a CLI token is no user: no queue of its own
        r = client.get("/api/music/queue")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
        r = client.put("/api/music/queue", json={"track_ids": []})
        assert r.status_code == 403
    assert call(page, "PUT", "/api/music/queue", {"track_ids": []})[0] == 200
    assert call(page, "GET", "/api/music/queue")[1]["tracks"] == []


def test_albums_by_recently_added_and_by_group(page: Page) -> None:
    page.select_option("#album-sort", "added")
    page.wait_for_url("**#/albums?sort=added")
    page.wait_for_selector("#albums a.album >> nth=4")
    page.select_option("#group-decade", "1960")  # Live is from 1965
    page.wait_for_function(
        "document.querySelectorAll('#albums a.album').length === 1"
        " && document.querySelector('#albums .title')?.textContent === 'Live'"
    )
    assert "sort=added" in page.url
    page.select_option("#group-decade", "")
    page.wait_for_function("!location.hash.includes('decade')")  # the view drawn again
    page.wait_for_selector("#group-genre option:text-is('Pop (1)')", state="attached")
    page.select_option("#group-genre", "Pop")
    page.wait_for_function("document.querySelector('#albums .title')?.textContent === 'Hits'")
    assert page.eval_on_selector_all("#albums a.album", "els => els.length") == 1


def test_artists_are_album_artists_with_various_artists(page: Page) -> None:
    base = page.url.split("#")[0]
    page.goto(base + "#/artists")
    page.wait_for_selector("#artists a:text-is('Various Artists')")
    names = page.eval_on_selector_all("#artists a", "els => els.map((e) => e.textContent)")
    assert names == ["Band", "Tone", "Trio", "Various Artists", "Zoë"]  # not Ann, not Bob
    page.click("#artist-role")
    page.wait_for_selector("#artists a:text-is('Ann')")
    page.click("#artists a:text-is('Ann')")
    page.wait_for_selector("#appears-on a.album:has-text('Hits')")
    assert page.eval_on_selector_all("#artist-albums a", "els => els.length") == 0


def test_the_folders_as_on_disk_and_playing_one(page: Page, player: Player) -> None:
    base = page.url.split("#")[0]
    page.goto(base + "#/folders")
    page.click(f"#roots a:text-is('{player.root}')")
    page.wait_for_selector("#folders a:text-is('Trio')")
    names = page.eval_on_selector_all("#folders a", "els => els.map((e) => e.textContent)")
    assert names == ["Band", "Cafés", "Comp", "Tone", "Trio"]
    page.click("#folders a:text-is('Band')")
    page.wait_for_selector("#folders a:text-is('Album')")
    assert page.inner_text("#crumbs").endswith("/ Band")
    page.click("#play-folder")  # everything under Band, in path order
    page.wait_for_selector("#queue li.current")
    titles = page.eval_on_selector_all(
        "#queue li .what", "els => els.map((e) => e.firstChild.textContent)"
    )
    assert titles == ["Song 1", "Song 2", "Song 3"]
    page.click("#folders a:text-is('Album')")
    page.wait_for_selector("#folder-tracks tr[data-track] >> nth=2")
    page.goto(base + "#/folders?root=1&path=..%2F..")  # a hostile address: refused
    page.wait_for_selector("#status.error:has-text('relative to its root')")


def test_the_queue_reorders_by_drag_and_drop(page: Page) -> None:
    open_album(page, "Album")
    page.click("#queue-clear")
    page.click("#queue-album")
    page.wait_for_selector("#queue li >> nth=2")
    page.drag_and_drop("#queue li:has-text('Song 1')", "#queue li:has-text('Song 3')")
    page.wait_for_function(
        "[...document.querySelectorAll('#queue li .what')].map((e) => e.firstChild.textContent)"
        ".join() === 'Song 2,Song 3,Song 1'"
    )
    page.click("#queue li:has-text('Song 1') button.up")  # the buttons still work
    page.wait_for_function(
        "[...document.querySelectorAll('#queue li .what')].map((e) => e.firstChild.textContent)"
        ".join() === 'Song 2,Song 1,Song 3'"
    )
    saved: list[str] = []
    for _ in range(50):  # saved on the server, in that order (the save is sent, not awaited)
        saved = [t["title"] for t in call(page, "GET", "/api/music/queue")[1]["tracks"]]
        if saved == ["Song 2", "Song 1", "Song 3"]:
            break
        page.wait_for_timeout(100)
    assert saved == ["Song 2", "Song 1", "Song 3"]


def test_an_m3u_is_imported_from_the_page(page: Page, player: Player) -> None:
    page.goto(page.url.split("#")[0] + "#/playlists")
    data = "#EXTM3U\r\n#EXTINF:1,Trio - Blue\r\nTrio\\Live\\01.wv\r\nGone\\away.mp3\r\n"
    upload: FilePayload = {"name": "Car.m3u", "mimeType": "audio/x-mpegurl",
                           "buffer": data.encode("cp1252")}  # fmt: skip
    page.set_input_files("#import-file", files=[upload])
    page.click("#import button[type=submit]")
    page.wait_for_selector("#import-report:has-text('Car: 1 imported, 1 not found')")
    assert "Gone\\away.mp3" in page.inner_text("#import-report")
    saved = player.data / "music" / "playlists" / "ann" / "Car.m3u8"  # ann's own folder
    assert saved.read_text(encoding="utf-8").startswith("#EXTM3U\n#EXTINF:1,Trio - Blue\n")
    page.click("#playlists a:text-is('Car')")
    page.wait_for_selector("#playlist tr:has-text('Blue')")
    delete_shown_playlist(page, saved)


def test_the_media_session_handlers_drive_the_player(page: Page) -> None:
    # keep what the page registers, then call it as the lock screen or media keys would
    page.add_init_script(
        """window.mediaHandlers = {};
           const set = navigator.mediaSession.setActionHandler.bind(navigator.mediaSession);
           navigator.mediaSession.setActionHandler = (action, fn) => {
             window.mediaHandlers[action] = fn; set(action, fn); };"""
    )
    page.reload()
    page.wait_for_selector("#albums a.album")
    handlers = page.evaluate("Object.keys(window.mediaHandlers).sort()")
    assert {"play", "pause", "stop", "previoustrack", "nexttrack", "seekto"} <= set(handlers)
    open_album(page, "Tones")
    page.click("#queue-clear")
    page.click("#play-album")
    open_album(page, "Album")
    page.click("#queue-album")
    page.wait_for_function("document.getElementById('audio').currentTime > 0.3", timeout=30_000)
    assert page.evaluate("navigator.mediaSession.metadata.title") == "Long"
    page.evaluate("window.mediaHandlers.pause({action: 'pause'})")
    page.wait_for_function("document.getElementById('audio').paused")
    page.wait_for_function("navigator.mediaSession.playbackState === 'paused'")
    page.evaluate("window.mediaHandlers.seekto({action: 'seekto', seekTime: 60})")
    assert audio(page, "currentTime") == pytest.approx(60, abs=0.5)
    page.evaluate("window.mediaHandlers.seekforward({action: 'seekforward'})")
    assert audio(page, "currentTime") == pytest.approx(70, abs=0.5)
    page.evaluate("window.mediaHandlers.seekbackward({action: 'seekbackward', seekOffset: 30})")
    assert audio(page, "currentTime") == pytest.approx(40, abs=0.5)
    page.evaluate("window.mediaHandlers.play({action: 'play'})")
    page.wait_for_function("navigator.mediaSession.playbackState === 'playing'")
    page.evaluate("window.mediaHandlers.previoustrack({action: 'previoustrack'})")
    page.wait_for_function("document.getElementById('audio').currentTime < 3")  # from the top
    assert page.inner_text("#queue li.current .what").startswith("Long")
    page.evaluate("window.mediaHandlers.nexttrack({action: 'nexttrack'})")
    page.wait_for_selector("#queue li.current:has-text('Song')")  # 1 s clips: any of them
    page.wait_for_function("navigator.mediaSession.metadata.title.startsWith('Song')")
    page.evaluate("window.mediaHandlers.stop({action: 'stop'})")
    page.wait_for_function("document.getElementById('audio').paused")
    assert audio(page, "currentTime") == pytest.approx(0, abs=0.5)
