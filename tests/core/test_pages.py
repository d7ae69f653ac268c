"""The web front in a real headless Chromium: first run, login, the account and users pages.

Screenshots of each page at desktop and phone size are taken on the way; with
``HOMEKEEP_SCREENSHOTS=1`` they are written to docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, ViewportSize

from tests.support import ROOT, Server, add_user, serve

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def shots_dir(tmp_path: Path) -> Path:
    if os.environ.get("HOMEKEEP_SCREENSHOTS") == "1":
        return ROOT / "docs" / "screenshots"
    return tmp_path


def shoot(page: Page, name: str, folder: Path) -> None:
    """Screenshots at desktop and phone size; at phone size nothing may stick out sideways."""
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(folder / f"{name}-desktop.png"))
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} is {width} px wide on a phone"
    page.screenshot(path=str(folder / f"{name}-phone.png"))
    page.set_viewport_size(DESKTOP)
    assert (folder / f"{name}-phone.png").stat().st_size > 1000


def log_in(page: Page, server: Server, name: str, password: str) -> None:
    page.goto(server.url + "/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_url(server.url + "/")


def test_the_first_admin_is_made_in_the_browser(
    data_dir: Path, browser: Browser, tmp_path: Path
) -> None:
    with serve(data_dir) as server:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(server.url + "/")
        page.wait_for_url(server.url + "/setup")
        assert page.title() == "First admin · homekeep"
        shoot(page, "setup", shots_dir(tmp_path))
        page.fill("#name", "alice")
        page.fill("#password", "alice password")
        page.fill("#password2", "alice passwore")
        page.click("#create")
        assert "differ" in page.locator("#error-message").inner_text()
        assert page.input_value("#name") == "alice"
        page.fill("#password", "alice password")
        page.fill("#password2", "alice password")
        page.click("#create")
        page.wait_for_url(server.url + "/")
        assert page.locator("h1").inner_text() == "homekeep"
        assert page.locator("#account-link").inner_text() == "alice"
        with sqlite3.connect(data_dir / "homekeep.sqlite") as conn:
            assert conn.execute("SELECT name, admin FROM users").fetchall() == [("alice", 1)]


@pytest.fixture
def site(data_dir: Path) -> Iterator[Server]:
    add_user(data_dir, "root", "root password", admin=True)
    add_user(data_dir, "bob", "bob password", "images", "music")
    with serve(data_dir, env={"HOMEKEEP_IMAGES_RATE_LIMIT_PER_MINUTE": "0"}) as server:
        yield server


def test_log_in_use_a_page_and_log_out(site: Server, browser: Browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(site.url + "/images/")
    page.wait_for_url("**/login?next=/images/")
    shoot(page, "login", shots_dir(tmp_path))
    page.fill("#name", "bob")
    page.fill("#password", "wrong password")
    page.click("#login")
    assert page.locator("#error-message").inner_text() == "wrong user name or password"
    page.fill("#password", "bob password")
    page.click("#login")
    page.wait_for_url(site.url + "/images/")
    nav = page.locator("header nav").inner_text()
    assert "Images" in nav
    assert "Backup" not in nav
    assert page.locator("header").get_by_text("Users").count() == 0
    # the images page calls the API with the session (and its CSRF token), no token pasted
    picture = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(picture)
    page.set_input_files("#picker", str(picture))
    page.wait_for_selector("#last-url", timeout=20_000)
    page.wait_for_selector("figure:has-text('red.png')")
    page.reload()
    page.wait_for_selector("figure:has-text('red.png')")
    page.goto(site.url + "/")
    cards = page.eval_on_selector_all("section[data-area]", "els => els.map(e => e.dataset.area)")
    assert cards == ["images", "music"]
    assert page.locator("section[data-area=images] dd").first.inner_text() == "1"
    shoot(page, "landing", shots_dir(tmp_path))
    page.click("#logout")
    page.wait_for_url("**/login?done=logged-out")
    assert "You are logged out." in page.content()
    page.goto(site.url + "/")
    page.wait_for_url("**/login")


def test_the_account_page_makes_tokens_and_ends_sessions(
    site: Server, browser: Browser, tmp_path: Path
) -> None:
    other = browser.new_context()
    elsewhere = other.new_page()
    log_in(elsewhere, site, "bob", "bob password")
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, site, "bob", "bob password")
    page.click("#account-link")
    page.wait_for_url(site.url + "/account")
    assert page.locator("#sessions tbody tr").count() == 2
    page.fill("#token-name", "phone")
    page.check("input[name=scope][value=music]")
    page.click("#create-token")
    secret = page.locator("#new-token-secret").inner_text()
    assert secret.startswith("hk_")
    assert page.locator('#tokens tr[data-token="phone"]').inner_text().count("music") == 1
    response = page.request.get(
        site.url + "/api/music/artists", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status == 200
    page.goto(site.url + "/account")
    assert page.locator("#new-token-secret").count() == 0  # shown once only
    shoot(page, "account", shots_dir(tmp_path))
    page.click("#sessions tr:not(.current) button")
    page.wait_for_url("**/account?done=session-ended")
    assert page.locator("#sessions tbody tr").count() == 1
    elsewhere.goto(site.url + "/account")
    elsewhere.wait_for_url("**/login?next=/account")
    other.close()


def test_the_admin_adds_a_user_on_the_users_page(
    site: Server, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, site, "root", "root password")
    page.click("header >> text=Users")
    page.wait_for_url(site.url + "/admin/users")
    page.fill("#new-name", "carol")
    page.fill("#new-password", "carol password")
    page.check("#add-user input[name=area][value=images]")
    page.click("#add")
    page.wait_for_url("**/admin/users?done=added")
    row = page.locator('#users [data-user="carol"]')
    assert row.locator("input[name=area][value=images]").is_checked()
    assert not row.locator("input[name=area][value=music]").is_checked()
    shoot(page, "users", shots_dir(tmp_path))
    page.fill("#new-name", "<img src=x onerror=alert(1)>")
    page.fill("#new-password", "whatever password")
    page.click("#add")
    assert "invalid user name" in page.locator("#error-message").inner_text()
    assert page.locator("#users [data-user]").count() == 3
    carol = browser.new_page()
    log_in(carol, site, "carol", "carol password")
    assert carol.locator("header nav").inner_text().split() == ["Images", "API"]
    response = carol.goto(site.url + "/admin/users")
    assert response is not None
    assert response.status == 403


class _Attacker(BaseHTTPRequestHandler):
    """A page on another port of the same machine: same site, another origin."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><form id=f method=post action='" + self.target + "/account/tokens'>"
            "<input name=name value=stolen><input name=scope value=music></form>"
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_cross_site_form_post_is_refused_in_a_real_browser(
    site: Server, browser: Browser, data_dir: Path
) -> None:
    page = browser.new_page()
    log_in(page, site, "bob", "bob password")
    handler = type("Attacker", (_Attacker,), {"target": site.url})
    evil = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        with page.expect_response(f"{site.url}/account/tokens") as posted:
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        assert posted.value.status == 403
        page.wait_for_load_state()
        assert "cross-site request refused" in page.content()
    finally:
        evil.shutdown()
        evil.server_close()
    with sqlite3.connect(data_dir / "homekeep.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM tokens WHERE name = 'stolen'").fetchone() == (0,)


def test_every_link_on_the_landing_page_leads_somewhere(site: Server, browser: Browser) -> None:
    page = browser.new_page()
    log_in(page, site, "root", "root password")
    links = page.eval_on_selector_all("a", "els => els.map(e => e.href)")
    assert len(links) >= 6
    for link in links:
        response = page.request.get(link)
        assert response.status == 200, link
    page.get_by_role("link", name="API reference").click()
    page.wait_for_url("**/docs")
    page.wait_for_selector(".swagger-ui")
