"""The upload page in a real headless Chromium: upload, see it listed, open its link."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.core.test_pages import DESKTOP, log_in, shoot, shots_dir
from tests.images import samples
from tests.images.conftest import Hosted
from tests.support import add_user


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_upload_page(hosted: Hosted, browser: Browser, tmp_path: Path) -> None:
    picture = tmp_path / "<b>sunset<i>.png"
    picture.write_bytes(samples.png(seed=300, size=(90, 60)))
    add_user(hosted.data_dir, "uploader", "uploader password", "images")
    page = browser.new_page()
    page.goto(f"{hosted.server.url}/images/")
    page.fill("#name", "uploader")  # the login page first, then back here
    page.fill("#password", "uploader password")
    page.click("#login")
    page.wait_for_url(f"{hosted.server.url}/images/")
    assert page.title() == "Images · homekeep"
    page.set_input_files("#picker", str(picture))
    link = page.wait_for_selector("#last-url", timeout=20_000)
    assert link is not None
    url = link.get_attribute("href")
    assert url is not None
    assert url.startswith(f"{hosted.server.url}/i/")
    image_id = url.rsplit("/", 1)[1].split(".")[0]
    card = page.wait_for_selector(f'figure[data-id="{image_id}"]', timeout=10_000)
    assert card is not None
    assert "<b>sunset<i>.png · 90×60" in card.inner_text()  # shown as text
    assert page.locator("figure b").count() == 0  # ... never as markup
    page.wait_for_function(
        "id => document.querySelector(`figure[data-id='${id}'] img`).naturalWidth === 90",
        arg=image_id,
        timeout=10_000,
    )
    dropped = samples.png(seed=301, size=(30, 20))
    page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            document.getElementById("drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(dropped).decode(),
    )
    page.wait_for_selector("figure:has-text('dropped.png')", timeout=10_000)
    assert page.locator("#count").inner_text() == "(2)"
    page.reload()
    page.wait_for_selector(f'figure[data-id="{image_id}"]', timeout=10_000)
    assert page.locator("#grid figure").count() == 2
    response = page.goto(url)
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert response.body() == picture.read_bytes()
    assert httpx.get(url).content == picture.read_bytes()


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_gallery_copies_a_link_and_deletes(
    hosted: Hosted, browser: Browser, tmp_path: Path
) -> None:
    add_user(hosted.data_dir, "keeper", "keeper password", "images")
    first, second = tmp_path / "harbour.png", tmp_path / "meadow.png"
    first.write_bytes(samples.png(seed=310, size=(120, 80)))
    second.write_bytes(samples.png(seed=311, size=(64, 64)))
    broken = tmp_path / "not-a-picture.png"
    broken.write_bytes(b"this is text, not a PNG\n" * 10)
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, hosted.server, "keeper", "keeper password")
    page.goto(f"{hosted.server.url}/images/")
    page.wait_for_selector("#count:has-text('(0)')")
    page.set_input_files("#picker", [str(first), str(second)])
    page.wait_for_selector("figure:has-text('meadow.png')", timeout=20_000)
    page.wait_for_selector("figure:has-text('harbour.png')")
    page.set_input_files("#picker", str(broken))
    page.wait_for_selector("#status.error:has-text('not-a-picture.png')", timeout=20_000)
    assert page.locator("#grid figure").count() == 2
    harbour = page.locator("figure:has-text('harbour.png')")
    image_id = harbour.get_attribute("data-id")
    link = harbour.locator("a").get_attribute("href")
    assert link is not None
    assert link.startswith(f"{hosted.server.url}/i/{image_id}")

    harbour.locator("button.copy").click()
    page.wait_for_selector("#status:has-text('Link copied')")
    assert page.evaluate("navigator.clipboard.readText()") == link
    shoot(page, "images", shots_dir(tmp_path))

    # Without the clipboard API (plain http on the LAN), the fallback still copies.
    bare = context.new_page()
    bare.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    bare.goto(f"{hosted.server.url}/images/")
    bare.locator("figure:has-text('meadow.png') button.copy").click()
    bare.wait_for_selector("#status:has-text('Link copied')")
    meadow = bare.locator("figure:has-text('meadow.png') a").get_attribute("href")
    assert page.evaluate("navigator.clipboard.readText()") == meadow

    harbour.locator("button.delete").click()
    page.wait_for_selector("#status:has-text('Deleted harbour.png')")
    assert page.locator("#grid figure").count() == 1
    assert page.locator("#count").inner_text() == "(1)"
    assert httpx.get(link).status_code == 404
    page.reload()
    page.wait_for_selector("figure:has-text('meadow.png')")
    assert page.locator("figure:has-text('harbour.png')").count() == 0
