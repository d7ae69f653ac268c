"""Logging to a rotating file, and progress bars that stay quiet when piped."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from homekeep.core.logs import setup_logging
from homekeep.core.progress import progress


def test_log_file_rotates_at_max_size_and_keeps_count(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "homekeep.log"
    setup_logging(console_level=logging.CRITICAL, file=log_file, max_bytes=2048, backup_count=3)
    logger = logging.getLogger("homekeep.test")
    for i in range(500):
        logger.info("line %d %s", i, "x" * 40)
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["homekeep.log", "homekeep.log.1", "homekeep.log.2", "homekeep.log.3"]
    assert all(p.stat().st_size <= 2048 + 200 for p in log_file.parent.iterdir())
    assert "line 499" in log_file.read_text()
    setup_logging(console_level=logging.WARNING, file=None)


SCRIPT = """
from homekeep.core.progress import progress
with progress() as display:
    task = display.task("copying", total=3)
    for _ in range(3):
        task.advance()
print("done")
"""


def test_progress_is_silent_when_piped() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    assert result.stdout == "done\n"
    assert result.stderr == ""


def test_progress_draws_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    with progress(enabled=True) as display:
        task = display.task("scanning", total=2)
        task.advance(2)
        display.task("bytes", total=1024, bytes=True).advance(1024)
    err = capsys.readouterr().err
    assert "scanning" in err
    assert "2/2" in err
