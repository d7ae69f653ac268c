"""The one list of areas that exist. Add an area here, and only here."""

from __future__ import annotations

from homekeep import backup, convert, images, music, sync
from homekeep.core.area import Area

AREAS: tuple[Area, ...] = (sync.AREA, backup.AREA, images.AREA, music.AREA, convert.AREA)


def by_name() -> dict[str, Area]:
    """Return the areas keyed by name."""
    return {area.name: area for area in AREAS}
