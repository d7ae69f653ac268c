"""Fixtures shared by every area's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


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
