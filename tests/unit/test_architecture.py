"""The layers of the package run one way: ``lint-imports`` checks the import contracts of
pyproject.toml ``[tool.importlinter]`` (function-level imports count too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"lint-imports exited {proc.returncode}\n{proc.stdout}{proc.stderr}"


def underscore_imports(package: Path) -> list[str]:
    """``file:line: name`` for each place a module takes another module's underscore name:
    ``from m import _x``, ``from m import x as _x`` or ``m._x`` on an imported module."""
    import ast

    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                    "dvc_monitor")):
                for alias in node.names:
                    for name in (alias.name, alias.asname or ""):
                        if name.startswith("_") and not name.startswith("__"):
                            found.append(f"{path.relative_to(package.parent)}:{node.lineno}: {name}")
                    modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name.split(".")[0] for a in node.names
                               if a.name.startswith("dvc_monitor"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}: "
                             f"{node.value.id}.{node.attr}")
    return found


def test_no_module_takes_another_modules_underscore_names():
    assert underscore_imports(ROOT / "dvc_monitor") == []


def test_the_underscore_check_finds_a_private_import(tmp_path):
    """The check above can fail: a module that takes ``_private`` from another is named."""
    package = tmp_path / "dvc_monitor"
    package.mkdir()
    (package / "a.py").write_text("from dvc_monitor.b import _private\n"
                                  "from dvc_monitor import c\nc._hidden()\n")
    assert underscore_imports(package) == ["dvc_monitor/a.py:1: _private",
                                           "dvc_monitor/a.py:3: c._hidden"]
