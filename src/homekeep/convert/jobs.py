"""What a worker is handed for one item, and the settings it converts with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homekeep.convert.config import ConvertConfig
from homekeep.convert.probing import MediaInfo

# The server's keys that shape a conversion; a worker converts with the server's values.
SETTING_KEYS = (
    "x264_crf",
    "x264_preset",
    "x265_crf",
    "x265_preset",
    "webp_quality",
    "opus_bits_per_second",
    "job_timeout_seconds",
    "heartbeat_seconds",
    "tool_timeout_seconds",
)


@dataclass(frozen=True)
class Job:
    """One claimed item: its lease, its input, and how to convert it."""

    item_id: str
    lease_token: str
    attempt: int
    conversion: str
    extension: str
    file_name: str
    file_size: int
    sha512: str
    info: MediaInfo
    settings: dict[str, Any]

    def config(self) -> ConvertConfig:
        """The server's conversion settings, validated as a config section."""
        return ConvertConfig.model_validate(
            {k: v for k, v in self.settings.items() if k in SETTING_KEYS}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "lease_token": self.lease_token,
            "attempt": self.attempt,
            "conversion": self.conversion,
            "extension": self.extension,
            "file_name": self.file_name,
            "file_size": self.file_size,
            "sha512_checksum": self.sha512,
            "probe": self.info.to_json(),
            "settings": self.settings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(
            item_id=str(data["item_id"]),
            lease_token=str(data["lease_token"]),
            attempt=int(data["attempt"]),
            conversion=str(data["conversion"]),
            extension=str(data["extension"]),
            file_name=str(data["file_name"]),
            file_size=int(data["file_size"]),
            sha512=str(data["sha512_checksum"]),
            info=MediaInfo.from_json(data["probe"]),
            settings=dict(data["settings"]),
        )


def settings_of(config: ConvertConfig) -> dict[str, Any]:
    """The conversion settings a server hands its workers."""
    dumped = config.model_dump(mode="json")
    return {k: dumped[k] for k in SETTING_KEYS}
