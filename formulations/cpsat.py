"""F4: F2 with integer coefficients for OR-Tools CP-SAT (DESIGN §4).

Same variables as F2 (``x[r, b]``, ``a[r]``, ``u[r, b]``, ``d[r, b]``, ``cu[r]``, ``cd[r]``,
Booleans named as in F2); a rejected request's limits are switched off by the
enforcement literal ``a[r]`` instead of a big-M.

**Rounding.** Each row is measured in quanta of ``scale / resolution`` (the row's limit or
capacity over ``resolution``, default :data:`RESOLUTION` = 10**6 parts, i.e. 1 ppm of
each limit). With ``rounding="safe"`` coefficients are rounded *up* and right-hand sides
*down*, so every CP-SAT-feasible point is truly feasible; with ``rounding="relaxed"`` the
other way, so every truly feasible point is CP-SAT-feasible and its optimum bounds the
true one. The objective's quantum is derived so that its rounding moves any placement's
work by less than ``OPTIMAL_GAP / 10`` of ``work_scale`` (the DP's least total work): round
to nearest in ``safe``, down in ``relaxed`` (so the relaxed bound stays valid). Weights
are used as they are when integral, else in quanta of ``max weight / resolution``
(``relaxed`` rounds them up). ``handles`` has ``"work"`` / ``"weight"`` (integer
expressions) and ``"work_quantum"`` / ``"weight_quantum"`` (seconds / weight per unit).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from ortools.sat.python import cp_model
>>> inst = load_instance(example_path("tiny"))
>>> model, h = build(inst, work_scale=0.4)
>>> solver = cp_model.CpSolver()
>>> solver.Solve(model) == cp_model.OPTIMAL, round(solver.ObjectiveValue() * h["work_quantum"], 6)
(True, 0.4)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from ortools.sat.python import cp_model

from splitllm.formulations.request_rows import LinearRow, request_rows
from splitllm.formulations.units import capacity_scale
from splitllm.instance import Instance
from splitllm.solvers.tolerances import OPTIMAL_GAP

RESOLUTION = 10**6
Rounding = Literal["safe", "relaxed"]
Handles = dict[str, Any]


def _round(values: np.ndarray | float, quantum: float, up: bool) -> np.ndarray:
    scaled = np.asarray(values, dtype=float) / quantum
    return (np.ceil(scaled) if up else np.floor(scaled)).astype(np.int64)


def _variables(model: cp_model.CpModel, instance: Instance) -> Handles:
    R, B = instance.n_requests, instance.n_blocks
    h: Handles = {
        "x": {(r, b): model.NewBoolVar(f"x_r{r}_b{b}") for r in range(R) for b in range(B)},
        "a": {r: model.NewBoolVar(f"a_r{r}") for r in range(R)},
        "u": {(r, b): model.NewBoolVar(f"u_r{r}_b{b}") for r in range(R) for b in range(1, B)},
        "d": {(r, b): model.NewBoolVar(f"d_r{r}_b{b}") for r in range(R) for b in range(1, B)},
        "cu": {r: model.NewBoolVar(f"cu_r{r}") for r in range(R)},
        "cd": {r: model.NewBoolVar(f"cd_r{r}") for r in range(R)},
    }
    for r in range(R):
        x = [h["x"][r, b] for b in range(B)]
        for b in range(1, B):
            model.Add(h["u"][r, b] >= x[b] - x[b - 1])
            model.Add(h["d"][r, b] >= x[b - 1] - x[b])
        model.Add(h["cu"][r] >= x[0] - x[-1])
        model.Add(h["cd"][r] >= x[-1] - x[0])
        if instance.objective == "min_server_work":
            model.Add(h["a"][r] == 1)
        else:
            for v in x:
                model.AddImplication(v, h["a"][r])
    return h


def _limit_row(model: cp_model.CpModel, h: Handles, r: int, row: LinearRow, up: bool, resolution: int, enforce: bool) -> None:
    q = row.scale / resolution
    B = len(row.x_coef)
    coef = _round(row.x_coef, q, up)
    cross = _round(np.array([row.u_coef, row.d_coef, row.cu_coef, row.cd_coef]), q, up)
    expr = sum(int(c) * h["x"][r, b] for b, c in enumerate(coef) if c)
    expr += sum(int(cross[0]) * h["u"][r, b] + int(cross[1]) * h["d"][r, b] for b in range(1, B))
    expr += int(cross[2]) * h["cu"][r] + int(cross[3]) * h["cd"][r]
    rhs = int(_round(row.limit - row.const, q, not up))
    constraint = model.Add(expr <= rhs)
    if enforce:
        constraint.OnlyEnforceIf(h["a"][r])


def build(
    instance: Instance, rounding: Rounding = "safe", resolution: int = RESOLUTION, work_scale: float | None = None
) -> tuple[cp_model.CpModel, Handles]:
    """The F4 model and handles; ``work_scale`` (seconds) sets the objective's quantum."""
    a = instance.arrays
    up = rounding == "safe"
    model = cp_model.CpModel()
    h = _variables(model, instance)
    maximize = instance.objective == "max_admitted"
    for r in range(instance.n_requests):
        for row in request_rows(a, r):
            _limit_row(model, h, r, row, up, resolution, enforce=maximize)
    for matrix, cap in ((a.work, a.work_capacity), (a.kv, a.kv_capacity)):
        if math.isfinite(cap):
            q = capacity_scale(cap) / resolution
            coef = _round(matrix, q, up)
            model.Add(sum(int(coef[r, b]) * v for (r, b), v in h["x"].items() if coef[r, b]) <= int(_round(cap, q, not up)))
    scale = work_scale if work_scale and work_scale > 0 else float(a.work.sum()) or 1.0
    wq = OPTIMAL_GAP / 10 * scale / max(1, a.work.size)
    wcoef = _round(a.work, wq, False) if not up else np.rint(a.work / wq).astype(np.int64)
    h["work"] = sum(int(wcoef[r, b]) * v for (r, b), v in h["x"].items() if wcoef[r, b])
    h["work_quantum"] = wq
    integral = bool(np.all(a.weight == np.round(a.weight)))
    gq = 1.0 if integral else float(a.weight.max()) / resolution
    gcoef = a.weight.astype(np.int64) if integral else (np.rint(a.weight / gq) if up else np.ceil(a.weight / gq)).astype(np.int64)
    h["weight"] = sum(int(gcoef[r]) * h["a"][r] for r in range(instance.n_requests))
    h["weight_quantum"] = gq
    if maximize:
        model.Maximize(h["weight"])
    else:
        model.Minimize(h["work"])
    return model, h
