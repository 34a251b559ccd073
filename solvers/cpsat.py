"""``cpsat``: F4 (:mod:`splitllm.formulations.cpsat`) with OR-Tools CP-SAT.

Solutions come from the *safe* model (every CP-SAT-feasible point truly feasible);
the bound comes from the *relaxed* model (every truly feasible point CP-SAT-feasible),
solved afterwards with the safe solution as a hint. So ``optimal`` is reported only when
the safe solution's true objective meets a valid bound of the true problem within
:data:`~splitllm.tolerances.OPTIMAL_GAP`, i.e. when rounding cannot have changed
the optimum; otherwise ``feasible`` with that bound. ``max_admitted`` runs the pair twice
(weight, then work at that weight). The resolution is 1 ppm of each limit and capacity
(option ``resolution``).

Options: ``workers`` (CP-SAT search workers, default 2), ``seed`` (default 0),
``resolution``, ``formulation``: ``compact`` (F2's variables, the default) or ``column``
(F3: integer counts of identical requests per DP Pareto column, only the coupling rows
rounded; exact because the column sets are complete Pareto sets).

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from splitllm.errors import SplitLLMError
from splitllm.formulations import cpsat as f4
from splitllm.formulations.column import Columns, expand, picks_from_counts
from splitllm.solvers.columns import dp_columns
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.capacity import JOINT_INFEASIBLE, dp_bound, explain_infeasible
from splitllm.solvers.certify import finish, remaining
from splitllm.tolerances import OPTIMAL_GAP


@dataclass
class Run:
    """One CP-SAT solve: its status, objective bound, the placements and admitted flags
    it found, and its variable values (to hint the next model built the same way)."""

    status: int
    bound: float
    x: np.ndarray | None
    a: np.ndarray | None
    values: dict[tuple[str, Any], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Form:
    """The F4 model a run uses: the compact one (over ``x``) or the column one (over the
    DP columns' counts ``y``)."""

    instance: Instance
    columns: Columns
    compact: bool
    resolution: int
    scale: float

    def build(self, rounding: f4.Rounding) -> tuple[cp_model.CpModel, dict[str, Any]]:
        if self.compact:
            return f4.build(self.instance, rounding, self.resolution, self.scale)
        return f4.build_columns(self.instance, self.columns, rounding, self.resolution, self.scale)

    def decision_handles(self) -> tuple[str, ...]:
        return ("x", "a") if self.compact else ("y", "a")

    def placements(self, values: dict[tuple[str, Any], int]) -> tuple[np.ndarray, np.ndarray]:
        inst = self.instance
        if self.compact:
            x = np.array([[values["x", (r, b)] for b in range(inst.n_blocks)] for r in range(inst.n_requests)], dtype=bool)
            return x.reshape(inst.n_requests, inst.n_blocks), np.array([values["a", r] for r in range(inst.n_requests)], dtype=bool)
        counts = [np.array([values["y", (t, k)] for k in range(len(c.work))], dtype=np.int64) for t, c in enumerate(self.columns.per_type)]
        return expand(self.columns, picks_from_counts(self.columns, counts), inst.n_blocks)


def _run(form: Form, model: cp_model.CpModel, h: dict[str, Any], deadline: float | None, options: dict[str, Any], hint: Run | None) -> Run:
    if hint is not None and hint.values:
        model.ClearHints()
        for (kind, key), value in hint.values.items():
            model.AddHint(h[kind][key], value)
    solver = cp_model.CpSolver()
    left = remaining(deadline)
    if left is not None:
        solver.parameters.max_time_in_seconds = max(left, 1e-3)
    solver.parameters.num_workers = int(options["workers"])
    solver.parameters.random_seed = int(options["seed"])
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Run(status, float("nan"), None, None)
    values = {(kind, key): int(solver.Value(v)) for kind in form.decision_handles() for key, v in h[kind].items()}
    x, a = form.placements(values)
    return Run(status, solver.BestObjectiveBound(), x, a, values)


def _true_work(instance: Instance, run: Run) -> float:
    return float(np.where(run.x & run.a[:, None], instance.arrays.work, 0).sum())  # type: ignore[operator,index]


def _min_work(form: Form, deadline: float | None, options: dict[str, Any]) -> tuple[Run, float | None, bool]:
    safe, hs = form.build("safe")
    found = _run(form, safe, hs, deadline, options, None)
    if found.x is None:
        return found, None, False
    relaxed, hr = form.build("relaxed")
    proof = _run(form, relaxed, hr, deadline, options, found)
    bound = proof.bound * hr["work_quantum"] if proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    return found, bound, found.status == cp_model.OPTIMAL


def _max_admitted(form: Form, deadline: float | None, options: dict[str, Any]) -> tuple[Run, float | None, bool, dict[str, Any]]:
    instance = form.instance
    weight = instance.arrays.weight
    safe, hs = form.build("safe")
    first = _run(form, safe, hs, deadline, options, None)
    if first.x is None:
        return first, None, False, {}
    relaxed, hr = form.build("relaxed")
    proof = _run(form, relaxed, hr, deadline, options, first)
    weight_bound = proof.bound * hr["weight_quantum"] if proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    achieved = float(weight[first.a].sum())  # type: ignore[index]
    safe.Add(hs["weight"] >= int(round(sum(int(round(w / hs["weight_quantum"])) for w in weight[first.a]))))  # type: ignore[index]
    safe.Minimize(hs["work"])
    second = _run(form, safe, hs, deadline, options, first)
    best = second if second.x is not None and float(weight[second.a].sum()) >= achieved else first  # type: ignore[index]
    weight_proven = weight_bound is not None and weight_bound <= achieved * (1 + OPTIMAL_GAP)
    work_proven = False
    info: dict[str, Any] = {}
    if weight_proven and second.status == cp_model.OPTIMAL:
        relaxed.Add(hr["weight"] >= int(np.floor(achieved / hr["weight_quantum"])))
        relaxed.Minimize(hr["work"])
        work_proof = _run(form, relaxed, hr, deadline, options, best)
        if work_proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            info["work_bound_s"] = work_proof.bound * hr["work_quantum"]
            work_proven = _true_work(instance, best) <= info["work_bound_s"] * (1 + OPTIMAL_GAP)
    return best, weight_bound, first.status == cp_model.OPTIMAL and work_proven, info


FORMULATIONS = ("compact", "column")
OPTIONS = (
    Option("workers", "integer", 2, "CP-SAT search workers (workers=1 with a fixed seed is reproducible)", low=1),
    Option("seed", "integer", 0, "CP-SAT random seed", low=0, high=2**31 - 1),
    Option("resolution", "integer", f4.RESOLUTION, "quanta per limit and capacity in the integer rows", low=1, high=10**9),
    Option("formulation", "choice", "compact", "F2's variables, or F3's DP columns", choices=FORMULATIONS),
)


@register("cpsat", "F4: F2 (or F3, formulation=column) with safely rounded integer coefficients in OR-Tools CP-SAT (workers, seed)", requires=("ortools",), exact=True, options=OPTIONS)
def solve(
    instance: Instance,
    *,
    time_limit: float | None = None,
    workers: int = 2,
    seed: int = 0,
    resolution: int = f4.RESOLUTION,
    formulation: str = "compact",
) -> SolveResult:
    if formulation not in FORMULATIONS:
        raise SplitLLMError(f"formulation: choose one of {', '.join(FORMULATIONS)}, got {formulation!r}")
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    columns = dp_columns(instance, deadline)
    if columns is None:
        return SolveResult("cpsat", Status.NO_SOLUTION, message="time limit reached while computing the DP columns")
    options = {"workers": workers, "seed": seed}
    scale = float(sum(c.least_work * n for c, n in zip(columns.per_type, columns.counts) if c.work.size))
    form = Form(instance, columns, formulation == "compact", resolution, scale)
    dp = dp_bound(instance, columns)
    message = f"CP-SAT on the {formulation} model, resolution 1/{resolution} of each limit"
    if instance.objective.serves_all:
        reason = explain_infeasible(instance, columns)
        if reason is not None:
            return SolveResult("cpsat", Status.INFEASIBLE, message=reason, bound=float("inf"))
        found, bound, optimal = _min_work(form, deadline, options)
        info: dict[str, Any] = {}
    else:
        found, bound, optimal, info = _max_admitted(form, deadline, options)
    if found.x is None or found.a is None:
        if found.status == cp_model.INFEASIBLE:
            relaxed, hr = form.build("relaxed")
            if _run(form, relaxed, hr, deadline, options, None).status == cp_model.INFEASIBLE:  # a relaxation: proof
                return SolveResult("cpsat", Status.INFEASIBLE, message=f"{JOINT_INFEASIBLE} ({message})", bound=float("inf"))
            return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: the safely rounded model is infeasible, the relaxed one is not")
        return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: no solution within the time limit")
    return finish(instance, "cpsat", found.x, found.a, optimal, instance.objective.tightest(bound, dp), message, info)
