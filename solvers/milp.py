"""``milp``: F2, the compact MILP (:mod:`splitllm.formulations.compact`), with CBC or HiGHS.

Options: ``backend`` (``highs``, the default, or ``cbc``; both through PuLP, their own
status read back, see :mod:`splitllm.solvers.pulp_backend`) and ``threads``. The DP's
coupling-free bound checks the answer (:mod:`splitllm.solvers.model_solver`).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> r = solve(load_instance(example_path("tiny")), "milp", backend="cbc")
>>> r.status.value, round(r.objective, 6)
('optimal', 0.4)
"""

from __future__ import annotations

from splitllm.formulations import compact
from splitllm.formulations.column import Columns
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.lexicographic import compact_solution
from splitllm.solvers.model_solver import solve_with_model
from splitllm.solvers.pulp_backend import BACKENDS

#: The options of every PuLP-model solver (``milp``, ``colmilp``, ``decomp``).
PULP_OPTIONS = (
    Option("backend", "choice", "highs", "MILP backend, both through PuLP", choices=tuple(sorted(BACKENDS, reverse=True))),
    Option("threads", "integer", None, "backend threads", low=1),
)


def _build(instance: Instance, columns: Columns, deadline: float | None = None) -> tuple[object, dict]:
    return compact.build(instance, deadline)


@register("milp", "F2 compact MILP through PuLP (backend=highs|cbc)", requires=("pulp", "highspy"), exact=True, options=PULP_OPTIONS)
def solve(instance: Instance, *, time_limit: float | None = None, backend: str = "highs", threads: int | None = None) -> SolveResult:
    return solve_with_model(instance, "milp", _build, compact_solution, backend, time_limit, threads)  # type: ignore[arg-type]
