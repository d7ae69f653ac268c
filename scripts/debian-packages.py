"""Rewrite scripts/debian-packages.txt from the Debian packages each area declares."""

from __future__ import annotations

import sys
from pathlib import Path

from homekeep.areas import debian_packages_text

LIST = Path(__file__).resolve().parent / "debian-packages.txt"


def main() -> None:
    LIST.write_text(debian_packages_text(), encoding="utf-8")
    sys.stdout.write(f"wrote {LIST.name}\n")


if __name__ == "__main__":
    main()
