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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from splitllm.deadline import TimeLimitReached, deadline_in, grace_s, run_forked
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
    it found, and the values of its decision handles, each kind in its handles' order
    (to hint the next model built the same way)."""

    status: int
    bound: float
    x: np.ndarray | None
    a: np.ndarray | None
    values: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What the search found (in the child process that runs it, see :func:`solve`): the
    placements and admitted flags, the bound, whether optimality is proven, extra info,
    and why it has nothing (``stopped``) or whether it proved infeasibility."""

    x: np.ndarray | None = None
    a: np.ndarray | None = None
    bound: float | None = None
    optimal: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""
    infeasible: bool = False


#: Called with each improving (placements, admitted) of a truly feasible (safe) model.
OnSolution = Callable[[np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class Form:
    """The F4 model a run uses: the compact one (over ``x``) or the column one (over the
    DP columns' counts ``y``)."""

    instance: Instance
    columns: Columns
    compact: bool
    resolution: int
    scale: float

    #: Every model built, kept until the form goes: freeing a model of millions of
    #: variables takes seconds, which a solve near its deadline does not have.
    built: list[Any] = field(default_factory=list)

    def build(self, rounding: f4.Rounding, deadline: float | None) -> tuple[cp_model.CpModel, dict[str, Any]]:
        """The model (raises :class:`~splitllm.deadline.TimeLimitReached` past ``deadline``)."""
        if self.compact:
            model = f4.build(self.instance, rounding, self.resolution, self.scale, deadline)
        else:
            model = f4.build_columns(self.instance, self.columns, rounding, self.resolution, self.scale, deadline)
        self.built.append(model)
        return model

    def decision_handles(self) -> tuple[str, ...]:
        return ("x", "a") if self.compact else ("y", "a")

    def indices(self, h: dict[str, Any]) -> dict[str, np.ndarray]:
        """The model's variable index of each decision handle, each kind in its handles' order."""
        return {kind: np.fromiter((v.index for v in h[kind].values()), dtype=np.int64, count=len(h[kind]))
                for kind in self.decision_handles()}

    def placements(self, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        inst = self.instance
        if self.compact:  # x's handles are (r, b) in row-major order, a's r in order
            return values["x"].reshape(inst.n_requests, inst.n_blocks).astype(bool), values["a"].astype(bool)
        sizes = [len(c.work) for c in self.columns.per_type]  # y's handles: (t, k), type by type
        counts = [part.astype(np.int64) for part in np.split(values["y"], np.cumsum(sizes)[:-1])]
        return expand(self.columns, picks_from_counts(self.columns, counts), inst.n_blocks)


class _Incumbents(cp_model.CpSolverSolutionCallback):
    """Hands each improving solution's placements to ``on_solution`` as CP-SAT finds it."""

    def __init__(self, form: Form, index: dict[str, np.ndarray], on_solution: OnSolution) -> None:
        super().__init__()
        self.form, self.index, self.on_solution = form, index, on_solution

    def on_solution_callback(self) -> None:
        solution = np.asarray(self.response_proto.solution, dtype=np.int64)
        self.on_solution(*self.form.placements({kind: solution[idx] for kind, idx in self.index.items()}))


def _run(form: Form, model: cp_model.CpModel, h: dict[str, Any], deadline: float | None, options: dict[str, Any], hint: Run | None,
         on_solution: OnSolution | None = None) -> Run:
    index = form.indices(h)
    if hint is not None and hint.values:
        model.ClearHints()
        for kind, idx in index.items():  # straight into the proto: one AddHint per variable takes seconds
            model.Proto().solution_hint.vars.extend(idx.tolist())
            model.Proto().solution_hint.values.extend(hint.values[kind].tolist())
    left = remaining(deadline)
    if left is not None and left <= 0:
        return Run(cp_model.UNKNOWN, float("nan"), None, None)
    solver = _solver(options, left)
    status = solver.Solve(model, _Incumbents(form, index, on_solution) if on_solution is not None else None)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Run(status, float("nan"), None, None)
    solution = np.asarray(solver.ResponseProto().solution, dtype=np.int64)
    values = {kind: solution[idx] for kind, idx in index.items()}
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


def _min_work(form: Form, deadline: float | None, options: dict[str, Any], report: Callable[[Outcome], None]) -> tuple[Run, float | None, bool]:
    safe, hs = form.build("safe", deadline)
    found = _run(form, safe, hs, deadline, options, None, lambda x, a: report(Outcome(x, a)))
    built = _build(form, "relaxed", deadline) if found.x is not None else None
    if built is None:
        return found, None, False
    relaxed, hr = built
    proof = _run(form, relaxed, hr, deadline, options, found)
    bound = proof.bound * hr["work_quantum"] if proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    return found, bound, found.status == cp_model.OPTIMAL


def _max_admitted(form: Form, deadline: float | None, options: dict[str, Any],
                  report: Callable[[Outcome], None]) -> tuple[Run, float | None, bool, dict[str, Any]]:
    instance = form.instance
    weight = instance.arrays.weight
    safe, hs = form.build("safe", deadline)
    first = _run(form, safe, hs, deadline, options, None, lambda x, a: report(Outcome(x, a)))
    if first.x is None:
        return first, None, False, {}
    built = _build(form, "relaxed", deadline)
    proof = _run(form, *built, deadline, options, first) if built is not None else Run(cp_model.UNKNOWN, float("nan"), None, None)
    weight_bound = proof.bound * built[1]["weight_quantum"] if built and proof.status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    report(Outcome(first.x, first.a, weight_bound))
    achieved = float(weight[first.a].sum())  # type: ignore[index]
    safe.Add(hs["weight"] >= int(round(sum(int(round(w / hs["weight_quantum"])) for w in weight[first.a]))))  # type: ignore[index]
    safe.Minimize(hs["work"])
    second = _run(form, safe, hs, deadline, options, first, lambda x, a: report(Outcome(x, a, weight_bound)))
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
    forked = run_forked(partial(_search, form, deadline, options), deadline, grace_s(time_limit))
    outcome: Outcome = forked.value if forked.value is not None else Outcome(stopped="time limit reached")
    if not forked.finished:  # stopped at the deadline, or killed: its last incumbent, never proven
        stopped = forked.stopped or f"killed {grace_s(time_limit):.3g} s after the time limit"
        outcome = replace(outcome, optimal=False, stopped=stopped + ("; its last improving solution kept" if outcome.x is not None else ""))
    if outcome.infeasible:
        return SolveResult("cpsat", Status.INFEASIBLE, message=f"{JOINT_INFEASIBLE} ({message})", bound=float("inf"))
    if outcome.x is None or outcome.a is None:
        return SolveResult("cpsat", Status.NO_SOLUTION, message=f"{message}: {outcome.stopped}")
    if outcome.stopped:
        message = f"{message}; {outcome.stopped}"
    return finish(instance, "cpsat", outcome.x, outcome.a, outcome.optimal, instance.objective.tightest(outcome.bound, dp), message, outcome.info)


def _search(form: Form, deadline: float | None, options: dict[str, Any], report: Callable[[Outcome], None]) -> Outcome:
    """Both phases (or the one of ``min_server_work``) and the proofs; each improving safe
    solution is reported as found, so a run killed at the deadline keeps its incumbent."""
    instance = form.instance
    try:
        if instance.objective.serves_all:
            found, bound, optimal = _min_work(form, deadline, options, report)
            info: dict[str, Any] = {}
        else:
            found, bound, optimal, info = _max_admitted(form, deadline, options, report)
    except TimeLimitReached as stop:
        return Outcome(stopped=str(stop))
    if found.x is not None and found.a is not None:
        return Outcome(found.x, found.a, bound, optimal, info)
    if found.status == cp_model.INFEASIBLE:
        built = _build(form, "relaxed", deadline)
        if built is not None and _run(form, *built, deadline, options, None).status == cp_model.INFEASIBLE:  # a relaxation: proof
            return Outcome(infeasible=True)
        return Outcome(stopped="the safely rounded model is infeasible, the relaxed one is not")
    return Outcome(stopped="no solution within the time limit")
