"""``colmilp``: F3, one binary per request and DP column (:mod:`splitllm.formulations.column`).

Options: ``backend`` (``highs`` or ``cbc``) and ``threads``. Exact, because the DP's
column sets are complete Pareto sets in (work, kv).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> r = solve(load_instance(example_path("tiny")), "colmilp")
>>> r.status.value, round(r.objective, 6)
('optimal', 0.4)
"""

from __future__ import annotations

from splitllm.formulations import column
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.lexicographic import compact_solution
from splitllm.solvers.milp import PULP_OPTIONS
from splitllm.solvers.model_solver import solve_with_model


@register("colmilp", "F3 column MILP over the DP's Pareto placements, per request (backend=highs|cbc)", requires=("pulp", "highspy"), exact=True, options=PULP_OPTIONS)
def solve(instance: Instance, *, time_limit: float | None = None, backend: str = "highs", threads: int | None = None) -> SolveResult:
    return solve_with_model(instance, "colmilp", column.build, compact_solution, backend, time_limit, threads)
