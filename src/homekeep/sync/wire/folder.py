"""Names a shared folder keeps for itself, the same on the server and on every client."""

from __future__ import annotations

MARKER = ".homekeep-folder"  # missing: the folder looks unmounted, and nothing is deleted
VERSIONS = ".homekeep-versions"  # what deletes and overwrites replaced
TMP = ".homekeep-tmp"  # files being received
RESERVED = frozenset({MARKER, VERSIONS, TMP})


def reserved(path: str) -> bool:
    """Whether a path in a shared folder is one of the folder's own files (never synced)."""
    return path.split("/", 1)[0] in RESERVED
