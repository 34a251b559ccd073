"""F3: the column (extended) MILP over DP columns (DESIGN §4), as a PuLP problem.

A *column* is one SLO- and memory-feasible placement of a request with its server work
and KV. :func:`dp_columns` computes, once per distinct request
(:func:`splitllm.solvers.per_request.unique_requests`), the Pareto-optimal placements in
(work, kv) from the exact label DP, run as one batched pass over up to
:data:`PARETO_BATCH` distinct requests (:func:`splitllm.solvers.dp.pareto_search`).
With no KV capacity only the least-work placement matters (KV then constrains nothing
and work is the objective), so only it is kept. The
column sets are complete Pareto sets, so F3 is exact: any solution can swap each
request's placement for a Pareto column that uses no more work and no more KV.

:func:`build` writes, per request ``r`` and column ``k``, a binary ``z[r, k]``
(``z_r{r}_k{k}``) with ``sum_k z[r, k] = a[r]`` (``a_r{r}``, fixed to 1 under
``min_server_work``), the coupling rows and the objective, all in the units of
:mod:`splitllm.formulations.units`. ``handles["x"][r, b]`` is the expression
``sum_k placement[k, b] z[r, k]``, so rows a scheduler writes over ``x`` work on F2 and
F3 alike. With ``aggregate=True`` identical requests share integer counts
``y[t, k]`` (``y_t{t}_k{k}``, requests of type ``t`` using column ``k``) and
``handles["a"][t]`` counts admitted requests of type ``t``: the master of ``decomp``.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> cols = dp_columns(inst)
>>> [c.work.round(6).tolist() for c in cols.per_type]
[[0.29], [0.11]]
>>> problem, h = build(inst, cols)
>>> sorted(h["z"]), h["z"][0, 0].name
([(0, 0), (1, 0)], 'z_r0_k0')
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pulp
from numpy.typing import NDArray

from splitllm.deadline import check
from splitllm.formulations.units import capacity_scale, work_unit
from splitllm.instance import Instance

Handles = dict[str, Any]


@dataclass(frozen=True)
class TypeColumns:
    """The columns of one distinct request: placements (K x B), work and KV (K)."""

    placements: NDArray[np.bool_]
    work: NDArray[np.float64]
    kv: NDArray[np.float64]

    @property
    def least_work(self) -> float:
        return float(self.work.min()) if self.work.size else math.inf

    @property
    def least_kv(self) -> float:
        return float(self.kv.min()) if self.kv.size else math.inf


@dataclass(frozen=True)
class Columns:
    """Columns per distinct request type; ``type_of[r]`` is request ``r``'s type."""

    per_type: list[TypeColumns]
    representative: NDArray[np.int64]
    type_of: NDArray[np.int64]

    @property
    def counts(self) -> NDArray[np.int64]:
        """How many requests each type has."""
        return np.bincount(self.type_of, minlength=len(self.per_type)).astype(np.int64)

    def of_request(self, r: int) -> TypeColumns:
        return self.per_type[int(self.type_of[r])]


#: Distinct requests per batched Pareto label pass (bounds its memory; the deadline is
#: checked between batches).
PARETO_BATCH = 256


def _pareto_columns(instance: Instance, rows: NDArray[np.int64]) -> list[TypeColumns]:
    from splitllm.solvers.dp import WORK, KV, pareto_search  # solvers import this module

    per_type = []
    for r, search in zip(rows, pareto_search(instance.arrays, rows)):
        labels = sorted(search.pareto, key=lambda lab: (lab.values[WORK], lab.values[KV]))
        per_type.append(_type_columns(instance, r, [lab.placement for lab in labels]))
    return per_type


def _least_work_columns(instance: Instance, rows: NDArray[np.int64]) -> list[TypeColumns]:
    from splitllm.solvers.dp import solve_request

    outcomes = (solve_request(instance.arrays, int(r)) for r in rows)
    return [_type_columns(instance, r, [] if o.placement is None else [o.placement]) for r, o in zip(rows, outcomes)]


def _type_columns(instance: Instance, r: int, placements: list[NDArray[np.bool_]]) -> TypeColumns:
    """Request ``r``'s placements as columns, with their work and KV."""
    x = np.array(placements, dtype=bool).reshape(len(placements), instance.n_blocks)
    return TypeColumns(x, instance.arrays.work[r] @ x.T, instance.arrays.kv[r] @ x.T)


def dp_columns(instance: Instance, deadline: float | None = None) -> Columns | None:
    """Complete Pareto column sets per distinct request; ``None`` past ``deadline``.

    ``deadline`` is a :func:`time.perf_counter` instant.
    """
    from splitllm.solvers.per_request import unique_requests

    first, inverse = unique_requests(instance.arrays)
    pareto = math.isfinite(instance.arrays.kv_capacity)
    batch = PARETO_BATCH if pareto else 1
    per_type: list[TypeColumns] = []
    per_row = 0.0  # seconds per distinct request in the last batch: stop before one that cannot end in time
    for start in range(0, len(first), batch):
        rows = first[start : start + batch]
        if deadline is not None and time.perf_counter() + per_row * len(rows) > deadline:
            return None
        began = time.perf_counter()
        per_type += _pareto_columns(instance, rows) if pareto else _least_work_columns(instance, rows)
        per_row = (time.perf_counter() - began) / len(rows)
    return Columns(per_type, first, inverse)


def _coupling_rows(problem: pulp.LpProblem, instance: Instance, terms: dict[str, list[tuple[Any, float]]]) -> None:
    a = instance.arrays
    for name, cap in (("work", a.work_capacity), ("kv", a.kv_capacity)):
        if math.isfinite(cap):
            s = capacity_scale(cap)
            problem += pulp.LpAffineExpression([(v, c / s) for v, c in terms[name] if c != 0]) <= cap / s, f"{name}_capacity"


def build(instance: Instance, columns: Columns, aggregate: bool = False, deadline: float | None = None) -> tuple[pulp.LpProblem, Handles]:
    """The F3 model over ``columns`` and its handles (see the module docstring).

    Past ``deadline`` (checked between requests) it raises
    :class:`splitllm.deadline.TimeLimitReached`.
    """
    a = instance.arrays
    maximize = instance.objective == "max_admitted"
    problem = pulp.LpProblem(f"F3_{instance.name or 'instance'}".replace("-", "_"), pulp.LpMaximize if maximize else pulp.LpMinimize)
    unit = work_unit(a)
    if aggregate:
        groups = [(t, int(n), columns.per_type[t], float(a.weight[columns.representative[t]])) for t, n in enumerate(columns.counts)]
        var, admit = "y_t{}_k{}", "a_t{}"
    else:
        groups = [(r, 1, columns.of_request(r), float(a.weight[r])) for r in range(instance.n_requests)]
        var, admit = "z_r{}_k{}", "a_r{}"
    cat = pulp.LpInteger  # with bounds [0, n]; PuLP's LpBinary would reset a fixed lower bound
    h: Handles = {"z": {}, "a": {}, "x": {}, "work_unit": unit, "aggregate": aggregate}
    terms: dict[str, list[tuple[Any, float]]] = {"work": [], "kv": [], "weight": []}
    for g, n, cols, weight in groups:
        check(deadline, "building the model")
        z = {k: pulp.LpVariable(var.format(g, k), 0, n, cat) for k in range(len(cols.work))}
        count = pulp.LpVariable(admit.format(g), n if not maximize else 0, n, cat)
        h["z"].update({(g, k): v for k, v in z.items()})
        h["a"][g] = count
        problem += pulp.lpSum(z.values()) == count, f"pick_{admit.format(g)}"
        terms["work"] += [(z[k], float(cols.work[k])) for k in z]
        terms["kv"] += [(z[k], float(cols.kv[k])) for k in z]
        terms["weight"].append((count, weight))
        if not aggregate:
            h["x"].update({(g, b): pulp.lpSum(z[k] for k in z if cols.placements[k, b]) for b in range(instance.n_blocks)})
    _coupling_rows(problem, instance, terms)
    h["work"] = pulp.LpAffineExpression([(v, c / unit) for v, c in terms["work"] if c != 0])
    h["weight"] = pulp.LpAffineExpression(terms["weight"])
    problem.setObjective(h["weight"] if maximize else h["work"])
    return problem, h


def picks_from_counts(columns: Columns, counts: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    """Per request, a column index (-1 = rejected) from per-type column counts.

    ``counts[t][k]`` requests of type ``t`` take column ``k``, in instance order.
    """
    picks = np.full(len(columns.type_of), -1, dtype=np.int64)
    for t, per_column in enumerate(counts):
        members = np.nonzero(columns.type_of == t)[0]
        chosen = np.repeat(np.arange(len(per_column)), per_column)
        picks[members[: len(chosen)]] = chosen
    return picks


def expand(columns: Columns, picks: NDArray[np.int64], n_blocks: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Placements (rejected rows all-server, ignored) and admitted flags from ``picks``."""
    placements = np.ones((len(picks), n_blocks), dtype=bool)
    admitted = picks >= 0
    for t, cols in enumerate(columns.per_type):
        rows = np.nonzero(admitted & (columns.type_of == t))[0]
        placements[rows] = cols.placements[picks[rows]]
    return placements, admitted
