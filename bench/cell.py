"""One benchmark cell (instance x solver), run in a process of its own.

The runner starts ``python -m splitllm.bench.cell SPEC.json RECORD.json`` for every cell:
the child imports the plugin modules the spec names (they may register extra solvers with
:func:`splitllm.registry.register`), loads the instance, solves it through
:func:`splitllm.registry.solve` (so the independent evaluator checks the answer), and
writes one flat record as JSON. A crash or a hang in the child costs that cell only.

A *solver spec* is a registered name, optionally followed by solver options:
``dp-grid:grid_step=0.001`` passes ``grid_step=0.001`` to ``dp-grid`` (values are JSON
when they parse as JSON, strings otherwise; several options are separated by ``:``).

Examples
--------
>>> parse_solver_spec("dp-grid:grid_step=0.001:backend=highs")
('dp-grid', {'grid_step': 0.001, 'backend': 'highs'})
>>> parse_solver_spec("dp")
('dp', {})
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from splitllm.errors import InputError, SolverUnavailable, SplitLLMError


def parse_solver_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:key=value:..."`` into the registered name and its options."""
    name, *pairs = spec.split(":")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InputError("--solvers", f"option {pair!r} of {spec!r} is not KEY=VALUE")
        try:
            options[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = raw
    return name, options


def load_plugin(plugin: str) -> None:
    """Import a plugin: a module name, or the path of a ``.py`` file.

    Importing it is all that is done; a plugin registers its solvers at import time with
    :func:`splitllm.registry.register`.
    """
    if plugin.endswith(".py"):
        path = Path(plugin)
        if not path.is_file():
            raise InputError("--plugin", f"no such file {plugin!r}")
        name = f"splitllm_bench_plugin_{path.stem}"
        if name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(plugin)
    except ModuleNotFoundError as exc:
        raise InputError("--plugin", f"cannot import {plugin!r}: {exc}") from None


def _check_here(specs: list[str], plugins: list[str]) -> None:
    from splitllm.registry import get

    for plugin in plugins:
        load_plugin(plugin)
    for spec in specs:
        get(parse_solver_spec(spec)[0])


def check_solver_specs(specs: list[str], plugins: list[str]) -> None:
    """Raise :class:`splitllm.errors.SplitLLMError` for an unknown or uninstalled solver.

    With plugins the check runs in a child process, so that the plugins' solvers are
    never registered in the caller's process.
    """
    if not plugins:
        _check_here(specs, plugins)
        return
    plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in plugins]
    command = [sys.executable, "-m", "splitllm.bench.cell", "--check", json.dumps({"solvers": specs, "plugins": plugins})]
    with tempfile.TemporaryDirectory(prefix="splitllm-check-") as tmp:
        # An empty working directory: a ``splitllm/`` folder where we run cannot shadow the package.
        child = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        lines = [line for line in child.stderr.splitlines() if line.strip()]
        raise SolverUnavailable(lines[-1] if lines else f"solver check failed (exit code {child.returncode})")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def peak_memory_mb() -> float:
    """Peak resident memory of this process and of its finished children, in MiB.

    ``ru_maxrss`` is KiB on Linux (bytes on macOS); a solver that runs its backend as a
    child process (CBC through PuLP) is counted by the ``RUSAGE_CHILDREN`` figure.
    """
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return peak * scale / 2**20


def run_cell_here(spec: dict[str, Any]) -> dict[str, Any]:
    """Solve one cell in this process and return its record (see :mod:`splitllm.bench.runner`).

    ``spec`` holds ``path``, ``solver`` (a solver spec), ``time_limit`` and ``plugins``.
    """
    from splitllm.instance import load_instance
    from splitllm.registry import solve

    for plugin in spec.get("plugins", []):
        load_plugin(plugin)
    instance = load_instance(spec["path"])
    name, options = parse_solver_spec(spec["solver"])
    result = solve(instance, name, time_limit=spec["time_limit"], **options)
    evaluation = result.evaluation
    checked = evaluation is not None or result.status.has_solution
    verified = "yes" if evaluation is not None and result.status.has_solution else ("no" if checked else "-")
    return {
        "status": result.status.value,
        "objective": _finite(result.objective) if result.status.has_solution else None,
        "bound": _finite(result.bound),
        "time_s": result.time_s,
        "peak_mem_mb": peak_memory_mb(),
        "verified": verified,
        "server_work_s": evaluation.server_work if evaluation is not None and result.status.has_solution else None,
        "all_server_work_s": float(instance.arrays.work.sum()),
        "message": result.message,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child: ``python -m splitllm.bench.cell SPEC.json RECORD.json``.

    ``python -m splitllm.bench.cell --check JSON`` only checks the solver specs (see
    :func:`check_solver_specs`): exit 2 with the reason on stderr when one is unavailable.
    """
    args = argv if argv is not None else sys.argv[1:]
    if args[0] == "--check":
        check = json.loads(args[1])
        try:
            _check_here(check["solvers"], check["plugins"])
        except SplitLLMError as exc:
            print(str(exc).replace("\n", "; "), file=sys.stderr)
            return 2
        return 0
    spec_path, record_path = args
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    try:
        record = run_cell_here(spec)
    except SplitLLMError as exc:
        record = {"status": "error", "message": str(exc).replace("\n", "; ")}
    from splitllm.jsonio import write_json

    write_json(record_path, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
