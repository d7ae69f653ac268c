"""Logging: a console handler and a rotating log file, set up once per process."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    *,
    console_level: int,
    file: Path | None,
    file_level: int = logging.INFO,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
) -> None:
    """Send log records to stderr at ``console_level`` and to a rotating ``file``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        console = RichHandler(show_path=False, rich_tracebacks=False)
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.setLevel(console_level)
    root.addHandler(console)
    level = console_level
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        rotating = RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
        rotating.setFormatter(logging.Formatter(FILE_FORMAT))
        rotating.setLevel(file_level)
        root.addHandler(rotating)
        level = min(level, file_level)
    root.setLevel(level)


def level_from_name(name: str) -> int:
    """Map a config level name (debug, info, warning, error) to its logging constant."""
    return logging.getLevelNamesMapping()[name.upper()]
