"""Solving a built PuLP model (F2 or F3) for the instance's objective, in one or two phases.

``min_server_work`` is one solve. ``max_admitted`` is lexicographic (most admitted weight, then least work), solved
in two phases and never with a weighted sum: phase 1 maximises admitted weight; phase 2
adds the row ``weight >= W1`` (named ``lexicographic_weight``), where ``W1`` is the weight
phase 1's solution *achieves* (so the row is feasible), and minimises server work. The
model is restored afterwards, so a caller's model comes back as it went in.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.formulations import compact
>>> inst = load_instance(example_path("tiny"))
>>> problem, h = compact.build(inst)
>>> out = solve_lexicographic(inst, problem, h, "highs", None, compact_solution)
>>> out.backend_optimal, round(out.bound, 6), out.placements.astype(int).tolist()
(True, 0.4, [[0, 1, 0], [1, 1, 0]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pulp
from numpy.typing import NDArray

from splitllm.instance import Instance
from splitllm.result import Status
from splitllm.solvers.certify import remaining
from splitllm.solvers.pulp_backend import BackendOutcome, run

Solution = tuple[NDArray[np.bool_], NDArray[np.bool_]]
Extract = Callable[[Instance, dict[str, Any]], Solution]
WEIGHT_ROW = "lexicographic_weight"


@dataclass
class LexOutcome:
    """Placements and admitted flags (``None`` without a solution), the proven bound on
    the instance's objective in its own units (seconds or weight), and whether every phase
    was proven optimal by the backend."""

    status: Status
    placements: NDArray[np.bool_] | None
    admitted: NDArray[np.bool_] | None
    bound: float | None
    backend_optimal: bool
    message: str
    info: dict[str, Any] = field(default_factory=dict)


def compact_solution(instance: Instance, h: dict[str, Any]) -> Solution:
    """Placements and admitted flags from F2/F3 (per request) variable values."""
    n_req, n_blk = instance.n_requests, instance.n_blocks
    placements = np.array([[(pulp.value(h["x"][r, b]) or 0) > 0.5 for b in range(n_blk)] for r in range(n_req)], dtype=bool)
    if instance.objective.serves_all:  # a[r] is fixed to 1 (and may be in no row)
        admitted = np.ones(n_req, dtype=bool)
    else:
        admitted = np.array([(pulp.value(h["a"][r]) or 0) > 0.5 for r in range(n_req)], dtype=bool)
    return placements.reshape(n_req, n_blk), admitted


def _in_seconds(outcome: BackendOutcome, unit: float) -> float | None:
    return None if outcome.bound is None else outcome.bound * unit


def solve_lexicographic(
    instance: Instance,
    problem: pulp.LpProblem,
    h: dict[str, Any],
    backend: str,
    deadline: float | None,
    extract: Extract,
    threads: int | None = None,
) -> LexOutcome:
    """Solve ``problem`` (built by F2 or F3 for ``instance``) for its objective, both phases
    of ``max_admitted`` within the one ``deadline`` (phase 2 gets what phase 1 left)."""
    first = run(problem, backend, remaining(deadline), threads)
    info: dict[str, Any] = {"phase1": first.message}
    if first.objective is None:
        return LexOutcome(first.status, None, None, None, False, first.message, info)
    placements, admitted = extract(instance, h)
    if instance.objective.serves_all:
        optimal = first.status == Status.OPTIMAL
        return LexOutcome(first.status, placements, admitted, _in_seconds(first, h["work_unit"]), optimal, first.message, info)
    return _second_phase(instance, problem, h, backend, deadline, extract, first, (placements, admitted), threads)


def _second_phase(
    instance: Instance,
    problem: pulp.LpProblem,
    h: dict[str, Any],
    backend: str,
    deadline: float | None,
    extract: Extract,
    first: BackendOutcome,
    incumbent: Solution,
    threads: int | None,
) -> LexOutcome:
    achieved = float(instance.arrays.weight[incumbent[1]].sum())
    objective, sense = problem.objective, problem.sense
    problem += h["weight"] >= achieved, WEIGHT_ROW
    problem.sense = pulp.LpMinimize
    problem.setObjective(h["work"])
    try:
        second = run(problem, backend, remaining(deadline), threads)
        solution = extract(instance, h) if second.objective is not None else incumbent
    finally:
        del problem.constraints[WEIGHT_ROW]
        problem.sense = sense
        problem.setObjective(objective)
    if float(instance.arrays.weight[solution[1]].sum()) < achieved:
        solution = incumbent  # phase 2 may not give weight back, even within tolerances
    info = {"phase1": first.message, "phase2": second.message, "work_bound_s": _in_seconds(second, h["work_unit"])}
    optimal = first.status == Status.OPTIMAL and second.status == Status.OPTIMAL
    message = f"{first.message}; phase 2 {second.message}"
    return LexOutcome(Status.FEASIBLE, *solution, first.bound, optimal, message, info)
