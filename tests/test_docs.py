"""The docs that are generated from the code are current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_shows_every_current_default() -> None:
    spec = importlib.util.spec_from_file_location("ref", ROOT / "scripts" / "config-reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert module.rendered() in doc, "run: python scripts/config-reference.py"


def test_debian_package_list_matches_the_areas() -> None:
    from homekeep.areas import debian_packages_text

    listed = (ROOT / "scripts" / "debian-packages.txt").read_text(encoding="utf-8")
    assert listed == debian_packages_text(), "run: python scripts/debian-packages.py"
