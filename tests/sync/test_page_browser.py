"""The /sync/ page in a real headless Chromium: folders and devices after real pushes, a
conflict resolved and a version restored from the page, the history filtered, and a
slow upload's progress; at desktop and phone size."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.core.test_pages import DESKTOP, PHONE, log_in, shoot, shots_dir
from tests.sync.helpers import wait_until
from tests.sync.pagesite import ADMIN, Site, make_conflict, site, tree

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("syncpage-browser")) as s:
        yield s


def open_page(browser: Browser, s: Site) -> Page:
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, s.server, *ADMIN)
    page.goto(s.url + "/sync/")
    assert page.title() == "Sync · homekeep"
    return page


def test_folders_conflicts_versions_and_history_on_the_page(
    hosted: Site, browser: Browser, tmp_path: Path
) -> None:
    on_server = hosted.share("family")
    laptop, desk = hosted.client("family", "laptop"), hosted.client("family", "desk")
    (laptop / "<b>menu<i>.txt").write_text("soup")  # a name is text, never markup
    (laptop / "trip").mkdir()
    (laptop / "trip" / "list.txt").write_text("tent")
    make_conflict(hosted, "family")
    hosted.push("family", "laptop")
    page = open_page(browser, hosted)

    card = page.locator(".folder[data-folder='family']")
    card.wait_for()
    assert card.locator(".badge.shared").is_visible()
    assert card.locator(".files").inner_text() == "4"  # menu, list, plan and its copy
    for device in ("laptop", "desk"):
        row = card.locator(f"li[data-device='{device}']")
        assert row.get_attribute("data-online") == "yes"
        assert row.locator(".badge.online").inner_text() == "online"
        assert "s ago" in row.locator(".contact").inner_text()
    assert page.locator("#folders b").count() == 0

    conflict = page.locator(".conflict[data-path='plan.txt']")
    conflict.wait_for()
    copy = conflict.get_attribute("data-copy")
    assert copy is not None
    assert copy.startswith("plan.sync-conflict-")
    shoot(page, "sync", shots_dir(tmp_path))

    # keep the conflict copy (the laptop's edit): on the server at once, on the clients next
    conflict.locator("button[data-keep='copy']").click()
    page.wait_for_selector("#say:has-text('kept the conflict copy of plan.txt')")
    page.wait_for_selector("#conflicts .none")
    assert tree(on_server)["plan.txt"] == "the laptop's edit"
    assert copy not in tree(on_server)
    hosted.push("family", "desk")
    hosted.push("family", "laptop")
    assert tree(desk) == tree(laptop) == tree(on_server)
    assert tree(desk)["plan.txt"] == "the laptop's edit"

    # the desk's edit it replaced is a kept version: restore it from the page
    group = page.locator(".version-group[data-path='plan.txt']")
    desks: list[str] = []

    def listed() -> bool:  # the list reloads after the click: wait for the new version
        names = group.locator("tr[data-version]").evaluate_all(
            "rows => rows.map(r => r.dataset.version)"
        )
        desks[:] = [v for v in names if (on_server / v).read_text() == "the desk's edit, newer"]
        return bool(desks)

    assert wait_until(listed, timeout=20, step=0.2), "the replaced version is listed"
    group.locator(f"tr[data-version='{desks[0]}'] button").click()
    page.wait_for_selector("#say:has-text('restored plan.txt')")
    assert (on_server / "plan.txt").read_text() == "the desk's edit, newer"
    hosted.push("family", "laptop")
    assert (laptop / "plan.txt").read_text() == "the desk's edit, newer"

    # the history: everything, then only deletes, then one path, then a time range
    page.click("#f-apply")
    page.wait_for_selector("#history tbody tr[data-action='create']")
    page.select_option("#f-folder", "family")
    page.select_option("#f-action", "delete")
    page.click("#f-apply")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#history tbody tr')].every("
        "r => r.dataset.action === 'delete') && document.querySelector('#history tbody tr')"
    )
    deleted = page.locator("#history tbody td.path").all_inner_texts()
    assert deleted
    assert all(".sync-conflict-" in p for p in deleted)  # the copy, taken in by the rescan
    page.select_option("#f-action", "")
    page.fill("#f-path", "trip/")
    page.click("#f-apply")
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('#history tbody td.path')];"
        " return p.length && p.every(c => c.textContent.includes('trip/')); }"
    )
    page.fill("#f-since", "2099-01-01T00:00")
    page.click("#f-apply")
    page.wait_for_selector("#history-note:has-text('Nothing matches.')")
    page.click("#f-clear")
    page.wait_for_selector("#history tbody tr")

    phone = browser.new_page(viewport=PHONE, is_mobile=True)
    log_in(phone, hosted.server, *ADMIN)
    phone.goto(hosted.url + "/sync/")
    phone.locator(".folder[data-folder='family'] li[data-device='desk']").wait_for()
    phone.wait_for_selector("#history tbody tr")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.locator(".version-group button").first.is_visible()


class SlowProxy:
    """A loopback TCP proxy to the server that passes uploads at ``rate`` bytes a second:
    a slow link, so an upload is seen in flight. Each connection gets two threads, which
    end when either side closes; ``stop`` closes everything."""

    def __init__(self, port: int, rate: int) -> None:
        self.port = port
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # guards sockets
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                down, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            with self.lock:
                self.sockets += [down, up]
            for source, sink, slow in ((down, up, True), (up, down, False)):
                pump = threading.Thread(target=self._pump, args=(source, sink, slow), daemon=True)
                pump.start()
                self.threads.append(pump)

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        with contextlib.suppress(OSError):
            while not self.stopping.is_set():
                data = source.recv(16384)
                if not data:
                    break
                if slow:
                    time.sleep(len(data) / self.rate)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv
                sock.close()
        for thread in self.threads:
            thread.join(5)


def test_an_upload_in_flight_shows_its_progress(
    hosted: Site, browser: Browser, tmp_path: Path
) -> None:
    hosted.share("videos")
    laptop = hosted.client("videos", "laptop")
    size = 12 << 20  # streamed whole (over 4 MiB); incompressible, so 12 MiB go through
    (laptop / "holiday.bin").write_bytes(os.urandom(size))
    page = open_page(browser, hosted)
    page.wait_for_selector("#no-transfers:visible")
    port = int(hosted.url.rsplit(":", 1)[1])
    proxy = SlowProxy(port, rate=2 << 20)  # about 6 s for the file
    pushing = threading.Thread(
        target=lambda: hosted.push("videos", "laptop", server=proxy.url), daemon=True
    )
    try:
        pushing.start()
        row = page.locator("#transfers tr[data-path='holiday.bin']")
        row.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => { const r = document.querySelector(\"#transfers tr[data-path='holiday.bin']\");"
            " return r && Number(r.dataset.percent) > 0 && Number(r.dataset.percent) < 100; }",
            timeout=60_000,
        )
        text = row.inner_text()
        assert "videos" in text
        assert "laptop" in text
        assert "12.0 MiB" in text
        shoot(page, "sync-transfer", shots_dir(tmp_path))
        pushing.join(120)
        assert not pushing.is_alive()
    finally:
        proxy.stop()
    page.wait_for_selector("#no-transfers:visible", timeout=10_000)
    assert (hosted.root / "videos" / "holiday.bin").stat().st_size == size
