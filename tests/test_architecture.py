"""The layering rule: core imports no area; an area imports only core and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import homekeep
from homekeep.areas import AREAS

PACKAGE = Path(homekeep.__file__).parent
COMPOSERS = {"homekeep.cli", "homekeep.app", "homekeep.areas", "homekeep.__main__"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "homekeep" or m.startswith("homekeep.")}


def owner(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_layers() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        if module in COMPOSERS or module == "homekeep":
            continue
        layer = owner(module)
        for target in imported_modules(path):
            if target == "homekeep":
                continue  # the version string
            target_layer = owner(target)
            if layer == "core" and target_layer != "core":
                violations.append(f"{module} (core) imports {target}")
            if layer != "core" and target_layer not in ("core", layer):
                violations.append(f"{module} (area {layer}) imports {target}")
    assert violations == []


def test_every_listed_area_is_a_subpackage_with_its_own_name() -> None:
    for area in AREAS:
        assert (PACKAGE / area.name / "__init__.py").is_file()
        assert area.cli().name == area.name


TEMPLATE = ("config.py", "service.py", "store.py", "cli.py", "api.py")


def test_every_area_follows_the_template() -> None:
    """Each area has the same rooms: config, service (open_service), store, cli, api."""
    missing = []
    for area in AREAS:
        folder = PACKAGE / area.name
        missing += [f"{area.name}/{name}" for name in TEMPLATE if not (folder / name).is_file()]
        service = folder / "service.py"
        if service.is_file():
            tree = ast.parse(service.read_text(encoding="utf-8"))
            functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            if "open_service" not in functions:
                missing.append(f"{area.name}/service.py: open_service(ctx)")
    assert missing == []
