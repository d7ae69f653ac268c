"""The music roots: the folders a scan covers, checked before anything is written."""

from __future__ import annotations

from pathlib import Path

from homekeep.core.errors import NotFound, UsageError


def resolve_roots(paths: list[Path]) -> list[Path]:
    """Return the roots as absolute paths; every one must be an existing folder."""
    if not paths:
        raise UsageError(
            "no music roots to scan: pass one or more ROOT folders, "
            "or set roots = [...] in the [music] section of the config"
        )
    resolved: list[Path] = []
    for path in paths:
        full = path.expanduser().resolve()
        if not full.exists():
            raise NotFound(f"music root {path} does not exist; check the path (is it mounted?)")
        if not full.is_dir():
            raise UsageError(f"music root {path} is not a folder; pass the folder that holds it")
        if full not in resolved:
            resolved.append(full)
    for a in resolved:
        for b in resolved:
            if a != b and a.is_relative_to(b):
                raise UsageError(f"music root {a} is inside root {b}; pass only {b}")
    return resolved


def check_overlap(root: Path, known: list[Path]) -> None:
    """Refuse a root inside a known root, or holding one: a file would be found twice."""
    for other in known:
        if other != root and (root.is_relative_to(other) or other.is_relative_to(root)):
            raise UsageError(
                f"music root {root} overlaps the known root {other}; "
                "remove one with 'homekeep music roots remove PATH'"
            )


def stored_forms(path: Path) -> set[str]:
    """The ways a root given by a user may be stored: as given, and resolved."""
    return {str(path), str(path.expanduser().resolve())}
