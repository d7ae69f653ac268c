"""The one list of areas that exist. Add an area here, and only here."""

from __future__ import annotations

from homekeep import sync
from homekeep.core.area import Area

AREAS: tuple[Area, ...] = (sync.AREA,)


def by_name() -> dict[str, Area]:
    """Return the areas keyed by name."""
    return {area.name: area for area in AREAS}
