"""The bounds every HTTP server of homekeep puts on one client (no web imports here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one client may cost a server before it is cut off."""

    max_header_bytes: int = 64 * 1024
    max_header_count: int = 128
    header_timeout_seconds: float = 15.0
    max_connections: int = 512
