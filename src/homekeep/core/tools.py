"""External programs the areas drive (rsync, rclone, ffmpeg...): find them or say how."""

from __future__ import annotations

import shutil

from homekeep.core.errors import ExternalToolError


def require_tool(name: str, *, debian_package: str | None = None) -> str:
    """Return the full path of ``name`` on PATH, or raise an error that names the fix."""
    found = shutil.which(name)
    if found is None:
        package = debian_package or name
        raise ExternalToolError(
            f"{name} not found on PATH: install it with your package manager "
            f"(Debian: apt-get install {package})"
        )
    return found
