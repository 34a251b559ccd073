"""F4: F2 (and F3) with integer coefficients for OR-Tools CP-SAT.

:func:`build` has the same variables as F2 (``x[r, b]``, ``a[r]``, ``u[r, b]``,
``d[r, b]``, ``cu[r]``, ``cd[r]``, Booleans named as in F2); a rejected request's limits
are switched off by the enforcement literal ``a[r]`` instead of a big-M.
:func:`build_columns` is F3 over the DP's columns, aggregated over identical requests.

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

from splitllm.deadline import check, requests
from splitllm.formulations.column import Columns
from splitllm.formulations.request_rows import LinearRow, request_rows
from splitllm.formulations.units import capacity_scale
from splitllm.instance import Instance
from splitllm.resources import COUPLED
from splitllm.tolerances import OPTIMAL_GAP

RESOLUTION = 10**6
Rounding = Literal["safe", "relaxed"]
Handles = dict[str, Any]


def _round(values: np.ndarray | float, quantum: float, up: bool) -> np.ndarray:
    scaled = np.asarray(values, dtype=float) / quantum
    return (np.ceil(scaled) if up else np.floor(scaled)).astype(np.int64)


def _variables(model: cp_model.CpModel, instance: Instance, deadline: float | None = None) -> Handles:
    R, B = instance.n_requests, instance.n_blocks
    h: Handles = {
        "x": {(r, b): model.NewBoolVar(f"x_r{r}_b{b}") for r in requests(R, deadline) for b in range(B)},
        "a": {r: model.NewBoolVar(f"a_r{r}") for r in requests(R, deadline)},
        "u": {(r, b): model.NewBoolVar(f"u_r{r}_b{b}") for r in requests(R, deadline) for b in range(1, B)},
        "d": {(r, b): model.NewBoolVar(f"d_r{r}_b{b}") for r in requests(R, deadline) for b in range(1, B)},
        "cu": {r: model.NewBoolVar(f"cu_r{r}") for r in requests(R, deadline)},
        "cd": {r: model.NewBoolVar(f"cd_r{r}") for r in requests(R, deadline)},
    }
    for r in requests(R, deadline):  # as long as creating the variables: checked too
        x = [h["x"][r, b] for b in range(B)]
        for b in range(1, B):
            model.Add(h["u"][r, b] >= x[b] - x[b - 1])
            model.Add(h["d"][r, b] >= x[b - 1] - x[b])
        model.Add(h["cu"][r] >= x[0] - x[-1])
        model.Add(h["cd"][r] >= x[-1] - x[0])
        if instance.objective.serves_all:
            model.Add(h["a"][r] == 1)
        else:
            for v in x:
                model.AddImplication(v, h["a"][r])
    return h


def limit_row(model: cp_model.CpModel, h: Handles, r: int, row: LinearRow, up: bool, resolution: int, enforce: bool) -> None:
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


def _capacity_row(model: cp_model.CpModel, terms: list[tuple[Any, float]], cap: float, up: bool, resolution: int) -> None:
    """``sum coef * var <= cap`` in quanta of ``cap / resolution`` (no row when ``cap`` is inf)."""
    if math.isfinite(cap):
        q = capacity_scale(cap) / resolution
        coef = _round(np.array([c for _, c in terms], dtype=float), q, up)
        model.Add(sum(int(c) * v for (v, _), c in zip(terms, coef) if c) <= int(_round(cap, q, not up)))


def _objective(
    model: cp_model.CpModel,
    h: Handles,
    instance: Instance,
    work_terms: list[tuple[Any, float]],
    weight_terms: list[tuple[Any, float]],
    n_placements: int,
    work_scale: float | None,
    up: bool,
    resolution: int,
) -> None:
    """Integer work and weight expressions (``h["work"]``, ``h["weight"]``) and the objective.

    The work quantum keeps the rounding of ``n_placements`` terms of one solution under
    ``OPTIMAL_GAP / 10`` of ``work_scale`` (see the module docstring; when it is not
    positive, the all-server work of every request, or 1 s).
    """
    scale = work_scale if work_scale and work_scale > 0 else float(instance.arrays.work.sum()) or 1.0
    wq = OPTIMAL_GAP / 10 * scale / max(1, n_placements)
    seconds = np.array([c for _, c in work_terms], dtype=float)
    wcoef = np.rint(seconds / wq).astype(np.int64) if up else _round(seconds, wq, False)
    h["work"] = sum(int(c) * v for (v, _), c in zip(work_terms, wcoef) if c)
    h["work_quantum"] = wq
    weights = np.array([w for _, w in weight_terms], dtype=float)
    integral = bool(np.all(weights == np.round(weights)))
    gq = 1.0 if integral or not weights.size else float(weights.max()) / resolution
    gcoef = weights.astype(np.int64) if integral else (np.rint(weights / gq) if up else np.ceil(weights / gq)).astype(np.int64)
    h["weight"] = sum(int(c) * v for (v, _), c in zip(weight_terms, gcoef))
    h["weight_quantum"] = gq
    if instance.objective.maximize:
        model.Maximize(h["weight"])
    else:
        model.Minimize(h["work"])


def build(
    instance: Instance,
    rounding: Rounding = "safe",
    resolution: int = RESOLUTION,
    work_scale: float | None = None,
    deadline: float | None = None,
) -> tuple[cp_model.CpModel, Handles]:
    """The F4 model and handles; ``work_scale`` (seconds) sets the objective's quantum.

    Past ``deadline`` (checked between requests) it raises
    :class:`splitllm.deadline.TimeLimitReached`.
    """
    a = instance.arrays
    up = rounding == "safe"
    model = cp_model.CpModel()
    h = _variables(model, instance, deadline)
    maximize = instance.objective.maximize
    for r in range(instance.n_requests):
        check(deadline, "building the model")
        for row in request_rows(a, r):
            limit_row(model, h, r, row, up, resolution, enforce=maximize)
    for res in COUPLED:
        matrix = a.usage(res)
        _capacity_row(model, [(v, float(matrix[r, b])) for (r, b), v in h["x"].items()], float(a.limit(res)), up, resolution)
    work_terms = [(v, float(a.work[r, b])) for (r, b), v in h["x"].items()]
    weight_terms = [(h["a"][r], float(a.weight[r])) for r in range(instance.n_requests)]
    _objective(model, h, instance, work_terms, weight_terms, a.work.size, work_scale, up, resolution)
    return model, h


def build_columns(
    instance: Instance,
    columns: Columns,
    rounding: Rounding = "safe",
    resolution: int = RESOLUTION,
    work_scale: float | None = None,
    deadline: float | None = None,
) -> tuple[cp_model.CpModel, Handles]:
    """F3 with integer coefficients: per request type ``t`` (identical requests, see
    :func:`splitllm.solvers.columns.dp_columns`) an integer ``y[t, k]`` (``y_t{t}_k{k}``)
    counting its requests on column ``k`` and ``a[t]`` (``a_t{t}``) counting admitted ones.

    The columns meet every request's own limits already, so only the coupling rows are
    rounded (as in :func:`build`).

    >>> from splitllm.instance import load_instance, example_path
    >>> from splitllm.solvers.columns import dp_columns
    >>> inst = load_instance(example_path("tiny"))
    >>> model, h = build_columns(inst, dp_columns(inst), work_scale=0.4)
    >>> solver = cp_model.CpSolver()
    >>> solver.Solve(model) == cp_model.OPTIMAL, round(solver.ObjectiveValue() * h["work_quantum"], 6)
    (True, 0.4)
    """
    a = instance.arrays
    up = rounding == "safe"
    maximize = instance.objective.maximize
    model = cp_model.CpModel()
    h: Handles = {"y": {}, "a": {}, "columns": columns}
    terms: dict[str, list[tuple[Any, float]]] = {res.key: [] for res in COUPLED}
    terms["weight"] = []
    for t, n in enumerate(int(n) for n in columns.counts):
        check(deadline, "building the model")
        cols = columns.per_type[t]
        h["a"][t] = model.NewIntVar(0 if maximize else n, n, f"a_t{t}")
        y = [model.NewIntVar(0, n, f"y_t{t}_k{k}") for k in range(len(cols.work))]
        h["y"].update({(t, k): v for k, v in enumerate(y)})
        model.Add(sum(y) == h["a"][t])
        for res in COUPLED:
            terms[res.key] += list(zip(y, map(float, cols.usage[res.key])))
        terms["weight"].append((h["a"][t], float(a.weight[columns.representative[t]])))
    for res in COUPLED:
        _capacity_row(model, terms[res.key], float(a.limit(res)), up, resolution)
    _objective(model, h, instance, terms["work"], terms["weight"], instance.n_requests, work_scale, up, resolution)
    return model, h
