"""F2: the compact MILP over all requests, as a PuLP problem.

Variables (names survive MPS/LP export: letters, digits and ``_`` only):

- ``x[r, b]`` binary ``x_r{r}_b{b}``: block ``b`` of request ``r`` on the server;
- ``a[r]`` binary ``a_r{r}``: request ``r`` admitted (fixed to 1 under ``min_server_work``);
- ``u[r, b]``, ``d[r, b]`` in [0, 1]: the chain crosses up / down between ``b-1`` and ``b``;
- ``cu[r]``, ``cd[r]`` in [0, 1]: the decode cycle head -> embed crosses up / down.

Rows: the request's limits (:mod:`splitllm.formulations.request_rows`), each divided by
its limit and, under ``max_admitted``, relaxed by the tight big-M ``max(0, all-client
value - limit)`` when ``a[r] = 0``, with ``x[r, b] <= a[r]`` so rejected requests use no
resources; the coupling rows ``work`` and ``kv``, divided by their capacities. The
objective is server work in units of :func:`splitllm.formulations.units.work_unit`
(``min_server_work``) or admitted weight (``max_admitted``, phase 1 of the lexicographic
pair; :func:`splitllm.solvers.lexicographic.solve_lexicographic` does phase 2).

``handles`` holds the variable dicts plus ``"work"`` (server work in work units),
``"weight"`` (admitted weight) and ``"work_unit"`` (seconds per work unit).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> problem, h = build(inst)
>>> sorted(h["x"])[:2], h["x"][0, 1].name
([(0, 0), (0, 1)], 'x_r0_b1')
>>> len(problem.constraints)  # 3 + 2 limits, 2 x 4 crossing rows, 2 x 2 cycle rows
17
"""

from __future__ import annotations

from typing import Any

import pulp

from splitllm.deadline import check, requests
from splitllm.formulations.request_rows import LinearRow, request_rows
from splitllm.formulations.units import capacity_scale, work_unit
from splitllm.instance import Instance
from splitllm.resources import COUPLED

Handles = dict[str, Any]


def _variables(instance: Instance, problem: pulp.LpProblem, deadline: float | None = None) -> Handles:
    n_req, n_blk = instance.n_requests, instance.n_blocks
    fixed = 1 if instance.objective.serves_all else None
    h: Handles = {
        "x": {(r, b): pulp.LpVariable(f"x_r{r}_b{b}", cat=pulp.LpBinary) for r in requests(n_req, deadline) for b in range(n_blk)},
        # integer in [0, 1] or [1, 1]: PuLP's LpBinary would reset a fixed lower bound
        "a": {r: pulp.LpVariable(f"a_r{r}", lowBound=fixed or 0, upBound=1, cat=pulp.LpInteger) for r in requests(n_req, deadline)},
        "u": {(r, b): pulp.LpVariable(f"u_r{r}_b{b}", 0, 1) for r in requests(n_req, deadline) for b in range(1, n_blk)},
        "d": {(r, b): pulp.LpVariable(f"d_r{r}_b{b}", 0, 1) for r in requests(n_req, deadline) for b in range(1, n_blk)},
        "cu": {r: pulp.LpVariable(f"cu_r{r}", 0, 1) for r in requests(n_req, deadline)},
        "cd": {r: pulp.LpVariable(f"cd_r{r}", 0, 1) for r in requests(n_req, deadline)},
    }
    return h


def _crossings(problem: pulp.LpProblem, h: Handles, r: int, n_blk: int) -> None:
    x = h["x"]
    for b in range(1, n_blk):
        problem += h["u"][r, b] >= x[r, b] - x[r, b - 1], f"up_r{r}_b{b}"
        problem += h["d"][r, b] >= x[r, b - 1] - x[r, b], f"down_r{r}_b{b}"
    if n_blk > 1:
        problem += h["cu"][r] >= x[r, 0] - x[r, n_blk - 1], f"cycle_up_r{r}"
        problem += h["cd"][r] >= x[r, n_blk - 1] - x[r, 0], f"cycle_down_r{r}"


def limit_row(problem: pulp.LpProblem, h: Handles, r: int, row: LinearRow, relax: bool) -> None:
    """``row`` divided by its scale; relaxed by its big-M when ``a[r] = 0`` if ``relax``."""
    s = row.scale
    n_blk = len(row.x_coef)
    terms = [(h["x"][r, b], c / s) for b, c in enumerate(row.x_coef) if c != 0]
    terms += [(h["u"][r, b], row.u_coef / s) for b in range(1, n_blk) if row.u_coef]
    terms += [(h["d"][r, b], row.d_coef / s) for b in range(1, n_blk) if row.d_coef]
    terms += [(h["cu"][r], row.cu_coef / s)] if row.cu_coef else []
    terms += [(h["cd"][r], row.cd_coef / s)] if row.cd_coef else []
    rhs = (row.limit - row.const) / s
    if relax and row.big_m > 0:
        terms.append((h["a"][r], row.big_m / s))
        rhs += row.big_m / s
    problem += pulp.LpAffineExpression(terms) <= rhs, f"{row.name}_r{r}"


def _coupling(problem: pulp.LpProblem, instance: Instance, h: Handles) -> None:
    a = instance.arrays
    for res in COUPLED:
        cap, matrix = float(a.limit(res)), a.usage(res)
        if cap == float("inf"):
            continue
        s = capacity_scale(cap)
        expr = pulp.LpAffineExpression([(v, matrix[r, b] / s) for (r, b), v in h["x"].items() if matrix[r, b] != 0])
        problem += expr <= cap / s, f"{res.key}_capacity"


def build(instance: Instance, deadline: float | None = None) -> tuple[pulp.LpProblem, Handles]:
    """The F2 model of ``instance`` and its handles (see the module docstring).

    Past ``deadline`` (a :func:`time.perf_counter` instant, checked between requests) it
    raises :class:`splitllm.deadline.TimeLimitReached`.
    """
    a = instance.arrays
    maximize = instance.objective.maximize
    problem = pulp.LpProblem(f"F2_{instance.name or 'instance'}".replace("-", "_"), pulp.LpMaximize if maximize else pulp.LpMinimize)
    h = _variables(instance, problem, deadline)
    unit = work_unit(a)
    h["work_unit"] = unit
    h["work"] = pulp.LpAffineExpression([(v, a.work[r, b] / unit) for (r, b), v in h["x"].items() if a.work[r, b] != 0])
    h["weight"] = pulp.LpAffineExpression([(h["a"][r], float(a.weight[r])) for r in range(instance.n_requests)])
    for r in range(instance.n_requests):
        check(deadline, "building the model")
        _crossings(problem, h, r, instance.n_blocks)
        for row in request_rows(a, r):
            limit_row(problem, h, r, row, relax=maximize)
        if maximize:
            for b in range(instance.n_blocks):
                problem += h["x"][r, b] <= h["a"][r], f"admit_r{r}_b{b}"
    _coupling(problem, instance, h)
    problem.setObjective(h["weight"] if maximize else h["work"])
    return problem, h
