"""The layering rules of ../shared/ARCHITECTURE.md: core is Qt-free; ui never imports pynetdicom."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pacsbrowser"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level and node.module:
                # relative: resolve against the package path
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
                base = parts[: len(parts) - node.level]
                names.add(".".join((*base, node.module)))
    return names


def _violations(folder: str, banned: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in _imports(path):
            if name.startswith(banned):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


def test_core_never_imports_qt_ui_or_cli():
    assert _violations("core", ("PySide6", "qasync", "shiboken6", "pacsbrowser.ui", "pacsbrowser.cli")) == []


def test_ui_never_imports_pynetdicom():
    assert _violations("ui", ("pynetdicom",)) == []


def test_importing_core_loads_no_qt():
    code = ("import sys, pacsbrowser.core.client, pacsbrowser.core.config, pacsbrowser.core.errors; "
            "import pacsbrowser.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
