"""Which local paths are not synced: gitignore-style patterns (pathspec)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pathspec

from homekeep.core.errors import UsageError

IGNORE_FILE = ".homekeepignore"

# Temporary and editor files nobody wants on the server.
DEFAULT_PATTERNS = (
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "\\#*#",
    "4913",
    ".*.kate-swp",
    ".~lock.*#",
    ".goutputstream-*",
    "*.crdownload",
    "*.part",
    "*.partial",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    ".Trash-*/",
    ".homekeep-sync/",
)


class Excludes:
    """A compiled set of patterns; ``match(rel, is_dir)`` says whether to skip a path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [p for p in (line.rstrip("\n") for line in patterns) if p.strip()]
        try:
            self._spec = pathspec.PathSpec.from_lines("gitwildmatch", self.patterns)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"invalid exclude pattern: {exc}") from exc

    @classmethod
    def for_folder(
        cls, root: Path, extra: Iterable[str] = (), *, defaults: bool = True
    ) -> Excludes:
        """Defaults, then the folder's .homekeepignore, then ``--exclude`` patterns."""
        patterns: list[str] = list(DEFAULT_PATTERNS) if defaults else [".homekeep-sync/"]
        ignore = root / IGNORE_FILE
        if ignore.is_file():
            try:
                patterns += ignore.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {ignore}: {exc}") from exc
        patterns += list(extra)
        return cls(patterns)

    def match(self, rel: str, *, is_dir: bool) -> bool:
        """Return True if ``rel`` (a '/'-separated relative path) is excluded."""
        return self._spec.match_file(rel + "/" if is_dir else rel)
