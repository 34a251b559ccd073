"""``batch-cpsat``: F5 in CP-SAT (:mod:`splitllm.formulations.batch_cpsat`), two phases.

The safely rounded model gives the answer (phase 1: weight; phase 2: keep it, minimise
``T``); the model rounded the other way gives the bounds: its phase 1 optimum bounds the
weight, and, once that equals the weight found, its phase 2 optimum bounds ``T`` from
below. ``optimal`` only when all four solves are proven, the weights are exact in
decimal quanta (such as ``0.1``) and the true ``T`` is within :data:`~splitllm.tolerances.OPTIMAL_GAP` of that bound (rounding can
leave a gap of up to one time quantum per term; then the status is ``feasible``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from splitllm.deadline import TimeLimitReached, deadline_in
from splitllm.formulations import batch_cpsat as f5c
from splitllm.formulations.batch_data import BatchData
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_certify import certify
from splitllm.solvers.batch_common import COMMON, DEFAULT_TIME_LIMIT_S, batch_data, batch_result, verify
from splitllm.solvers.batch_exact import solve_exact
from splitllm.tolerances import OPTIMAL_GAP

OPTIONS = (
    Option("workers", "integer", 2, "CP-SAT search workers (workers=1 with a fixed seed is reproducible)", low=1),
    Option("seed", "integer", 0, "CP-SAT random seed", low=0, high=2**31 - 1),
    Option("resolution", "integer", f5c.RESOLUTION, "time quanta per least TPOT limit (and byte quanta per limit)", low=1, high=10**9),
    *COMMON,
)


def _solve(model: cp_model.CpModel, deadline: float | None, workers: int, seed: int) -> tuple[cp_model.CpSolver, int]:
    solver = cp_model.CpSolver()
    if deadline is not None:
        solver.parameters.max_time_in_seconds = max(0.001, deadline - time.perf_counter())
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    return solver, solver.Solve(model)


def _phases(data: BatchData, rounding: f5c.Rounding, deadline: float | None, opts: dict[str, Any]) -> dict[str, Any]:
    """Both phases on one rounding: statuses, bounds, and the last placements found."""
    m, h = f5c.build(data, rounding, opts["resolution"], deadline)
    out: dict[str, Any] = {"h": h}
    s1, st1 = _solve(m, deadline, opts["workers"], opts["seed"])
    out["status1"], out["weight_bound"] = st1, s1.BestObjectiveBound() * h["weight_quantum"]
    if st1 not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return out
    out["values"] = _values(data, h, s1)
    w1 = int(round(s1.ObjectiveValue()))
    m.Add(h["weight"] >= w1)
    m.Minimize(h["T"])
    for key in ("x", "a"):
        for k, var in h[key].items():
            m.AddHint(var, s1.Value(var))
    s2, st2 = _solve(m, deadline, opts["workers"], opts["seed"])
    out["status2"] = st2
    if st2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        out["values"] = _values(data, h, s2)
        out["t_bound"] = s2.BestObjectiveBound() * h["time_quantum"]
    return out


def _values(data: BatchData, h: dict[str, Any], s: cp_model.CpSolver) -> tuple[np.ndarray, np.ndarray]:
    R, B = data.n_requests, data.n_blocks
    x = np.array([[bool(s.Value(h["x"][r, b])) for b in range(B)] for r in range(R)])
    return x, np.array([bool(s.Value(h["a"][r])) for r in range(R)])


def solve_cpsat(data: BatchData, time_limit: float | None = None, **opts: Any) -> SolveResult:
    """The safe model's answer, the relaxed model's bounds (module docstring)."""
    name = "batch-cpsat"
    deadline = deadline_in(time_limit)
    try:
        safe = _phases(data, "safe", deadline, opts)
        if "values" not in safe:
            return batch_result(name, Status.NO_SOLUTION, None, None, None, message="CP-SAT found no solution (phase 1)")
        relaxed = _phases(data, "relaxed", deadline, opts)
    except TimeLimitReached as stop:
        return batch_result(name, Status.NO_SOLUTION, None, None, None, message=str(stop))
    x, admitted = safe["values"]
    t = data.iteration_time(x, admitted)
    weight = float(data.instance.arrays.weight[admitted].sum())
    bound = relaxed["weight_bound"] if relaxed["status1"] in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None
    weight_proven = bound is not None and safe["h"]["weight_exact"] and bound <= weight * (1 + OPTIMAL_GAP) + 1e-9
    if weight_proven:  # integer quanta times a decimal quantum may land an ulp below the same sum of weights
        bound = max(bound, weight)
    t_bound = relaxed.get("t_bound") if weight_proven and relaxed.get("status2") == cp_model.OPTIMAL else None
    proven = t_bound is not None and safe.get("status2") == cp_model.OPTIMAL and t <= t_bound * (1 + OPTIMAL_GAP)
    if t_bound is not None:
        t_bound = min(t_bound, t)
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    return batch_result(name, status, x, admitted, t, bound, t_bound, message=f"time quantum {safe['h']['time_quantum']:.3g} s")


@register("batch-cpsat", "F5 throughput placement in CP-SAT, safely rounded (-o workers=N -o seed=S)", requires=("ortools",), exact=True, options=OPTIONS, verifier=verify,
          default_time_limit=DEFAULT_TIME_LIMIT_S)
def solve(instance: Instance, *, time_limit: float | None = None, workers: int = 2, seed: int = 0, resolution: int = f5c.RESOLUTION,
          engine: str = "vllm", ttft: bool = False) -> SolveResult:
    started = time.perf_counter()
    data = batch_data(instance, engine, ttft)
    result = solve_cpsat(data, time_limit, workers=workers, seed=seed, resolution=resolution)
    return certify(data, result, lambda left: solve_exact(data, "highs", left), time_limit, started)
