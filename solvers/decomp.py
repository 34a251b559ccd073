"""``decomp``: exact decomposition, DP columns per distinct request and an aggregated master.

1. The exact label DP gives each *distinct* request its complete Pareto set of feasible
   placements in (work, kv) (only the least-work one when there is no KV capacity), in
   one label pass over all of them at once (:func:`splitllm.solvers.dp.pareto_search`).
2. If the least-work placements fit the capacities, they are optimal: done.
3. Otherwise the master is F3 aggregated over identical requests
   (:func:`splitllm.formulations.column.build` with ``aggregate=True``): one integer per
   (request type, column), as many variables as distinct columns whatever the number of
   requests. With one coupled resource it is a bounded multiple-choice knapsack, with two
   a two-row one; measured (bench/README-scale.md), HiGHS closes either exactly in well
   under a second for the suites we have, so one master serves both. Its dual bound is
   the proven bound reported; ``max_admitted`` runs it in two phases.

Options: ``backend`` (``highs`` or ``cbc``) for the master, ``threads``.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> r = solve(load_instance(example_path("tiny")), "decomp")
>>> r.status.value, round(r.objective, 6), r.bound is not None
('optimal', 0.4, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pulp

from splitllm.formulations import column
from splitllm.formulations.column import Columns, expand, picks_from_counts
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.lexicographic import Solution
from splitllm.solvers.milp import PULP_OPTIONS
from splitllm.solvers.model_solver import solve_with_model


def _master(instance: Instance, columns: Columns, deadline: float | None = None) -> tuple[pulp.LpProblem, dict[str, Any]]:
    problem, h = column.build(instance, columns, aggregate=True, deadline=deadline)
    h["columns"] = columns
    return problem, h


def _aggregated_solution(instance: Instance, h: dict[str, Any]) -> Solution:
    columns: Columns = h["columns"]
    counts = [
        np.array([round(pulp.value(h["z"][t, k]) or 0) for k in range(len(cols.work))], dtype=np.int64)
        for t, cols in enumerate(columns.per_type)
    ]
    return expand(columns, picks_from_counts(columns, counts), instance.n_blocks)


@register("decomp", "DP Pareto columns per distinct request + exact aggregated master (backend=highs|cbc)", requires=("pulp", "highspy"), exact=True, options=PULP_OPTIONS)
def solve(instance: Instance, *, time_limit: float | None = None, backend: str = "highs", threads: int | None = None) -> SolveResult:
    return solve_with_model(instance, "decomp", _master, _aggregated_solution, backend, time_limit, threads, shortcut=True)
