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
