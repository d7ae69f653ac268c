"""Rewrite the full default config in docs/configuration.md from the code's own defaults."""

from __future__ import annotations

import sys
from pathlib import Path

from homekeep.areas import AREAS
from homekeep.core.config import CORE_SECTIONS, default_config_text

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
HEADING = "## The full default file\n"


def rendered() -> str:
    """Return the section of the docs that shows every key and its default."""
    sections = {**CORE_SECTIONS, **{area.name: area.config for area in AREAS}}
    return (
        f"{HEADING}\n"
        "What `homekeep config init` writes, generated from the code "
        "(`python scripts/config-reference.py` refreshes it; a test fails when it is stale):\n\n"
        f"```toml\n{default_config_text(sections).rstrip()}\n```\n"
    )


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    head = text.split(HEADING)[0].rstrip("\n")
    DOC.write_text(f"{head}\n\n{rendered()}", encoding="utf-8")
    sys.stdout.write(f"wrote {DOC.name}\n")


if __name__ == "__main__":
    main()
