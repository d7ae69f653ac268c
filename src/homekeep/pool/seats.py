"""A seat: where the dispatcher sends a client, and the ticket that lets it in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from homekeep.core.errors import HomekeepError


@dataclass(frozen=True)
class Seat:
    """An allocation, as the dispatcher answers it and a client reads it."""

    host: str
    port: int
    ticket: str
    server: str
    client: str
    name: str
    expires_at: str
    tls: bool
    ping_interval_seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seat:
        """Read an allocation answer; a malformed one is an error, not a crash."""
        try:
            return cls(
                host=str(data["host"]),
                port=int(data["port"]),
                ticket=str(data["ticket"]),
                server=str(data["server"]),
                client=str(data["client"]),
                name=str(data["name"]),
                expires_at=str(data["expires_at"]),
                tls=bool(data["tls"]),
                ping_interval_seconds=float(data["ping_interval_seconds"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HomekeepError(f"the dispatcher's allocation is malformed: {exc}") from exc
