"""The one flow behind every PuLP-model solver (``milp``, ``colmilp``, ``decomp``).

1. DP columns per distinct request (:func:`splitllm.solvers.columns.dp_columns`): they
   give the coupling-free bound, prove infeasibility of a request or a capacity before
   any MILP runs, and are the columns of F3.
2. When the least-work columns already fit the capacities, the coupling cannot bind and
   they are optimal (``min_server_work``; under ``max_admitted`` when every servable
   request of positive weight fits): ``decomp`` needs no master (``shortcut``); ``milp``
   and ``colmilp`` still solve their model, which is what a user picking them asks for.
3. Otherwise the model is built and solved (:mod:`splitllm.solvers.lexicographic`), and
   the answer goes through :func:`splitllm.solvers.certify.finish` with the tighter of the
   backend's and the DP's bounds. A backend's "infeasible" can only stand where the DP
   found the least-work placements over a capacity and both capacities are finite (any
   other case the DP settles itself, or is feasible by rejecting everyone).

One deadline covers all of it: the DP columns, building the model, writing it for the
backend and every backend phase (:mod:`splitllm.deadline`). A limit reached before the
backend has a solution gives ``no_solution``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pulp

from splitllm.deadline import TimeLimitReached, deadline_in
from splitllm.formulations.column import Columns, expand
from splitllm.solvers.columns import dp_columns
from splitllm.instance import Instance
from splitllm.resources import COUPLED
from splitllm.result import SolveResult, Status
from splitllm.solvers.capacity import JOINT_INFEASIBLE, dp_bound, explain_infeasible
from splitllm.solvers.certify import finish
from splitllm.solvers.lexicographic import Extract, solve_lexicographic

#: ``build(instance, columns, deadline=...)``: raises ``TimeLimitReached`` past the deadline.
Build = Callable[..., tuple[pulp.LpProblem, dict[str, Any]]]


def least_work_picks(instance: Instance, columns: Columns) -> np.ndarray:
    """Each request's least-work column (columns are sorted by work), -1 when it has none
    or, under ``max_admitted``, when its weight is 0 (admitting it only adds work)."""
    has = np.array([c.work.size > 0 for c in columns.per_type])[columns.type_of]
    if instance.objective.maximize:
        has &= instance.arrays.weight > 0
    return np.where(has, 0, -1).astype(np.int64)


def _fits(instance: Instance, columns: Columns, picks: np.ndarray) -> bool:
    """Whether the columns ``picks`` chooses keep every coupled resource within its capacity."""
    chosen = columns.flat_index(picks)[picks >= 0]
    return all(float(columns.flat_usage(res.key)[chosen].sum()) <= instance.arrays.limit(res) for res in COUPLED)


def solve_with_model(
    instance: Instance,
    name: str,
    build: Build,
    extract: Extract,
    backend: str,
    time_limit: float | None,
    threads: int | None = None,
    shortcut: bool = False,
) -> SolveResult:
    """Steps 1-3 of the module docstring for one registered solver (step 2 if ``shortcut``)."""
    deadline = deadline_in(time_limit)
    columns = dp_columns(instance, deadline)
    if columns is None:
        return SolveResult(name, Status.NO_SOLUTION, message="time limit reached (or would be) while computing the DP columns")
    info: dict[str, Any] = {"distinct_requests": len(columns.per_type), "columns": int(sum(c.work.size for c in columns.per_type))}
    dp = dp_bound(instance, columns)
    if instance.objective.serves_all:
        reason = explain_infeasible(instance, columns)
        if reason is not None:
            return SolveResult(name, Status.INFEASIBLE, message=reason, bound=float("inf"), info=info)
    picks = least_work_picks(instance, columns)
    if shortcut and _fits(instance, columns, picks):
        placements, admitted = expand(columns, picks, instance.n_blocks)
        return finish(instance, name, placements, admitted, True, dp, "capacities do not bind: per-request DP optima", info)
    try:
        problem, h = build(instance, columns, deadline=deadline)
    except TimeLimitReached as stop:
        return SolveResult(name, Status.NO_SOLUTION, message=str(stop), info=info)
    out = solve_lexicographic(instance, problem, h, backend, deadline, extract, threads)
    info.update(out.info)
    if out.placements is None or out.admitted is None:
        return _no_solution(instance, name, columns, out.status, out.message, info)
    bound = instance.objective.tightest(out.bound, dp)
    return finish(instance, name, out.placements, out.admitted, out.backend_optimal, bound, out.message, info)


def _no_solution(instance: Instance, name: str, columns: Columns, status: Status, message: str, info: dict[str, Any]) -> SolveResult:
    if status != Status.INFEASIBLE:
        return SolveResult(name, status if status != Status.FEASIBLE else Status.NO_SOLUTION, message=message, info=info)
    if instance.objective.maximize:
        return SolveResult(name, Status.ERROR, message=f"{message}, but rejecting every request is always feasible", info=info)
    a = instance.arrays
    if not all(np.isfinite(a.limit(res)) for res in COUPLED):
        return SolveResult(name, Status.NO_SOLUTION, message=f"{message}, but the DP proves the instance feasible: not believed", info=info)
    return SolveResult(name, Status.INFEASIBLE, message=f"{JOINT_INFEASIBLE} ({message})", bound=float("inf"), info=info)
