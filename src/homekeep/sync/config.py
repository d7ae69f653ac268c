"""The [sync] config section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from homekeep.core.config import Renamed, Section


def _scaled(value: Any, factor: float) -> Any:
    """An old key's number in the new key's unit; anything else is left for validation."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    scaled = value * factor
    return int(scaled) if isinstance(value, int) and float(scaled).is_integer() else scaled


class SyncConfig(Section):
    """Live folder sync: the server mounted in `homekeep serve`, and client defaults."""

    root: Path | None = Field(
        default=None,
        description="Folder that receives synced trees when `homekeep serve` runs; "
        "set it to mount the sync server under /api/sync/ (unset: not mounted).",
    )
    renamed: ClassVar[Mapping[str, Renamed]] = {
        "max_request_mb": Renamed("max_request_bytes", lambda v: _scaled(v, 1 << 20)),
        "staging_ttl_hours": Renamed("staging_ttl_seconds", lambda v: _scaled(v, 3600)),
        "settle_ms": Renamed("settle_seconds", lambda v: _scaled(v, 0.001)),
        "rescan_interval_s": Renamed("rescan_interval_seconds"),
        "backoff_max_s": Renamed("backoff_max_seconds"),
    }

    max_request_bytes: int = Field(
        default=64 << 20,
        ge=1 << 20,
        le=4 << 30,
        description="Largest JSON or chunk-pack request body the server accepts (64 MiB).",
    )
    staging_ttl_seconds: float = Field(
        default=86400,
        gt=0,
        le=365 * 86400,
        description="Uploaded chunks not used by a file within this are dropped (a day).",
    )
    dedup_across_clients: bool = Field(
        default=False,
        description="Server: make a client's files from content other clients sent too. Off, "
        "dedup draws only on the client's own files: on, a client that knows a file's "
        "content id can get a copy of it and learn whether anyone holds it.",
    )
    keep_group_and_other_write: bool = Field(
        default=False,
        description="Server: keep the group and other write bits (and sticky) that clients "
        "send for their files and folders. Off, they are cleared on the server, so no other "
        "local user can change a synced tree; setuid and setgid are never kept.",
    )
    settle_seconds: float = Field(
        default=0.15,
        ge=0,
        le=60,
        description="`sync watch` waits until a path has been quiet this long before sending.",
    )
    rescan_interval_seconds: float = Field(
        default=3600,
        ge=0,
        description="`sync watch` re-checks the whole folder this often, repairing changes "
        "the filesystem events missed (Syncthing rescans hourly too); 0 turns it off. "
        "A lost-events signal from the kernel (inotify overflow) rescans at once.",
    )
    backoff_max_seconds: float = Field(
        default=30, gt=0, description="Longest wait between retries while the server is down."
    )
    default_excludes: bool = Field(
        default=True,
        description="Ignore common temporary and editor files (*.swp, *~, .DS_Store, ...).",
    )
    server: str = Field(
        default="",
        description="Client: URL of the sync server, e.g. https://home.example:8765 "
        "(the --server option wins).",
    )
    token: SecretStr = Field(
        default=SecretStr(""),
        description="Client: bearer token with scope sync (from 'homekeep token create NAME "
        "--scope sync' on the server); better set as HOMEKEEP_SYNC_TOKEN.",
    )
    name: str = Field(
        default="",
        description="Client: this machine's folder name on the server (default: the hostname).",
    )
    keep_versions_days: float = Field(
        default=30,
        ge=0,
        le=36500,
        description="Shared folders: what a delete or an overwrite replaces is kept in the "
        "folder's .homekeep-versions/ this many days (on the server and on every client); "
        "`homekeep sync versions` lists and restores. 0: pruned at the next pass.",
    )
    max_delete_percent: float = Field(
        default=50,
        ge=0,
        le=100,
        description="Shared folders: a pass that would delete more than this share of the "
        "folder's files stops and asks for --allow-mass-delete (a wiped or unmounted disk "
        "looks like everything deleted).",
    )
    shared_rescan_seconds: float = Field(
        default=60,
        gt=0,
        description="Server: shared folders are watched for edits made on the server and "
        "rescanned whole this often, for what the filesystem events miss.",
    )
    patch_cache_bytes: int = Field(
        default=256 << 20,
        ge=0,
        le=1 << 40,
        description="Client: disk (bytes) for a zstd copy of the last-synced content of files "
        "under 4 MiB that compress well (source, text); a changed one is then sent "
        "compressed against its old version, often a hundredth of its size. 0: none.",
    )
