"""The core is pure (no IO, clocks, RNG) and its package only re-exports."""

from __future__ import annotations

import ast

import twin.core
from tests.helpers import REPO

FORBIDDEN = {
    "asyncio", "socket", "time", "datetime", "random", "os", "pathlib", "io", "yaml",
    "pymodbus", "aiomqtt", "sqlite3", "threading", "subprocess", "logging", "selectors",
}  # fmt: skip


def test_core_is_pure() -> None:
    core_dir = REPO / "twin" / "core"
    for path in sorted(core_dir.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            if isinstance(node, ast.Name):
                assert node.id != "open", f"{path.name} opens files"
            if isinstance(node, ast.Attribute) and node.attr == "random":
                parent = ast.unparse(node)
                # Only seeded generators: numpy.random.default_rng(seed).
                assert parent == "np.random", f"{path.name} uses {parent}"
        text = path.read_text()
        for bad in ("np.random.seed", "np.random.rand", "np.random.normal", "np.random.uniform"):
            assert bad not in text, f"{path.name} uses the global RNG ({bad})"


def test_core_imports_no_other_twin_package() -> None:
    for path in sorted((REPO / "twin" / "core").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("twin"):
                assert (node.module or "").startswith("twin.core"), f"{path.name}: {node.module}"


def test_init_only_reexports() -> None:
    tree = ast.parse((REPO / "twin" / "core" / "__init__.py").read_text())
    for node in tree.body:
        ok = isinstance(node, ast.ImportFrom | ast.Assign) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        assert ok, ast.unparse(node)
    assert sorted(twin.core.__all__) == sorted(set(twin.core.__all__))
    for name in twin.core.__all__:
        assert hasattr(twin.core, name), name
