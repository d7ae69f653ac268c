"""The landing page in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support import CHROMIUM, CHROMIUM_ARGS, serve

pytestmark = pytest.mark.browser


def test_landing_page_links_docs_and_health(data_dir: Path) -> None:
    with serve(data_dir) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            assert page.title() == "homekeep"
            assert page.locator("h1").inner_text() == "homekeep"
            page.get_by_role("link", name="API reference").click()
            page.wait_for_url("**/docs")
            page.wait_for_selector(".swagger-ui")
            assert "homekeep" in page.content()
        finally:
            browser.close()


def test_every_link_on_the_landing_page_leads_somewhere(data_dir: Path) -> None:
    with serve(data_dir) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            links = page.eval_on_selector_all("a", "els => els.map(e => e.href)")
            assert len(links) >= 4
            for link in links:
                response = page.request.get(link)
                assert response.status == 200, link
        finally:
            browser.close()
