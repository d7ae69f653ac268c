"""The [pool] config section: ports, capacity, keep-alive, tickets, TLS, the client's defaults."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from homekeep.core.config import Section

_RANGE_RE = re.compile(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$")


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``"20000-20999"`` as ``(20000, 20999)``; empty is None (any free port)."""
    if not text.strip():
        return None
    match = _RANGE_RE.match(text)
    if match is None:
        raise ValueError(f"port_range {text!r} is not LOW-HIGH, e.g. 20000-20999")
    low, high = int(match[1]), int(match[2])
    if not 1024 <= low <= high <= 65535:
        raise ValueError(
            f"port_range {text!r} must lie within 1024-65535 with LOW no larger than HIGH"
        )
    return low, high


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("pool_invalid", "{message}", {"message": message})


class PoolConfig(Section):
    """A dispatcher that starts server processes on demand and hands clients a ticket."""

    host: str = Field(default="127.0.0.1", description="Address the server processes listen on.")
    public_host: str = Field(
        default="",
        description="Address handed to clients in allocations (default: host; a wildcard "
        "host hands out this machine's name).",
    )
    port_range: str = Field(
        default="",
        description="Ports the servers pick from at random, e.g. '20000-20999' "
        "(default: any free port).",
    )
    max_clients: int = Field(
        default=50, ge=1, le=10_000, description="Clients one server process holds at most."
    )
    min_idle: int = Field(
        default=1, ge=0, le=256, description="Empty servers kept ready ahead of demand."
    )
    max_servers: int = Field(
        default=8, ge=1, le=256, description="Server processes the dispatcher runs at most."
    )
    idle_timeout_seconds: float = Field(
        default=300,
        gt=0,
        le=86_400,
        description="A server empty this long is stopped (beyond the min_idle ones).",
    )
    ping_interval_seconds: float = Field(
        default=10,
        ge=0.05,
        le=3600,
        description="Clients ping this often; a client (or a server) silent for two "
        "intervals is dropped (or restarted).",
    )
    ticket_ttl_seconds: float = Field(
        default=60, ge=1, le=3600, description="How long an allocation's ticket stays valid."
    )
    allocate_wait_seconds: float = Field(
        default=5,
        ge=0,
        le=60,
        description="With every server full and max_servers running, an allocation waits "
        "this long for a seat before it fails with 'pool full'.",
    )
    max_line_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        le=16 * 1024 * 1024,
        description="Longest line a client may send; longer lines are dropped.",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate for the servers' TLS (default: [server] tls_cert).",
    )
    tls_key: Path | None = Field(
        default=None, description="PEM private key for tls_cert (default: [server] tls_key)."
    )
    url: str = Field(
        default="",
        description="Client: the dispatcher's URL for 'homekeep pool' commands "
        "(default: built from [server] host and port).",
    )
    token: SecretStr = Field(
        default=SecretStr(""),
        description="Client: bearer token with scope pool; better set as HOMEKEEP_POOL_TOKEN.",
    )

    @field_validator("port_range")
    @classmethod
    def _range(cls, value: str) -> str:
        try:
            parse_port_range(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.min_idle > self.max_servers:
            raise _invalid(
                f"min_idle ({self.min_idle}) cannot exceed max_servers ({self.max_servers})"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _invalid("give both tls_cert and tls_key, or neither")
        return self

    @property
    def ports(self) -> tuple[int, int] | None:
        """The port range as numbers, or None for any free port."""
        return parse_port_range(self.port_range)
