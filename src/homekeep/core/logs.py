"""Logging: a console handler and a rotating log file, set up once per process."""

from __future__ import annotations

import logging
import sys
import threading
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
        root.addHandler(rotating_file(file, max_bytes, backup_count, FILE_FORMAT, file_level))
        level = min(level, file_level)
    root.setLevel(level)


def rotating_file(
    path: Path, max_bytes: int, backup_count: int, fmt: str, level: int
) -> RotatingFileHandler:
    """A handler writing ``path``, rotated at ``max_bytes``, keeping ``backup_count`` files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(fmt))
    handler.setLevel(level)
    return handler


_attached: set[tuple[str, Path]] = set()
_attached_lock = threading.Lock()  # guards _attached: services open from several threads


def attach_log_file(logger: logging.Logger, path: Path, max_bytes: int, backup_count: int) -> None:
    """Also write ``logger`` (at DEBUG) to its own rotating file, once per process and path.

    An area whose history people read on its own (backup's runs) keeps a log of its own
    besides the main one.
    """
    with _attached_lock:
        if (logger.name, path) in _attached:
            return
        _attached.add((logger.name, path))
    handler = rotating_file(
        path, max_bytes, backup_count, "%(asctime)s %(levelname)s %(message)s", logging.DEBUG
    )
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
        logger.setLevel(logging.DEBUG)


def level_from_name(name: str) -> int:
    """Map a config level name (debug, info, warning, error) to its logging constant."""
    return logging.getLevelNamesMapping()[name.upper()]
