"""``cpsat``: F4 (:mod:`splitllm.formulations.cpsat`) with OR-Tools CP-SAT.

Solutions come from the *safe* model (every CP-SAT-feasible point truly feasible);
the bound comes from the *relaxed* model (every truly feasible point CP-SAT-feasible),
solved afterwards with the safe solution as a hint. So ``optimal`` is reported only when
the safe solution's true objective meets a valid bound of the true problem within
:data:`~splitllm.tolerances.OPTIMAL_GAP`, i.e. when rounding cannot have changed
the optimum; otherwise ``feasible`` with that bound. ``max_admitted`` runs the pair twice
(weight, then work at that weight). The resolution is 1 ppm of each limit and capacity
(option ``resolution``).

Time: one deadline covers the DP columns, building each model (checked between
requests) and every CP-SAT run (its ``max_time_in_seconds`` set to what is left); a
proof run that no longer fits is skipped (the answer is then ``feasible``).
Determinism: ``workers=1`` with a fixed ``seed`` gives the same placements run to run
(as long as the time limit does not cut a run short); with more workers CP-SAT's threads
race and placements may differ. Numbers: a row whose coefficients cannot be written as
integers in its quanta (above :data:`MAX_ROW_UNITS`) is refused with status ``error``
naming the row and request (:func:`numeric_trouble`), never a traceback. CP-SAT's log goes
to the ``splitllm`` logger when it is enabled for DEBUG.

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

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from splitllm.deadline import TimeLimitReached, deadline_in
from splitllm.errors import SplitLLMError
from splitllm.formulations import cpsat as f4
from splitllm.formulations.column import Columns, expand, picks_from_counts
from splitllm.formulations.request_rows import request_rows
from splitllm.formulations.units import capacity_scale
from splitllm.solvers.columns import dp_columns
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.capacity import JOINT_INFEASIBLE, dp_bound, explain_infeasible
from splitllm.solvers.certify import finish, remaining
from splitllm.tolerances import OPTIMAL_GAP

logger = logging.getLogger("splitllm")
#: Largest sum of |coefficient| x variable range (plus |rhs|) of one row or objective, in
#: integer units: 2**53 keeps the float -> int64 rounding exact and far from CP-SAT's
#: int64 overflow checks.
MAX_ROW_UNITS = 2.0**53


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

    def build(self, rounding: f4.Rounding, deadline: float | None) -> tuple[cp_model.CpModel, dict[str, Any]]:
        """The model (raises :class:`~splitllm.deadline.TimeLimitReached` past ``deadline``)."""
        if self.compact:
            return f4.build(self.instance, rounding, self.resolution, self.scale, deadline)
        return f4.build_columns(self.instance, self.columns, rounding, self.resolution, self.scale, deadline)

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
    left = remaining(deadline)
    if left is not None and left <= 0:
        return Run(cp_model.UNKNOWN, float("nan"), None, None)
    solver = _solver(options, left)
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Run(status, float("nan"), None, None)
    values = {(kind, key): int(solver.Value(v)) for kind in form.decision_handles() for key, v in h[kind].items()}
    x, a = form.placements(values)
    return Run(status, solver.BestObjectiveBound(), x, a, values)


def _solver(options: dict[str, Any], seconds: float | None) -> cp_model.CpSolver:
    """A CP-SAT solver with the run's parameters; its log to the logger at DEBUG."""
    solver = cp_model.CpSolver()
    if seconds is not None:
        solver.parameters.max_time_in_seconds = seconds
    solver.parameters.num_workers = int(options["workers"])
    solver.parameters.random_seed = int(options["seed"])
    if logger.isEnabledFor(logging.DEBUG):
        solver.parameters.log_search_progress = True
        solver.parameters.log_to_stdout = False
        solver.log_callback = lambda line: logger.debug("CP-SAT: %s", line)
    return solver


def _build(form: Form, rounding: f4.Rounding, deadline: float | None) -> tuple[cp_model.CpModel, dict[str, Any]] | None:
    """``form.build``, or ``None`` when the deadline passes while building."""
    try:
        return form.build(rounding, deadline)
    except TimeLimitReached:
        return None


def _true_work(instance: Instance, run: Run) -> float:
    return float(np.where(run.x & run.a[:, None], instance.arrays.work, 0).sum())  # type: ignore[operator,index]


def _min_work(form: Form, deadline: float | None, options: dict[str, Any]) -> tuple[Run, float | None, bool]:
    safe, hs = form.build("safe", deadline)
    found = _run(form, safe, hs, deadline, options, None)
    built = _build(form, "relaxed", deadline) if found.x is not None else None
    if built is None:
        return found, None, False
    relaxed, hr = built
    proof = _run(form, relaxed, hr, deadline, options, found)
    bound = proof.bound * hr["work_quantum"] if proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    return found, bound, found.status == cp_model.OPTIMAL


def _max_admitted(form: Form, deadline: float | None, options: dict[str, Any]) -> tuple[Run, float | None, bool, dict[str, Any]]:
    instance = form.instance
    weight = instance.arrays.weight
    safe, hs = form.build("safe", deadline)
    first = _run(form, safe, hs, deadline, options, None)
    if first.x is None:
        return first, None, False, {}
    built = _build(form, "relaxed", deadline)
    proof = _run(form, *built, deadline, options, first) if built is not None else Run(cp_model.UNKNOWN, float("nan"), None, None)
    weight_bound = proof.bound * built[1]["weight_quantum"] if built and proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    achieved = float(weight[first.a].sum())  # type: ignore[index]
    safe.Add(hs["weight"] >= int(round(sum(int(round(w / hs["weight_quantum"])) for w in weight[first.a]))))  # type: ignore[index]
    safe.Minimize(hs["work"])
    second = _run(form, safe, hs, deadline, options, first)
    best = second if second.x is not None and float(weight[second.a].sum()) >= achieved else first  # type: ignore[index]
    weight_proven = weight_bound is not None and weight_bound <= achieved * (1 + OPTIMAL_GAP)
    work_proven = False
    info: dict[str, Any] = {}
    if built is not None and weight_proven and second.status == cp_model.OPTIMAL:
        relaxed, hr = built
        relaxed.Add(hr["weight"] >= int(np.floor(achieved / hr["weight_quantum"])))
        relaxed.Minimize(hr["work"])
        work_proof = _run(form, relaxed, hr, deadline, options, best)
        if work_proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            info["work_bound_s"] = work_proof.bound * hr["work_quantum"]
            work_proven = _true_work(instance, best) <= info["work_bound_s"] * (1 + OPTIMAL_GAP)
    return best, weight_bound, first.status == cp_model.OPTIMAL and work_proven, info


def _row_units(row: Any, resolution: int) -> float:
    """Sum of |coefficient| (plus |rhs|) of a request row in its quanta (every variable is 0/1)."""
    n_cross = len(row.x_coef) - 1
    total = float(np.abs(row.x_coef).sum()) + n_cross * (abs(row.u_coef) + abs(row.d_coef)) + abs(row.cu_coef) + abs(row.cd_coef)
    return (total + abs(row.limit - row.const)) / (row.scale / resolution)


def _coupling_units(form: Form) -> dict[str, float]:
    """The same for the capacity rows and the objective (as :mod:`splitllm.formulations.cpsat`
    rounds them), each term at its variable's largest value."""
    a = form.instance.arrays
    if form.compact:
        work, kv, n_terms = float(a.work.sum()), float(a.kv.sum()), a.work.size
    else:
        n = form.columns.counts
        work = float(sum(k * c.work.sum() for k, c in zip(n, form.columns.per_type)))
        kv = float(sum(k * c.kv.sum() for k, c in zip(n, form.columns.per_type)))
        n_terms = form.instance.n_requests
    units = {}
    for name, total, cap in (("work_capacity", work, a.work_capacity), ("kv_capacity", kv, a.kv_capacity)):
        if math.isfinite(cap):
            units[name] = (total + cap) / (capacity_scale(cap) / form.resolution)
    scale = form.scale if form.scale > 0 else float(a.work.sum()) or 1.0
    units["objective (server work)"] = work / (OPTIMAL_GAP / 10 * scale / max(1, n_terms))
    if np.all(a.weight == np.round(a.weight)):
        units["objective (admitted weight)"] = float(np.abs(a.weight).sum())
    return units


def numeric_trouble(form: Form) -> str | None:
    """Why the F4 model of ``form`` cannot be written in integers, or ``None``.

    A row's integer coefficients (in quanta of its limit / ``resolution``) must stay within
    :data:`MAX_ROW_UNITS`: e.g. a TTFT limit of 1e-9 s against a 1e6 s coefficient would
    need 1e21 units, past int64. Identical requests share their rows, so one per type is
    checked and the first such request is named.
    """
    inst = form.instance
    for r in map(int, form.columns.representative) if form.compact else ():
        for row in request_rows(inst.arrays, r):
            units = _row_units(row, form.resolution)
            if not units <= MAX_ROW_UNITS:  # also catches nan
                return (
                    f"row {row.name!r} of requests[{r}] (id {inst.requests[r].id!r}): its coefficients and limit "
                    f"({row.limit:.3g}) need {units:.3g} integer units at 1/{form.resolution} of the limit, "
                    f"more than CP-SAT can take safely ({MAX_ROW_UNITS:.3g}); use another solver"
                )
    for name, units in _coupling_units(form).items():
        if not units <= MAX_ROW_UNITS:
            return f"row {name!r}: needs {units:.3g} integer units, more than CP-SAT can take safely ({MAX_ROW_UNITS:.3g}); use another solver"
    return None


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
    deadline = deadline_in(time_limit)
    columns = dp_columns(instance, deadline)
    if columns is None:
        return SolveResult("cpsat", Status.NO_SOLUTION, message="time limit reached (or would be) while computing the DP columns")
    options = {"workers": workers, "seed": seed}
    scale = float(sum(c.least_work * n for c, n in zip(columns.per_type, columns.counts) if c.work.size))
    form = Form(instance, columns, formulation == "compact", resolution, scale)
    dp = dp_bound(instance, columns)
    message = f"CP-SAT on the {formulation} model, resolution 1/{resolution} of each limit"
    trouble = numeric_trouble(form)
    if trouble is not None:
        return SolveResult("cpsat", Status.ERROR, message=f"{message}: {trouble}")
    if instance.objective.serves_all:
        reason = explain_infeasible(instance, columns)
        if reason is not None:
            return SolveResult("cpsat", Status.INFEASIBLE, message=reason, bound=float("inf"))
    try:
        if instance.objective.serves_all:
            found, bound, optimal = _min_work(form, deadline, options)
            info: dict[str, Any] = {}
        else:
            found, bound, optimal, info = _max_admitted(form, deadline, options)
    except TimeLimitReached as stop:
        return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: {stop}")
    if found.x is None or found.a is None:
        if found.status == cp_model.INFEASIBLE:
            built = _build(form, "relaxed", deadline)
            if built is not None and _run(form, *built, deadline, options, None).status == cp_model.INFEASIBLE:  # a relaxation: proof
                return SolveResult("cpsat", Status.INFEASIBLE, message=f"{JOINT_INFEASIBLE} ({message})", bound=float("inf"))
            return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: the safely rounded model is infeasible, the relaxed one is not")
        return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: no solution within the time limit")
    return finish(instance, "cpsat", found.x, found.a, optimal, instance.objective.tightest(bound, dp), message, info)
