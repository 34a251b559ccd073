"""The package's arrows point one way: core <- formulations <- solvers <- bench/CLI.

A formulation builds a model from data and never calls a solver; no module dodges an
import cycle with an import inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ["resources.py", "tolerances.py", "instance.py", "evaluator.py", "diagnose.py", "result.py", "registry.py", "solution.py"]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.extend((f"{child.module}.{alias.name}", inner) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.py"))


@pytest.mark.parametrize("path", _modules("formulations"), ids=lambda p: p.name)
def test_formulations_import_no_solver(path: Path) -> None:
    solver_imports = [name for name, _ in _imports(path) if name.startswith("splitllm.solvers")]
    assert not solver_imports, f"{path.name} imports {solver_imports}"


@pytest.mark.parametrize("path", [ROOT / "splitllm" / name for name in CORE], ids=lambda p: p.name)
def test_core_imports_no_formulation_or_solver(path: Path) -> None:
    upward = [n for n, _ in _imports(path) if n.startswith(("splitllm.solvers", "splitllm.formulations", "splitllm.bench"))]
    allowed = {"diagnose.py": ("splitllm.formulations.chain_graph",), "registry.py": ()}
    upward = [n for n in upward if not n.startswith(allowed.get(path.name, ("-",)))]
    assert not upward, f"{path.name} imports {upward}"


@pytest.mark.parametrize("path", _modules("formulations") + _modules("solvers"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_function_local_imports_of_the_package(path: Path) -> None:
    local = [name for name, inner in _imports(path) if inner and name.startswith("splitllm")]
    assert not local, f"{path.name} imports {local} inside a function"


def test_importing_formulations_loads_no_solver() -> None:
    code = "import sys, splitllm.formulations.column, splitllm.formulations.compact, splitllm.formulations.cpsat, " \
        "splitllm.formulations.chain_graph; print(sorted(m for m in sys.modules if m.startswith('splitllm.solvers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
