"""The [convert] config section: the server, its workers, and the client (seed 001's files)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from homekeep.core.config import Section

MediaType = Literal["audio", "image", "video"]
MEDIA_TYPES: tuple[MediaType, ...] = ("audio", "image", "video")
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
_DEFAULT_CONVERSIONS: dict[MediaType, str] = {
    "video": "mkv-x264",
    "image": "webp",
    "audio": "opus",
}
_HOST_RE = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,253}$")
_CLIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def invalid(message: str) -> PydanticCustomError:
    """A validation error shown as written."""
    return PydanticCustomError("convert_invalid", "{message}", {"message": message})


def check_client_id(value: str) -> str:
    """A client id is 1-64 letters, digits and ._@- (it names the client's items)."""
    if not _CLIENT_RE.match(value):
        raise ValueError("a client id is 1-64 letters, digits, '.', '_', '@' or '-'")
    return value


class ServerEntry(BaseModel):
    """A server the client sends items to (seed: hostname, port, supported media types)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="Host name or address of the homekeep server.")
    port: int = Field(default=8080, ge=1, le=65535, description="Its TCP port.")
    tls: bool = Field(default=False, description="Use HTTPS.")
    media_types: list[MediaType] = Field(
        default_factory=lambda: list(MEDIA_TYPES), description="What it converts for us."
    )
    token: SecretStr = Field(
        default=SecretStr(""), description="A token with scope convert on that server."
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST_RE.match(value):
            raise invalid("host must be a host name or an address, without scheme or path")
        return value

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


class WatchEntry(BaseModel):
    """A folder the client observes, with the media types it sends from there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The folder (absolute).")
    media_types: list[MediaType] = Field(
        default_factory=lambda: list(MEDIA_TYPES), description="Which media to send."
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise invalid("a watched path must be absolute")
        return value


class ConvertConfig(Section):
    """The media conversion queue: server, workers and client."""

    media_types: list[MediaType] = Field(
        default_factory=lambda: list(MEDIA_TYPES),
        description="Server: the media types it accepts (seed: list_of_supported_media_types).",
    )
    number_of_conversion_threads: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Workers (one ffmpeg each) that `homekeep serve` and `convert worker` run; "
        "ffmpeg uses every core by itself, so 1 suits most machines; 0: serve runs none.",
    )
    broker: str = Field(
        default="sqlite",
        description="Where jobs wait: 'sqlite' (a file in the data dir, one machine) or "
        "redis://host:port/db for workers on other machines (better set as "
        "HOMEKEEP_CONVERT_BROKER when it holds a password).",
    )
    max_input_bytes: int = Field(
        default=64 << 30, ge=1, description="Largest input the server accepts."
    )
    min_free_bytes: int = Field(
        default=1 << 30,
        ge=0,
        description="Disk left free after an input and its expected output; else refused (507).",
    )
    max_pixels: int = Field(
        default=100_000_000, ge=1, description="Most pixels in one image or video frame."
    )
    max_duration_seconds: float = Field(
        default=86_400, gt=0, description="Longest input (audio or video) accepted."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="A job whose worker dies is run at most this often."
    )
    lease_seconds: float = Field(
        default=30,
        ge=1,
        le=3600,
        description="A worker that sends no heartbeat for this long loses its job.",
    )
    heartbeat_seconds: float = Field(
        default=2, gt=0, le=600, description="How often a worker reports progress."
    )
    job_timeout_seconds: float = Field(
        default=6 * 3600, gt=0, description="A conversion running longer than this fails."
    )
    upload_expiry_seconds: float = Field(
        default=86_400, gt=0, description="Unfinished uploads are dropped after this long."
    )
    upload_idle_seconds: float = Field(
        default=60, gt=0, le=3600, description="An upload request silent this long is cut."
    )
    tool_timeout_seconds: float = Field(
        default=60, gt=0, le=3600, description="ffprobe runs at most this long."
    )
    x264_crf: int = Field(default=23, ge=0, le=51, description="mkv-x264: quality (lower: better).")
    x264_preset: Preset = Field(default="medium", description="mkv-x264: speed against size.")
    x265_crf: int = Field(default=28, ge=0, le=51, description="mkv-x265: quality.")
    x265_preset: Preset = Field(default="medium", description="mkv-x265: speed against size.")
    webp_quality: int = Field(default=80, ge=0, le=100, description="webp: quality 0-100.")
    opus_bits_per_second: int = Field(
        default=128_000, ge=6_000, le=510_000, description="opus: the target bit rate."
    )
    server_url: str = Field(
        default="",
        description="Worker on another machine: the server it takes jobs from "
        "(the --server option wins).",
    )
    worker_token: SecretStr = Field(
        default=SecretStr(""),
        description="Worker on another machine: a token with scope convert-worker; better set "
        "as HOMEKEEP_CONVERT_WORKER_TOKEN.",
    )
    client_id: str = Field(
        default="", description="Client: this machine's name on the servers (default: hostname)."
    )
    token: SecretStr = Field(
        default=SecretStr(""),
        description="Client: the token (scope convert) for a server given with --server; "
        "better set as HOMEKEEP_CONVERT_TOKEN.",
    )
    servers: list[ServerEntry] = Field(
        default_factory=list,
        description="Client: the servers to send items to (seed: list_of_servers).",
    )
    watch: list[WatchEntry] = Field(
        default_factory=list,
        description="Client: folders `convert watch` observes (seed: list_of_paths_to_observe).",
    )
    conversions: dict[MediaType, str] = Field(
        default_factory=lambda: dict(_DEFAULT_CONVERSIONS),
        description="Client: the conversion `convert watch` asks for, per media type.",
    )
    fetch_dir: Path | None = Field(
        default=None,
        description="Client: where `convert watch` puts finished items (unset: not fetched).",
    )
    backoff_max_seconds: float = Field(
        default=300, gt=0, description="Client: longest wait between tries of a silent server."
    )
    poll_seconds: float = Field(
        default=10, gt=0, description="Client: how often `convert watch` asks for news."
    )
    upload_chunk_bytes: int = Field(
        default=64 << 20, ge=64 << 10, le=1 << 30, description="Client: bytes per upload request."
    )
    upload_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Client: uploads in flight at once (the server checks one while the "
        "next streams in).",
    )

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        if value != "sqlite" and not re.match(r"^rediss?://", value):
            raise invalid("broker must be 'sqlite' or a redis:// URL")
        return value

    @field_validator("client_id")
    @classmethod
    def _client(cls, value: str) -> str:
        if value:
            try:
                check_client_id(value)
            except ValueError as exc:
                raise invalid(str(exc)) from exc
        return value
