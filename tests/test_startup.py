"""Commands that do no real work start fast: no heavy module loads on their path.

Timing a start-up in a test would be flaky on a shared machine; which modules load is
not. `python -X importtime -m homekeep --version` shows the cost of each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import clean_env

HEAVY = (
    "pydantic",
    "rich",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "anyio",
    "argon2",
    "PIL",
    "mutagen",
    "matplotlib",
    "zstandard",
    "watchdog",
    "tomlkit",
)


def loaded_modules(*args: str, data_dir: Path) -> set[str]:
    """The top-level packages imported by ``homekeep ARGS`` (from -X importtime)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "homekeep", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_load_nothing_heavy(args: tuple[str, ...], data_dir: Path) -> None:
    loaded = loaded_modules(*args, data_dir=data_dir)
    assert "click" in loaded
    assert sorted(loaded & set(HEAVY)) == []
