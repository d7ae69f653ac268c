"""The bounds every HTTP server of homekeep puts on one client and on the numbers it sends.

No web imports here: the number types are plain annotated ints that pydantic models and
FastAPI parameters both read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Le


@dataclass(frozen=True)
class Limits:
    """What one client may cost a server before it is cut off."""

    max_header_bytes: int = 64 * 1024
    max_header_count: int = 128
    header_timeout_seconds: float = 15.0
    max_connections: int = 512
    # Past the 5 s idle expiry of httpx's pool (and uvicorn's own 5 s default): when both
    # sides give up at once, a request sent on a connection the server is closing fails
    # with a read error (a POST cannot be retried), so the client must always close first.
    keep_alive_seconds: int = 75


# The bounds of the numbers a request carries, stated in the types so the API schema says
# them too. SQLite stores 64-bit integers: a bigger one is an OverflowError (a 500) at
# the first query, so every integer that can reach a query is at most 64-bit.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
OFFSET_MAX = 10_000_000  # no list of a home server is longer; past it nothing is left

Int64 = Annotated[int, Ge(INT64_MIN), Le(INT64_MAX)]
"""An integer SQLite can store: an id, a generation, a time in nanoseconds."""
Offset = Annotated[int, Ge(0), Le(OFFSET_MAX)]
"""How many items of a list to skip."""
