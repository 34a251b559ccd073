"""The package's arrows point one way, for every module of every package.

core <- batched <- formulations <- solvers <- bench <- cli, with instances and serving
between: :data:`ALLOWED` says, per package, which packages its modules may import, and
:data:`EXCEPTIONS` names the few modules allowed one arrow more, each with its reason. A
formulation builds a model from data and never calls a solver; the serving simulation
uses no solver's internals (it reaches solvers through the registry only); nothing but
the CLI imports the CLI. Every import statement counts, those inside functions too; where
:data:`NO_LOCAL_IMPORTS` says so, no module dodges an import cycle with an import inside a
function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The import packages and their folders (``core`` = the modules of ``splitllm/`` itself).
FOLDERS = {
    "core": "splitllm", "batched": "splitllm/batched", "cli": "splitllm/cli", "formulations": "formulations",
    "solvers": "solvers", "instances": "instances", "serving": "serving", "bench": "bench",
}  # fmt: skip
#: Package -> the packages its modules may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "batched": {"core"},
    "instances": {"core", "batched"},
    "formulations": {"core", "batched"},
    "solvers": {"core", "batched", "formulations"},
    "serving": {"core", "batched", "formulations", "instances"},
    "bench": {"core", "batched", "formulations", "solvers", "instances", "serving"},
    "cli": {"core", "batched", "formulations", "solvers", "instances", "serving", "bench"},
}
#: Module -> the modules (prefixes) it may import beyond its package's arrows, and why.
EXCEPTIONS: dict[str, tuple[str, ...]] = {
    # the public API offers solve_model lazily (module __getattr__), without loading solvers
    "splitllm": ("splitllm.solvers.user_model",),
    # explaining infeasibility walks the F1 layer-chain graph
    "splitllm.diagnose": ("splitllm.formulations.chain_graph",),
    # solution files of throughput placements are checked by the batched evaluator
    "splitllm.solution": ("splitllm.batched",),
}
#: Packages whose modules import nothing of splitllm inside a function.
NO_LOCAL_IMPORTS = ("batched", "formulations", "solvers", "serving")


def _module_name(path: Path) -> str:
    package = {ROOT / folder: ("splitllm" if name == "core" else f"splitllm.{name}") for name, folder in FOLDERS.items()}[path.parent]
    return package if path.stem == "__init__" else f"{package}.{path.stem}"


def _package(module: str) -> str | None:
    """The package (a key of :data:`FOLDERS`) of a dotted name in splitllm, else ``None``."""
    parts = module.split(".")
    if parts[0] != "splitllm":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else "core"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path.name}: relative import"
                found.extend((f"{child.module}.{alias.name}", inner) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def _all_modules() -> list[Path]:
    return sorted(p for folder in FOLDERS.values() for p in (ROOT / folder).glob("*.py"))


MODULES = _all_modules()


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_module_is_checked() -> None:
    assert len(MODULES) > 100 and {_package(_module_name(p)) for p in MODULES} == set(FOLDERS)


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_imports_follow_the_arrows(path: Path) -> None:
    module = _module_name(path)
    own = _package(module)
    assert own is not None
    allowed = ALLOWED[own] | {own}
    wrong = [
        name for name, _ in _imports(path)
        if (_package(name) or own) not in allowed and not name.startswith(EXCEPTIONS.get(module, ("-",)))
    ]  # fmt: skip
    assert not wrong, f"{_id(path)} ({own}) imports {wrong}; {own} may import {sorted(ALLOWED[own])}"


@pytest.mark.parametrize("path", [p for p in MODULES if _package(_module_name(p)) in NO_LOCAL_IMPORTS], ids=_id)
def test_no_function_local_imports_of_the_package(path: Path) -> None:
    local = [name for name, inner in _imports(path) if inner and name.startswith("splitllm")]
    assert not local, f"{_id(path)} imports {local} inside a function"


def test_the_arrows_have_no_cycle() -> None:
    """The allowed arrows themselves point one way (a topological order exists)."""
    left = {name: set(deps) for name, deps in ALLOWED.items()}
    while left:
        free = [name for name, deps in left.items() if not deps & set(left)]
        assert free, f"cycle among {sorted(left)}"
        for name in free:
            del left[name]


def test_a_wrong_arrow_is_caught(tmp_path: Path) -> None:
    """The check fails where it should: a serving module importing a solver's internals."""
    bad = tmp_path / "bad.py"
    bad.write_text("from splitllm.solvers.batch_greedy import solve_greedy\n\ndef f():\n    from splitllm.cli import main\n")
    names = [name for name, _ in _imports(bad)]
    assert [n for n in names if _package(n) not in ALLOWED["serving"] | {"serving"}] == names


def test_importing_formulations_loads_no_solver() -> None:
    code = "import sys, splitllm.formulations.column, splitllm.formulations.compact, splitllm.formulations.cpsat, " \
        "splitllm.formulations.chain_graph; print(sorted(m for m in sys.modules if m.startswith('splitllm.solvers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_importing_the_library_loads_no_cli() -> None:
    code = "import sys, splitllm, splitllm.batched.report, splitllm.serving.policies, splitllm.bench.runner, " \
        "splitllm.bench.fidelity; print(sorted(m for m in sys.modules if m.startswith('splitllm.cli')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
