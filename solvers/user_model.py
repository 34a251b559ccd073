"""Solving a model the caller built and extended: one function for F2, F3 and F4.

A scheduler builds a formulation (:func:`splitllm.formulations.compact.build`,
:func:`splitllm.formulations.column.build`, :func:`splitllm.formulations.cpsat.build` or
:func:`~splitllm.formulations.cpsat.build_columns`), adds rows of its own, and calls
:func:`solve_model`, which

- solves the instance's objective as every solver does: ``min_server_work`` in one solve;
  ``max_admitted`` in two phases (maximise admitted weight, then keep that weight and
  minimise server work), never with a weighted sum; the caller's model comes back as it
  went in (PuLP: phase 2's row is removed; CP-SAT: phase 2 runs on a copy);
- re-checks the answer: the independent evaluator (:func:`splitllm.registry.verify`)
  re-computes every SLO, client memory and server capacity and the objective from the
  placements; it cannot see the caller's rows, so those are re-checked here at the
  solution's variable values: every row of a PuLP model (the caller's included, in the
  model's scaled units, within :data:`ROW_TOL`), and every row a caller added to a CP-SAT
  model through :func:`add_row` (in its own float coefficients). Rows added to a CP-SAT
  model by hand (integers only; OR-Tools refuses float coefficients) are not re-checked;
- reports ``optimal`` for *the model as given*: with extra rows that is a restriction of
  the placement problem, and for CP-SAT the safely rounded model (coefficients up,
  right-hand sides down), which may exclude placements within 1 ppm of a limit. The
  bound is the backend's bound on that model, in seconds (or weight).

:func:`add_row` writes ``sum coef * var <= rhs`` into either kind of model: divided by
``|rhs|`` in a PuLP model (the units of :mod:`splitllm.formulations.units`), or rounded
safely into integers for CP-SAT (coefficients up, ``rhs`` down, in quanta of
``|rhs| / resolution``), so every CP-SAT-feasible point meets the row as written. The
rounding is safe because every handle (``x``, ``a``, ``u``, ``d``, ``cu``, ``cd``, ``y``)
is ``>= 0``; a CP-SAT term that is not a variable with a lower bound ``>= 0`` is refused.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.formulations import compact
>>> inst = load_instance(example_path("tiny"))
>>> model, h = compact.build(inst)
>>> add_row(model, h, [(h["x"][0, 0], -1.0)], -1)  # x[0, 0] >= 1: request 0 embeds on the server
>>> result = solve_model(inst, model, h)
>>> result.status.value, result.placements.astype(int).tolist(), round(result.objective, 6)
('optimal', [[1, 1, 0], [1, 1, 0]], 0.412)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pulp
from numpy.typing import NDArray
from ortools.sat.python import cp_model

from splitllm.errors import SplitLLMError
from splitllm.formulations.column import Columns, expand, picks_from_counts
from splitllm.formulations.cpsat import RESOLUTION
from splitllm.instance import Instance
from splitllm.options import check_time_limit
from splitllm.registry import verify
from splitllm.result import SolveResult, Status
from splitllm.solvers.certify import finish, remaining
from splitllm.solvers.cpsat import OPTIONS as CPSAT_OPTIONS
from splitllm.solvers.lexicographic import compact_solution, solve_lexicographic
from splitllm.solvers.milp import PULP_OPTIONS

#: Absolute tolerance of a row re-check, in the row's own units (scaled rows: about 1).
ROW_TOL = 1e-6
USER_ROWS = "user_rows"
Model = pulp.LpProblem | cp_model.CpModel
Terms = Iterable[tuple[Any, float]]


def add_row(model: Model, handles: dict[str, Any], terms: Terms, rhs: float, name: str | None = None, resolution: int = RESOLUTION) -> None:
    """Add ``sum coef * var <= rhs`` to ``model`` (PuLP: scaled; CP-SAT: safely rounded).

    ``terms`` are ``(variable or PuLP expression, coefficient)`` pairs; write ``>=`` rows
    negated. The row is remembered in ``handles["user_rows"]`` so that :func:`solve_model`
    re-checks it at the solution.
    """
    terms = [(v, float(c)) for v, c in terms]
    if not math.isfinite(rhs) or not all(math.isfinite(c) for _, c in terms):
        raise SplitLLMError(f"add_row: coefficients and rhs must be finite, got rhs {rhs!r}")
    rows = handles.setdefault(USER_ROWS, [])
    name = name or f"user_row_{len(rows)}"
    scale = abs(rhs) or max((abs(c) for _, c in terms), default=1.0) or 1.0
    if isinstance(model, pulp.LpProblem):
        model += pulp.lpSum(c / scale * v for v, c in terms) <= rhs / scale, name
    elif isinstance(model, cp_model.CpModel):
        _add_rounded(model, terms, rhs, scale / resolution)
    else:
        raise SplitLLMError(f"add_row: expected a PuLP or CP-SAT model, got {type(model).__name__}")
    rows.append((name, terms, float(rhs)))


def _add_rounded(model: cp_model.CpModel, terms: list[tuple[Any, float]], rhs: float, quantum: float) -> None:
    """``sum ceil(c / q) v <= floor(rhs / q)``: implies the float row when every ``v >= 0``."""
    for i, (var, _) in enumerate(terms):
        if not isinstance(var, cp_model.IntVar) or model.Proto().variables[var.Index()].domain[0] < 0:
            raise SplitLLMError(f"add_row: term {i}: safe rounding needs a CP-SAT variable >= 0, got {var!r}")
    model.Add(sum(math.ceil(c / quantum) * v for v, c in terms) <= math.floor(rhs / quantum))


def solve_model(
    instance: Instance,
    model: Model,
    handles: dict[str, Any],
    *,
    backend: str = "highs",
    time_limit: float | None = None,
    threads: int | None = None,
    workers: int = 2,
    seed: int = 0,
) -> SolveResult:
    """Solve a built (and possibly extended) F2, F3 or F4 model of ``instance``.

    PuLP models use ``backend`` (``highs`` or ``cbc``) and ``threads``; CP-SAT models
    ``workers`` and ``seed``. The result is verified by :func:`splitllm.registry.verify`
    and the caller's rows re-checked (see the module docstring for what is and is not
    checked); a violation makes the status ``error``.
    """
    time_limit = check_time_limit(time_limit)
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    if isinstance(model, pulp.LpProblem):
        result = _solve_pulp(instance, model, handles, backend, deadline, threads)
    elif isinstance(model, cp_model.CpModel):
        result = _solve_cpsat(instance, model, handles, deadline, workers, seed)
    else:
        raise SplitLLMError(f"solve_model: expected a PuLP or CP-SAT model, got {type(model).__name__}")
    result.time_s = time.perf_counter() - start
    return verify(instance, result)


def _solve_pulp(instance: Instance, problem: pulp.LpProblem, h: dict[str, Any], backend: str, deadline: float | None, threads: int | None) -> SolveResult:
    by_name = {o.name: o for o in PULP_OPTIONS}
    backend, threads = by_name["backend"].coerce(backend), None if threads is None else by_name["threads"].coerce(threads)
    if h.get("aggregate"):
        raise SplitLLMError("solve_model: an aggregated F3 (aggregate=True) has no per-request variables; build it with aggregate=False")
    name = f"model-{backend}"
    out = solve_lexicographic(instance, problem, h, backend, deadline, compact_solution, threads)
    if out.placements is None or out.admitted is None:
        status = Status.NO_SOLUTION if out.status == Status.FEASIBLE else out.status
        return SolveResult(name, status, message=f"the model as given: {out.message}", info=out.info)
    result = finish(instance, name, out.placements, out.admitted, out.backend_optimal, out.bound, out.message, out.info)
    if result.status.has_solution:
        _refuse(result, _pulp_rows_broken(instance, problem, h, out.placements, out.admitted))
    return result


def _pulp_rows_broken(instance: Instance, problem: pulp.LpProblem, h: dict[str, Any], x: NDArray[np.bool_], a: NDArray[np.bool_]) -> list[str]:
    """Every row of ``problem`` at the variable values left on it (those of the answer)."""
    now_x, now_a = compact_solution(instance, h)
    if not (np.array_equal(now_x[a], x[a]) and np.array_equal(now_a, a)):
        return ["the variable values left on the model are not those of the answer: rows not re-checked"]
    return [f"row {name}: {c.value():.3g} over its right-hand side" for name, c in problem.constraints.items() if not c.valid(ROW_TOL)]


def _refuse(result: SolveResult, problems: list[str]) -> None:
    if problems:
        result.status = Status.ERROR
        result.message = "; ".join([result.message, *problems[:5]]).lstrip("; ")


@dataclass
class _Run:
    """One CP-SAT solve: status, objective bound, the values of the decision handles and
    of the integer weight, and how far each :func:`add_row` row is over its right side."""

    status: int
    bound: float
    values: dict[str, dict[Any, int]]
    weight: int = 0
    rows: tuple[float, ...] = ()


def _cp_run(model: cp_model.CpModel, h: dict[str, Any], deadline: float | None, workers: int, seed: int) -> _Run:
    solver = cp_model.CpSolver()
    left = remaining(deadline)
    if left is not None:
        solver.parameters.max_time_in_seconds = max(left, 1e-3)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _Run(status, math.nan, {})
    kinds = ("x", "a") if "x" in h else ("y", "a")
    values = {k: {key: int(solver.Value(v)) for key, v in h[k].items()} for k in kinds}
    rows = tuple(sum(c * solver.Value(v) for v, c in terms) - rhs for _, terms, rhs in h.get(USER_ROWS, []))
    return _Run(status, solver.BestObjectiveBound(), values, int(solver.Value(h["weight"])), rows)


def _cp_solution(instance: Instance, h: dict[str, Any], run: _Run) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    R, B = instance.n_requests, instance.n_blocks
    if "x" in h:
        x = np.array([[run.values["x"][r, b] for b in range(B)] for r in range(R)], dtype=bool).reshape(R, B)
        return x, np.array([run.values["a"][r] for r in range(R)], dtype=bool)
    columns: Columns = h["columns"]
    counts = [np.array([run.values["y"][t, k] for k in range(len(c.work))], dtype=np.int64) for t, c in enumerate(columns.per_type)]
    return expand(columns, picks_from_counts(columns, counts), B)


def _solve_cpsat(instance: Instance, model: cp_model.CpModel, h: dict[str, Any], deadline: float | None, workers: int, seed: int) -> SolveResult:
    by_name = {o.name: o for o in CPSAT_OPTIONS}
    workers, seed = by_name["workers"].coerce(workers), by_name["seed"].coerce(seed)
    # rounding error of one solution's objective: at most half a quantum per placed term
    terms = instance.n_blocks * instance.n_requests if "x" in h else instance.n_requests
    first = _cp_run(model, h, deadline, workers, seed)
    if not first.values:
        status = Status.INFEASIBLE if first.status == cp_model.INFEASIBLE else Status.NO_SOLUTION
        return SolveResult("model-cpsat", status, message=f"CP-SAT on the model as given: {cp_model.CpSolver().StatusName(first.status)}")
    x, a = _cp_solution(instance, h, first)
    best, optimal, info = first, first.status == cp_model.OPTIMAL, {}
    if instance.objective.serves_all:
        bound = max(0.0, (first.bound - terms / 2) * h["work_quantum"])
    else:
        # integral weights are exact (quantum 1); others are rounded to nearest: half a quantum each
        allowance = 0.0 if h["weight_quantum"] == 1.0 else instance.n_requests / 2
        bound = (first.bound + allowance) * h["weight_quantum"]
        second, info = _second_phase(model, h, first, deadline, workers, seed)
        x2, a2 = _cp_solution(instance, h, second) if second.values else (x, a)
        if second.values and instance.arrays.weight[a2].sum() >= instance.arrays.weight[a].sum():  # never give weight back
            best, x, a, optimal = second, x2, a2, optimal and second.status == cp_model.OPTIMAL
            info["work_bound_s"] = max(0.0, (second.bound - terms / 2) * h["work_quantum"])
        else:
            optimal = False
    result = finish(instance, "model-cpsat", x, a, optimal, bound, "CP-SAT on the model as given", info)
    if result.status.has_solution:
        names = [name for name, _, _ in h.get(USER_ROWS, [])]
        _refuse(result, [f"row {n}: {over:.3g} over its right-hand side" for n, over in zip(names, best.rows) if over > ROW_TOL * max(1.0, abs(over))])
    return result


def _second_phase(model: cp_model.CpModel, h: dict[str, Any], first: _Run, deadline: float | None, workers: int, seed: int) -> tuple[_Run, dict[str, Any]]:
    """Keep phase 1's weight (in the model's own integer units), minimise work, on a copy."""
    copy = model.clone()
    copy.Add(h["weight"] >= first.weight)
    copy.Minimize(h["work"])
    second = _cp_run(copy, h, deadline, workers, seed)
    status = "optimal" if second.status == cp_model.OPTIMAL else "not proven optimal"
    return second, {"phase2": status if second.values else "no solution: phase 1's answer kept"}
