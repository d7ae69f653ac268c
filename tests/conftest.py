"""Fixtures shared by every area's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test (and every child process) away from the real ~/.config and ~/.local."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh homekeep data directory."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def _chromium() -> Iterator[Browser]:
    """One headless Chromium for a module's browser tests (a launch costs seconds)."""
    from playwright.sync_api import sync_playwright  # only the browser tests pay for it

    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def browser(_chromium: Browser) -> Iterator[Browser]:
    """The module's Chromium; every page and context a test opens is closed after it.

    Each ``new_page``/``new_context`` is a fresh profile (no cookies, no storage), so tests
    sharing the browser share nothing else.
    """
    yield _chromium
    for context in _chromium.contexts:
        context.close()
