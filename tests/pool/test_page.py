"""The /pool/ page in a real headless Chromium, at desktop and phone size, updating live:
under `homekeep serve` with a login, and on a dispatcher of its own with a token.

With ``HOMEKEEP_SCREENSHOTS=1`` the screenshots go to docs/screenshots/ for the README.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize

from homekeep.pool.client import Dispatch, RoomClient
from tests.core.test_pages import shots_dir
from tests.pool.conftest import pool_server
from tests.support import add_user, create_token, serve

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}


@contextmanager
def chatting(url: str, token: str, count: int) -> Iterator[None]:
    """``count`` clients joined and talking in a background loop until the block ends."""
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def talk() -> None:
        dispatch = Dispatch(url, token)
        clients = [RoomClient(dispatch, f"player{i}") for i in range(count)]
        await asyncio.gather(*(client.join() for client in clients))
        ready.set()
        try:
            for turn in range(600):  # at most a minute of chatter
                if stop.is_set():
                    break
                await clients[turn % count].send(f"move {turn}")
                await asyncio.sleep(0.1)
        finally:
            await asyncio.gather(*(client.close() for client in clients))
            await dispatch.aclose()

    def main() -> None:
        try:
            asyncio.run(asyncio.wait_for(talk(), 90))
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(30)
    assert not failure, failure
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not failure, failure


def watch_live(page: Page, shots: Path, label: str) -> None:
    """Six clients on servers of four: two servers, counts and rates, without a reload."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('#servers .count')]"
        ".map(c => parseInt(c.textContent)).reduce((a, b) => a + b, 0) === 6",
        timeout=15_000,
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#servers .rate-in')]"
        ".some(c => parseFloat(c.textContent) > 0)",
        timeout=15_000,
    )
    if page.locator("tr.clients").count() == 0:  # a click opens (or closes) the clients
        page.locator("#servers tr.server").first.click()
    page.wait_for_selector("tr.clients li", timeout=10_000)
    assert "player" in page.locator("tr.clients").first.inner_text()
    page.wait_for_selector("#events li", timeout=10_000)
    assert "started" in page.locator("#events").inner_text()
    size = page.viewport_size
    assert size is not None
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
    page.screenshot(path=str(shots / f"pool-{label}.png"), full_page=True)


def test_the_page_shows_servers_clients_and_rates_live(
    data_dir: Path, browser: Browser, tmp_path: Path
) -> None:
    shots = shots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    add_user(data_dir, "ann", "ann's password", "pool")
    token = create_token(data_dir, "players", "pool")
    env = {"HOMEKEEP_POOL_MAX_CLIENTS": "4", "HOMEKEEP_POOL_MAX_SERVERS": "4"}
    with serve(data_dir, env=env) as server:
        page = browser.new_page(viewport=SIZES["desktop"])
        page.goto(f"{server.url}/pool/")
        page.wait_for_url(f"{server.url}/login?next=/pool/")
        page.fill("#name", "ann")
        page.fill("#password", "ann's password")
        page.click("#login")
        page.wait_for_url(f"{server.url}/pool/")
        assert page.title() == "Pool · homekeep"
        assert page.locator("#token").count() == 0  # the session is enough
        page.wait_for_selector("#servers tr.server", timeout=10_000)
        with chatting(server.url, token, 6):
            for label, size in SIZES.items():
                page.set_viewport_size(size)
                watch_live(page, shots, label)


def test_a_dispatcher_on_its_own_asks_for_a_token(browser: Browser, tmp_path: Path) -> None:
    with pool_server(tmp_path) as pool:
        page = browser.new_page(viewport=SIZES["phone"])
        page.goto(f"{pool.url}/pool/")
        page.wait_for_selector("#token-card:not([hidden])", timeout=10_000)
        assert "missing token" in page.locator("#live").inner_text()
        page.fill("#token", pool.token)
        page.click("#save-token")
        page.wait_for_selector("#servers tr.server", timeout=10_000)
        page.wait_for_selector("#token-card[hidden]", state="attached", timeout=10_000)
        page.reload()  # the token is kept in this browser
        page.wait_for_selector("#servers tr.server", timeout=10_000)
