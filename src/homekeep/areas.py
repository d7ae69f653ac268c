"""The one list of areas that exist. Add an area here, and only here."""

from __future__ import annotations

from homekeep import backup, convert, images, music, pool, sync
from homekeep.core.area import Area

AREAS: tuple[Area, ...] = (
    sync.AREA,
    backup.AREA,
    images.AREA,
    music.AREA,
    convert.AREA,
    pool.AREA,
)

# Debian packages the whole project needs beside those of the areas.
CORE_DEBIAN_PACKAGES = {
    "chromium": "tests: every area's pages in a real headless browser",
    "systemd": "homekeep service: `systemd-analyze verify` checks the units in the tests",
}


def by_name() -> dict[str, Area]:
    """Return the areas keyed by name."""
    return {area.name: area for area in AREAS}


def debian_packages_text() -> str:
    """scripts/debian-packages.txt as generated from the areas' declarations."""
    wanted = dict(CORE_DEBIAN_PACKAGES)
    for area in AREAS:
        for package, why in area.debian_packages.items():
            wanted[package] = f"{wanted[package]}; {why}" if package in wanted else why
    width = max(len(package) for package in wanted)
    lines = [
        "# Debian packages homekeep drives or tests with; scripts/install-system-packages.sh",
        "# installs the missing ones. Generated from each area's `debian_packages` by",
        "# `python scripts/debian-packages.py`; a test fails when it is stale.",
        *(f"{package:<{width}} # {why}" for package, why in sorted(wanted.items())),
    ]
    return "\n".join(lines) + "\n"
