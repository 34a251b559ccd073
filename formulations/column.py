"""F3: the column (extended) MILP over per-request placement columns, as a PuLP problem.

A *column* is one SLO- and memory-feasible placement of a request with its use of each
coupled resource (server work and KV). F3 takes the columns as data
(:class:`Columns`: one :class:`TypeColumns` per distinct request); the exact DP makes
them (:func:`splitllm.solvers.columns.dp_columns`: the complete Pareto sets in the
coupled resources), and then F3 is exact: any solution can swap each request's placement
for a Pareto column that uses no more of any coupled resource.

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
>>> import numpy as np
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> cols = Columns.from_placements(inst, [[[False, True, False]], [[True, True, False]]])
>>> [c.work.round(6).tolist() for c in cols.per_type]
[[0.29], [0.11]]
>>> problem, h = build(inst, cols)
>>> sorted(h["z"]), h["z"][0, 0].name
([(0, 0), (1, 0)], 'z_r0_k0')
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pulp
from numpy.typing import NDArray

from splitllm.deadline import check
from splitllm.formulations.units import capacity_scale, work_unit
from splitllm.instance import Arrays, Instance
from splitllm.resources import COUPLED, KV, WORK, Resource

Handles = dict[str, Any]


@dataclass(frozen=True)
class TypeColumns:
    """The columns of one distinct request: placements (K x B) and, per coupled resource
    key, its use by each column (K)."""

    placements: NDArray[np.bool_]
    usage: dict[str, NDArray[np.float64]]

    @classmethod
    def of(cls, arrays: Arrays, r: int, placements: Sequence[Sequence[bool]] | NDArray[np.bool_]) -> TypeColumns:
        """Request ``r``'s placements as columns, with their use of each coupled resource."""
        x = np.array(placements, dtype=bool).reshape(len(placements), arrays.work.shape[1])
        return cls(x, {res.key: arrays.usage(res)[r] @ x.T for res in COUPLED})

    @classmethod
    def of_many(cls, arrays: Arrays, rows: NDArray[np.int64], placements: NDArray[np.bool_], counts: NDArray[np.int64]) -> list[TypeColumns]:
        """:meth:`of` for many requests at once: request ``rows[i]`` gets the next
        ``counts[i]`` rows of ``placements`` (one vectorised product for all)."""
        x = np.asarray(placements, dtype=bool).reshape(-1, arrays.work.shape[1])
        owner = np.repeat(rows, counts)
        usage = {res.key: np.einsum("rb,rb->r", arrays.usage(res)[owner], x) for res in COUPLED}
        ends = np.cumsum(counts).tolist()
        starts = [0] + ends[:-1]
        return [cls(x[i:j], {key: u[i:j] for key, u in usage.items()}) for i, j in zip(starts, ends)]  # slices: np.split is slower

    @property
    def work(self) -> NDArray[np.float64]:
        return self.usage[WORK.key]

    @property
    def kv(self) -> NDArray[np.float64]:
        return self.usage[KV.key]

    def least(self, res: Resource) -> float:
        """The least use of ``res`` by any column (``inf`` when there is none)."""
        values = self.usage[res.key]
        return float(values.min()) if values.size else math.inf

    @property
    def least_work(self) -> float:
        return self.least(WORK)

    @property
    def least_kv(self) -> float:
        return self.least(KV)


@dataclass(frozen=True)
class Columns:
    """Columns per distinct request type; ``type_of[r]`` is request ``r``'s type."""

    per_type: list[TypeColumns]
    representative: NDArray[np.int64]
    type_of: NDArray[np.int64]

    @classmethod
    def from_placements(cls, instance: Instance, per_request: Sequence[Sequence[Sequence[bool]]]) -> Columns:
        """Columns given as placements, one list per request (each request its own type)."""
        rows = np.arange(instance.n_requests, dtype=np.int64)
        return cls([TypeColumns.of(instance.arrays, int(r), x) for r, x in zip(rows, per_request)], rows, rows)

    @property
    def counts(self) -> NDArray[np.int64]:
        """How many requests each type has."""
        return np.bincount(self.type_of, minlength=len(self.per_type)).astype(np.int64)

    def of_request(self, r: int) -> TypeColumns:
        return self.per_type[int(self.type_of[r])]

    @functools.cached_property
    def offset(self) -> NDArray[np.int64]:
        """Where each type's columns start in the flat tables (:meth:`flat_index`); one
        more entry, the number of columns of all types."""
        return np.concatenate([[0], np.cumsum([len(c.work) for c in self.per_type])]).astype(np.int64)

    def flat_index(self, picks: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per request, its pick's row in the flat tables (meaningful where ``picks >= 0``)."""
        return self.offset[self.type_of] + picks

    def flat_usage(self, key: str) -> NDArray[np.float64]:
        """Every type's use of coupled resource ``key``, one after another."""
        return np.concatenate([np.zeros(0)] + [c.usage[key] for c in self.per_type])

    def flat_placements(self, n_blocks: int) -> NDArray[np.bool_]:
        """Every type's placements, one after another (columns x blocks)."""
        return np.concatenate([np.zeros((0, n_blocks), bool)] + [c.placements.reshape(-1, n_blocks) for c in self.per_type])


def _coupling_rows(problem: pulp.LpProblem, instance: Instance, terms: dict[str, list[tuple[Any, float]]]) -> None:
    for res in COUPLED:
        cap = float(instance.arrays.limit(res))
        if math.isfinite(cap):
            s = capacity_scale(cap)
            problem += pulp.LpAffineExpression([(v, c / s) for v, c in terms[res.key] if c != 0]) <= cap / s, f"{res.key}_capacity"


def build(instance: Instance, columns: Columns, aggregate: bool = False, deadline: float | None = None) -> tuple[pulp.LpProblem, Handles]:
    """The F3 model over ``columns`` and its handles (see the module docstring).

    Past ``deadline`` (checked between requests) it raises
    :class:`splitllm.deadline.TimeLimitReached`.
    """
    a = instance.arrays
    maximize = instance.objective.maximize
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
    terms: dict[str, list[tuple[Any, float]]] = {res.key: [] for res in COUPLED}
    terms["weight"] = []
    for g, n, cols, weight in groups:
        check(deadline, "building the model")
        z = {k: pulp.LpVariable(var.format(g, k), 0, n, cat) for k in range(len(cols.work))}
        count = pulp.LpVariable(admit.format(g), n if not maximize else 0, n, cat)
        h["z"].update({(g, k): v for k, v in z.items()})
        h["a"][g] = count
        problem += pulp.lpSum(z.values()) == count, f"pick_{admit.format(g)}"
        for res in COUPLED:
            terms[res.key] += [(z[k], float(cols.usage[res.key][k])) for k in z]
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
    n_types = len(columns.per_type)
    order = np.argsort(columns.type_of, kind="stable")  # each type's members, in instance order
    start = np.searchsorted(columns.type_of[order], np.arange(n_types))
    rank = np.arange(len(order)) - start[columns.type_of[order]]  # place among its type's members
    chosen = [np.repeat(np.arange(len(per_column)), per_column) for per_column in counts]
    taken = np.array([len(c) for c in chosen], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(taken)[:-1]]).astype(np.int64)
    flat = np.concatenate([np.zeros(0, np.int64)] + chosen).astype(np.int64)
    member_type = columns.type_of[order]
    has = rank < taken[member_type]
    picks = np.full(len(columns.type_of), -1, dtype=np.int64)
    picks[order[has]] = flat[first[member_type[has]] + rank[has]]
    return picks


def expand(columns: Columns, picks: NDArray[np.int64], n_blocks: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Placements (rejected rows all-server, ignored) and admitted flags from ``picks``."""
    placements = np.ones((len(picks), n_blocks), dtype=bool)
    admitted = picks >= 0
    placements[admitted] = columns.flat_placements(n_blocks)[columns.flat_index(picks)[admitted]]
    return placements, admitted
