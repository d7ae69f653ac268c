"""Commands that do no real work start fast: no heavy module loads on their path.

Timing a start-up in a test would be flaky on a shared machine; which modules load is
not. `python -X importtime -m homekeep --version` shows the cost of each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import clean_env, run_cli

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


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("backup", "run", "nope")])
def test_commands_that_do_no_work_load_nothing_heavy(args: tuple[str, ...], data_dir: Path) -> None:
    loaded = loaded_modules(*args, data_dir=data_dir)
    assert "click" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_an_unknown_job_is_named_before_the_service_loads(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[backup]\n[[backup.jobs]]\nname = 'photos'\nsource = '/srv/photos'\n", "utf-8"
    )
    result = run_cli("--config", str(config), "backup", "run", "nope", data_dir=data_dir)
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "error: no backup job named 'nope' (jobs: photos); add one with 'homekeep backup init'"
    )
