"""The package's layers: a module imports only its own layer and those below it.

Lowest first: the shared vocabulary (errors, types, events), config, providers,
health, routing, recording, then the front ends. Read from the source with ast,
so an upward import fails here before it tangles the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rolecall

PACKAGE = Path(rolecall.__file__).parent

# Top-level names under rolecall/, by layer (lowest first).
LAYERS: dict[str, int] = {
    "errors": 0,
    "types": 0,
    "events": 0,
    "_secrets": 0,
    "_json": 0,
    "_text": 0,
    "_flock": 0,
    "_files": 0,
    "_descriptors": 0,
    "config": 1,
    "providers": 2,
    "health": 3,
    "routing": 4,
    "recording": 5,
    "setup": 6,
    "workflow": 6,
    "gateway": 6,
    "dashboard": 6,
    "sim": 6,
    "cli": 7,
}
# Modules kept only so that documented import paths go on working.
COMPAT_SHIMS = {"router", "recorder"}


def _top(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rolecall" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules() -> list[Path]:
    """Every module but the package's own ``__init__`` and ``__main__`` (they may re-export)."""
    entry_points = {PACKAGE / "__init__.py", PACKAGE / "__main__.py"}
    return sorted(p for p in PACKAGE.rglob("*.py") if p not in entry_points)


def test_every_top_level_name_has_a_layer() -> None:
    names = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _modules()}
    assert names - set(LAYERS) - COMPAT_SHIMS == set()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own in COMPAT_SHIMS:
        return
    upward = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if (top := _top(module)) is not None and top in LAYERS and LAYERS[top] > LAYERS[own]
    ]
    assert upward == []
