"""What a tool's exit code means for a run: ok, warning, error or cancelled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

ToolName = Literal["rsync", "rclone"]

# By default rsync's "partial transfer" (23) and "vanished source files" (24) are warnings.
DEFAULT_CLASSES: dict[str, dict[int, str]] = {
    "rsync": {0: "ok", 20: "cancelled", 23: "warning", 24: "warning"},
    "rclone": {0: "ok", 9: "ok"},
}


def classify(tool: ToolName, code: int, overrides: Mapping[ToolName, Mapping[str, str]]) -> str:
    """ok, warning, error or cancelled for a tool's exit code; the user's table wins."""
    user = overrides.get(tool, {})
    if str(code) in user:
        return user[str(code)]
    if code < 0:
        return "cancelled"
    return DEFAULT_CLASSES.get(tool, {}).get(code, "error")
