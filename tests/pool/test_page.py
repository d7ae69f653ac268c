"""The /pool/ page in a real headless Chromium, at desktop and phone size, updating live."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.pool.conftest import Pool, joined, leave, pool_server
from tests.support import CHROMIUM, CHROMIUM_ARGS

SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


@contextmanager
def chatting(pool: Pool, count: int) -> Iterator[None]:
    """``count`` clients joined and talking in a background loop until the block ends."""
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def talk() -> None:
        clients = await joined(pool, count, name="player")
        ready.set()
        try:
            for turn in range(600):  # at most a minute of chatter
                if stop.is_set():
                    break
                await clients[turn % count].send(f"move {turn}")
                await asyncio.sleep(0.1)
        finally:
            await leave(clients)

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


def open_page(page: Page, pool: Pool) -> None:
    page.goto(f"{pool.url}/pool/")
    assert page.title() == "Pool · homekeep"
    page.wait_for_selector("#token-card:not([hidden])", timeout=10_000)  # 401 without a token
    page.fill("#token", pool.token)
    page.click("#save-token")
    page.wait_for_selector("#servers tr.server", timeout=10_000)


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_the_page_shows_servers_clients_and_rates_live(tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with pool_server(tmp_path, max_clients=4, max_servers=4, min_idle=1) as pool:
        pool.wait_until(lambda s: s["pool"]["ready"] == 1, what="the idle server")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for label, (width, height) in SIZES.items():
                    page = browser.new_page(viewport={"width": width, "height": height})
                    open_page(page, pool)
                    with chatting(pool, 6):
                        # six clients need two servers: the page shows them without a reload
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
                        first = page.locator("#servers tr.server").first
                        first.click()
                        page.wait_for_selector("tr.clients li", timeout=10_000)
                        assert "player" in page.locator("tr.clients").first.inner_text()
                        page.wait_for_selector("#events li", timeout=10_000)
                        assert "started" in page.locator("#events").inner_text()
                        page.screenshot(path=str(SCREENSHOTS / f"pool-{label}.png"), full_page=True)
                    page.close()
            finally:
                browser.close()
