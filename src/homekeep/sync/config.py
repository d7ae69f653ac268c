"""The [sync] config section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from homekeep.core.config import Section


class SyncConfig(Section):
    """Live folder sync: the server mounted in `homekeep serve`, and client defaults."""

    root: Path | None = Field(
        default=None,
        description="Folder that receives synced trees when `homekeep serve` runs; "
        "set it to mount the sync server under /api/sync/ (unset: not mounted).",
    )
    max_request_mb: int = Field(
        default=64, ge=1, le=4096, description="Largest request body the server accepts, in MiB."
    )
    staging_ttl_hours: float = Field(
        default=24, gt=0, description="Uploaded chunks not used by a file within this are dropped."
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
    settle_ms: int = Field(
        default=150,
        ge=0,
        le=60_000,
        description="`sync watch` waits until a path has been quiet this long before sending.",
    )
    rescan_interval_s: float = Field(
        default=3600,
        ge=0,
        description="`sync watch` re-checks the whole folder this often, repairing changes "
        "the filesystem events missed (Syncthing rescans hourly too); 0 turns it off. "
        "A lost-events signal from the kernel (inotify overflow) rescans at once.",
    )
    backoff_max_s: float = Field(
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
    patch_cache_bytes: int = Field(
        default=256 << 20,
        ge=0,
        le=1 << 40,
        description="Client: disk (bytes) for a zstd copy of the last-synced content of files "
        "under 4 MiB that compress well (source, text); a changed one is then sent "
        "compressed against its old version, often a hundredth of its size. 0: none.",
    )
