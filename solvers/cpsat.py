"""``cpsat``: F4 (:mod:`splitllm.formulations.cpsat`) with OR-Tools CP-SAT.

Solutions come from the *safe* model (every CP-SAT-feasible point truly feasible);
the bound comes from the *relaxed* model (every truly feasible point CP-SAT-feasible),
solved afterwards with the safe solution as a hint. So ``optimal`` is reported only when
the safe solution's true objective meets a valid bound of the true problem within
:data:`~splitllm.solvers.tolerances.OPTIMAL_GAP`, i.e. when rounding cannot have changed
the optimum; otherwise ``feasible`` with that bound. ``max_admitted`` runs the pair twice
(weight, then work at that weight). The resolution is 1 ppm of each limit and capacity
(option ``resolution``).

Options: ``workers`` (CP-SAT search workers, default 2), ``seed`` (default 0),
``resolution``.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> r = solve(load_instance(example_path("tiny")), "cpsat")
>>> r.status.value, round(r.objective, 6)
('optimal', 0.4)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from splitllm.formulations import cpsat as f4
from splitllm.formulations.column import dp_columns
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.capacity import JOINT_INFEASIBLE, dp_bound, explain_infeasible
from splitllm.solvers.certify import finish, remaining, tighter
from splitllm.solvers.tolerances import OPTIMAL_GAP


@dataclass
class Run:
    status: int
    bound: float
    x: np.ndarray | None
    a: np.ndarray | None


def _run(instance: Instance, model: cp_model.CpModel, h: dict[str, Any], deadline: float | None, options: dict[str, Any], hint: Run | None) -> Run:
    if hint is not None and hint.x is not None and hint.a is not None:
        model.ClearHints()
        for (r, b), v in h["x"].items():
            model.AddHint(v, bool(hint.x[r, b]))
        for r, v in h["a"].items():
            model.AddHint(v, bool(hint.a[r]))
    solver = cp_model.CpSolver()
    left = remaining(deadline)
    if left is not None:
        solver.parameters.max_time_in_seconds = max(left, 1e-3)
    solver.parameters.num_workers = int(options["workers"])
    solver.parameters.random_seed = int(options["seed"])
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Run(status, float("nan"), None, None)
    x = np.array([[solver.BooleanValue(h["x"][r, b]) for b in range(instance.n_blocks)] for r in range(instance.n_requests)], dtype=bool)
    a = np.array([solver.BooleanValue(h["a"][r]) for r in range(instance.n_requests)], dtype=bool)
    return Run(status, solver.BestObjectiveBound(), x.reshape(instance.n_requests, instance.n_blocks), a)


def _true_work(instance: Instance, run: Run) -> float:
    return float(np.where(run.x & run.a[:, None], instance.arrays.work, 0).sum())  # type: ignore[operator,index]


def _min_work(instance: Instance, scale: float, deadline: float | None, options: dict[str, Any]) -> tuple[Run, float | None, bool]:
    safe, hs = f4.build(instance, "safe", options["resolution"], scale)
    found = _run(instance, safe, hs, deadline, options, None)
    if found.x is None:
        return found, None, False
    relaxed, hr = f4.build(instance, "relaxed", options["resolution"], scale)
    proof = _run(instance, relaxed, hr, deadline, options, found)
    bound = proof.bound * hr["work_quantum"] if proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    return found, bound, found.status == cp_model.OPTIMAL


def _max_admitted(instance: Instance, scale: float, deadline: float | None, options: dict[str, Any]) -> tuple[Run, float | None, bool, dict[str, Any]]:
    weight = instance.arrays.weight
    safe, hs = f4.build(instance, "safe", options["resolution"], scale)
    first = _run(instance, safe, hs, deadline, options, None)
    relaxed, hr = f4.build(instance, "relaxed", options["resolution"], scale)
    proof = _run(instance, relaxed, hr, deadline, options, first)
    weight_bound = proof.bound * hr["weight_quantum"] if proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    achieved = float(weight[first.a].sum())  # type: ignore[index]
    safe.Add(hs["weight"] >= int(round(sum(int(round(w / hs["weight_quantum"])) for w in weight[first.a]))))  # type: ignore[index]
    safe.Minimize(hs["work"])
    second = _run(instance, safe, hs, deadline, options, first)
    best = second if second.x is not None and float(weight[second.a].sum()) >= achieved else first  # type: ignore[index]
    weight_proven = weight_bound is not None and weight_bound <= achieved * (1 + OPTIMAL_GAP)
    work_proven = False
    info: dict[str, Any] = {}
    if weight_proven and second.status == cp_model.OPTIMAL:
        relaxed.Add(hr["weight"] >= int(np.floor(achieved / hr["weight_quantum"])))
        relaxed.Minimize(hr["work"])
        work_proof = _run(instance, relaxed, hr, deadline, options, best)
        if work_proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            info["work_bound_s"] = work_proof.bound * hr["work_quantum"]
            work_proven = _true_work(instance, best) <= info["work_bound_s"] * (1 + OPTIMAL_GAP)
    return best, weight_bound, first.status == cp_model.OPTIMAL and work_proven, info


@register("cpsat", "F4: F2 with safely rounded integer coefficients in OR-Tools CP-SAT (workers, seed)", requires=("ortools",), exact=True)
def solve(
    instance: Instance, *, time_limit: float | None = None, workers: int = 2, seed: int = 0, resolution: int = f4.RESOLUTION
) -> SolveResult:
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    columns = dp_columns(instance, deadline)
    if columns is None:
        return SolveResult("cpsat", Status.NO_SOLUTION, message="time limit reached while computing the DP columns")
    options = {"workers": workers, "seed": seed, "resolution": resolution}
    scale = float(sum(c.least_work * n for c, n in zip(columns.per_type, columns.counts) if c.work.size))
    dp = dp_bound(instance, columns)
    message = f"CP-SAT, resolution 1/{resolution} of each limit"
    if instance.objective == "min_server_work":
        reason = explain_infeasible(instance, columns)
        if reason is not None:
            return SolveResult("cpsat", Status.INFEASIBLE, message=reason, bound=float("inf"))
        found, bound, optimal = _min_work(instance, scale, deadline, options)
        info: dict[str, Any] = {}
    else:
        found, bound, optimal, info = _max_admitted(instance, scale, deadline, options)
    if found.x is None or found.a is None:
        if found.status == cp_model.INFEASIBLE:
            relaxed, hr = f4.build(instance, "relaxed", resolution, scale)
            if _run(instance, relaxed, hr, deadline, options, None).status == cp_model.INFEASIBLE:  # a relaxation: proof
                return SolveResult("cpsat", Status.INFEASIBLE, message=f"{JOINT_INFEASIBLE} ({message})", bound=float("inf"))
            return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: the safely rounded model is infeasible, the relaxed one is not")
        return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: no solution within the time limit")
    return finish(instance, "cpsat", found.x, found.a, optimal, tighter(instance.objective, bound, dp), message, info)
