"""The sync package's layout: client code never reaches server code, no import cycle, no
module past 600 lines (see docs/architecture.md, "sync")."""

from __future__ import annotations

import ast
from pathlib import Path

import homekeep.sync

PACKAGE = Path(homekeep.sync.__file__).parent
LINE_LIMIT = 600
# what only the server runs: its domain, its SQL, its routes and what opens them
SERVER = ("homekeep.sync.server", "homekeep.sync.store", "homekeep.sync.api")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent.parent).with_suffix("")
        found[".".join(rel.parts).removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """The sync modules ``module`` imports, at the top or in a function (``from pkg import
    mod`` counts as ``pkg.mod``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {name for name in found if name in MODULES and name != module}


def _reach(start: str) -> dict[str, str]:
    """Every sync module ``start`` imports, directly or through others: each with the
    module it was imported from."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in _imports(current):
            if target not in seen:
                seen[target] = current
                todo.append(target)
    return seen


def _chain(seen: dict[str, str], start: str, end: str) -> str:
    links = [end]
    while links[-1] != start:
        links.append(seen[links[-1]])
    return " -> ".join(reversed(links))


def _is_server(module: str) -> bool:
    return any(module == s or module.startswith(s + ".") for s in SERVER)


def test_the_layout_is_client_server_and_wire() -> None:
    for part in ("client", "server", "wire"):
        assert f"homekeep.sync.{part}" in MODULES
    assert any(m.startswith("homekeep.sync.client.") for m in MODULES)
    assert any(m.startswith("homekeep.sync.server.") for m in MODULES)


def test_client_code_never_imports_server_code() -> None:
    """Not directly, not through a wire module, not in a function's own import."""
    wrong = []
    for module in MODULES:
        if not module.startswith(("homekeep.sync.client", "homekeep.sync.wire")):
            continue
        seen = _reach(module)
        wrong += [_chain(seen, module, m) for m in seen if _is_server(m)]
    assert wrong == []


def test_wire_modules_import_only_wire_modules() -> None:
    wrong = [
        f"{module} -> {target}"
        for module in MODULES
        if module.startswith("homekeep.sync.wire")
        for target in _imports(module)
        if not target.startswith("homekeep.sync.wire")
    ]
    assert wrong == []


def test_no_import_cycle_among_the_sync_modules() -> None:
    """Counting the imports a function makes when it runs: ``adopt`` and the store once
    imported each other that way."""
    cycles = []
    for module in MODULES:
        seen = _reach(module)
        if module in seen:
            cycles.append(_chain(seen, module, seen[module]) + f" -> {module}")
    assert cycles == []


def test_no_sync_module_is_longer_than_the_limit() -> None:
    long = {
        module: count
        for module, path in MODULES.items()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > LINE_LIMIT
    }
    assert long == {}
