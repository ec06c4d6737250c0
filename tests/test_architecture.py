"""The package shape holds: layers and no cycles (import-linter), modules small,
`__init__` files that only re-export, no imports by string inside `twin/`.

The import-linter contract lives in `pyproject.toml` and runs in `make lint`; here it
also runs on a copy of the tree with a planted upward import, to show it would catch one.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("twin", "devices")
MAX_MODULE_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("twin/core/pulses.py", "import twin.runtime"),  # the core reaching up
        ("twin/registers/map.py", "import twin.modbus"),  # a lower layer importing a higher
        ("devices/__init__.py", "import twin.core"),  # devices into twin internals
    ],
)
def test_import_contracts_catch_a_planted_violation(
    tmp_path: Path, module: str, planted: str
) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_is_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_import_by_string(path: Path) -> None:
    if path.is_relative_to(REPO / "devices" / "registry.py"):
        return  # the device registry's lazy backends are the one sanctioned exception
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert name not in {"import_module", "__import__"}, (
                f"{path.relative_to(REPO)}:{node.lineno} imports a module by string"
            )


def _targets(node: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return node.targets if isinstance(node, ast.Assign) else [node.target]


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if p.name == "__init__.py"],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_package_init_only_reexports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.relative_to(REPO)} says what the package owns"
    for node in tree.body[1:]:
        ok = isinstance(node, ast.Import | ast.ImportFrom) or (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and {getattr(t, "id", "") for t in _targets(node)} <= {"__all__", "__version__"}
        )
        assert ok, f"{path.relative_to(REPO)}:{node.lineno} does more than re-export"
