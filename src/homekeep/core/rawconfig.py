"""The config file as plain TOML tables, before any model sees it.

Reading a section raw costs only ``tomllib``: a command can answer a question the raw
file settles (is there a job of that name?) without loading the config models.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from homekeep.core.errors import ConfigError
from homekeep.core.paths import default_config_path

__all__ = ["config_file", "raw_section", "read_toml"]


def read_toml(path: Path, *, explicit: bool) -> dict[str, Any]:
    """The file's tables; ConfigError saying what is wrong and what to do."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        hint = "create it with 'homekeep config init'" if explicit else ""
        raise ConfigError(f"config file {path} does not exist; {hint}".rstrip("; ")) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc


def config_file(path: Path | None) -> Path | None:
    """The file the settings come from: ``path``, else the default one if it exists."""
    if path is not None:
        return path
    candidate = default_config_path()
    return candidate if candidate.is_file() else None


def raw_section(path: Path | None, name: str) -> dict[str, Any]:
    """One section as written (empty when the file or the section is absent)."""
    found = config_file(path)
    if found is None or not found.exists():
        return {}
    section = read_toml(found, explicit=path is not None).get(name, {})
    return section if isinstance(section, dict) else {}
