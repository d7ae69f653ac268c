"""What one pass did, and what it looked at."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Summary:
    """What one pass did; printed by `sync push`."""

    files_scanned: int = 0
    bytes_scanned: int = 0
    files_sent: int = 0
    bytes_read: int = 0
    data_bytes_sent: int = 0
    wire_bytes: int = 0
    requests: int = 0
    created: int = 0
    modified: int = 0
    renamed: int = 0
    deleted: int = 0
    folders: int = 0
    links: int = 0
    deduplicated: int = 0
    skipped: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def changes(self) -> int:
        return (
            self.created + self.modified + self.renamed + self.deleted + self.folders + self.links
        )


@dataclass(frozen=True)
class Scope:
    """A path to look at; ``deep`` includes everything under it."""

    path: str
    deep: bool = True

    def covers(self, rel: str) -> bool:
        if self.path == "":
            return self.deep or rel == ""
        if rel == self.path:
            return True
        return self.deep and rel.startswith(self.path + "/")
