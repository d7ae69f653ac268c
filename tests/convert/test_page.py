"""The /convert/ page in a real headless Chromium, at desktop and phone size.

With ``HOMEKEEP_SCREENSHOTS=1`` the screenshots go to docs/screenshots/ for the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.convert.conftest import Hosted, start
from tests.core.test_pages import shots_dir
from tests.support import CHROMIUM, CHROMIUM_ARGS, add_user


def _row(page: Page, name: str, status: str) -> None:
    page.wait_for_selector(
        f"#queue tr[data-status='{status}']:has(td.name:text-is('{name}'))", timeout=60_000
    )


LONGEST = "annabelle-with-a-very-long-name0"  # 32 characters, the most a user name has


def _log_in(page: Page, hosted: Hosted, name: str = "ann") -> None:
    page.goto(f"{hosted.url}/login?next=/convert/")
    page.fill("#name", name)
    page.fill("#password", "a long enough password")
    page.click("#login")
    page.wait_for_url(f"{hosted.url}/convert/")


@pytest.fixture(scope="module", autouse=True)
def _ann(hosted: Hosted) -> None:
    add_user(hosted.data_dir, "ann", "a long enough password", "convert")
    add_user(hosted.data_dir, LONGEST, "a long enough password", admin=True)


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_queue_page(hosted: Hosted, clips: dict[str, Path], tmp_path: Path) -> None:
    picture = tmp_path / "<b>sunset<i>.png"
    picture.write_bytes(clips["png"].read_bytes())
    shots = shots_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            _log_in(page, hosted)
            page.goto(f"{hosted.url}/convert/")
            assert page.title() == "Convert · homekeep"
            assert page.locator("#token").count() == 0  # the session does, no token asked
            page.select_option("#conversion", "webp")
            page.set_input_files("#picker", str(picture))
            _row(page, picture.name, "finished_successful")
            assert page.locator("#queue b").count() == 0  # the name is text, never markup
            page.select_option("#conversion", "mkv-x264")
            page.set_input_files("#picker", str(clips["cut_faststart"]))
            _row(page, "cut-fast.mp4", "finished_with_errors")
            failed = page.locator("#queue tr:has(td.name:text-is('cut-fast.mp4'))")
            assert failed.locator(".errors").inner_text().strip()  # the reason, shown
            page.set_input_files("#picker", str(clips["text"]))
            page.wait_for_selector("#status.error", timeout=20_000)
            assert "not a media file" in page.locator("#status").inner_text()
            page.wait_for_selector("#workers tbody tr", timeout=20_000)
            page.screenshot(path=str(shots / "convert-desktop.png"), full_page=True)
            item_id = failed.get_attribute("data-id")
            assert item_id is not None
            before = hosted.item(item_id)["version"]
            failed.locator("button[data-action=retry]").click()
            page.wait_for_selector("#status:has-text('retry: cut-fast.mp4')", timeout=20_000)
            assert hosted.item(item_id)["version"] > before
            _row(page, "cut-fast.mp4", "finished_with_errors")
            page.locator(f"#queue tr[data-id='{item_id}'] button[data-action=delete]").click()
            page.wait_for_selector(f"#queue tr[data-id='{item_id}']", state="detached")
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            _log_in(phone, hosted, LONGEST)  # an admin: the header has the most in it
            phone.goto(f"{hosted.url}/convert/")
            _row(phone, picture.name, "finished_successful")
            # Neither the page (header included) nor the queue in it scrolls sideways.
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            queue = phone.locator("#queue").locator("xpath=..")
            assert queue.evaluate("e => e.scrollWidth <= e.clientWidth")
            assert phone.locator("#queue button[data-action=delete]").first.is_visible()
            phone.screenshot(path=str(shots / "convert-phone.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_standalone_server_page_asks_for_a_token(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    """`homekeep convert server` has no logins: its page works with a pasted token."""
    for alone in start(tmp_path, args=("convert", "server", "--port", "0")):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{alone.url}/convert/")
                page.wait_for_selector("#counts:has-text('give a token')")
                page.fill("#token", alone.token)
                page.click("#save-token")
                page.select_option("#conversion", "webp")
                page.set_input_files("#picker", str(clips["png"]))
                page.wait_for_selector("#queue tr:has(td.name:text-is('still.png'))")
            finally:
                browser.close()
