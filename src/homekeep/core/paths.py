"""Where homekeep keeps its files: the data directory and its layout.

<data_dir>/
    homekeep.sqlite          core database (tokens, users, sessions)
    logs/homekeep.log        rotating log file
    <area>/                  one folder per area
    <area>/<area>.sqlite     the area's database
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_data_dir() -> Path:
    """Return ``$XDG_DATA_HOME/homekeep``, or ``~/.local/share/homekeep``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "homekeep"


def default_config_path() -> Path:
    """Return ``$XDG_CONFIG_HOME/homekeep/config.toml``, or the ``~/.config`` equivalent."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "homekeep" / "config.toml"


@dataclass(frozen=True)
class DataDir:
    """The layout of one data directory."""

    root: Path

    @property
    def core_db(self) -> Path:
        return self.root / "homekeep.sqlite"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def area(self, name: str) -> Path:
        """Return (and create) the folder that belongs to one area."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def area_db(self, name: str) -> Path:
        """Return the SQLite file of one area."""
        return self.area(name) / f"{name}.sqlite"

    def ensure(self) -> None:
        """Create the root and the logs folder, private to the user."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.logs.mkdir(exist_ok=True)
