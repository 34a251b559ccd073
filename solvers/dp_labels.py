"""The exact DP's label pass: labels block by block over F1, pruned, then backtracked.

A label is one partial placement's resource vector at a node of F1. The pass runs over a
batch of requests at once (a label's node is ``4 r + 2 anchor + side``); :class:`Pruning`
holds the rules that drop labels (see :mod:`splitllm.solvers.dp`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from splitllm.solvers.dp_bounds import BudgetBound, Lagrangian
from splitllm.solvers.dp_costs import COUPLED_SLOTS, LIMITED, SLOTS, TRADED, WORK, Array, feasible
from splitllm.solvers.pareto import best_per_node, pareto_rows
from splitllm.tolerances import FEASIBILITY_RTOL, INCUMBENT_RTOL


#: Labels per node in the heuristic beam pass that seeds the incumbent.
BEAM_WIDTH = 8


@dataclass(frozen=True)
class Label:
    """A finished label: its resource values and its placement (True = server)."""

    values: tuple[float, ...]
    placement: NDArray[np.bool_]


@dataclass(frozen=True)
class LabelSearch:
    """What the DP found: the least-work label (``None`` if none beats the incumbent),
    every Pareto label at the sink, and how many labels it created."""

    best: Label | None
    pareto: list[Label]
    labels_created: int


@dataclass(frozen=True)
class Layer:
    """The labels after one block: values (n x 6), node ``2 * anchor + side``, and the
    row of each label's parent in the previous layer."""

    values: np.ndarray
    node: NDArray[np.int64]
    parent: NDArray[np.int64]


def label_pass(
    cost: np.ndarray,
    sink: np.ndarray,
    limit: Array,
    low: np.ndarray,
    high: np.ndarray,
    incumbent: float | Array,
    lag: Lagrangian | None,
    budgets: list[BudgetBound],
    keep_coupled: bool,
    beam: int | None = None,
) -> list[LabelSearch]:
    """The label pass over a batch of requests, one block (all four F1 nodes of each
    request) at a time; one :class:`LabelSearch` per request.

    The batch axis follows the block axis: ``cost[b, r, from, to, slot]``,
    ``sink[r, anchor, side, slot]``, ``limit[r, slot]``, ``low`` and ``high`` as
    :func:`to_sink` gives them. A label's node is ``4 r + 2 anchor + side``. The
    ``incumbent`` is one work figure for every request or one per request; ``lag`` and
    ``budgets`` belong to one request, so come with a batch of one. With ``beam`` it
    keeps only the labels of least bound at each node: a heuristic, used for the
    incumbent.
    """
    n_blocks, n_requests = cost.shape[:2]
    cutoff = _cutoff(np.broadcast_to(np.asarray(incumbent, dtype=np.float64), (n_requests,)))
    prune = Pruning(limit, cutoff, lag, budgets, keep_coupled, beam)
    request, anchor = np.divmod(np.arange(2 * n_requests), 2)
    layer = Layer(cost[0, request, 0, anchor], 4 * request + 3 * anchor, np.zeros(2 * n_requests, np.int64))
    layers = [layer]
    created = np.full(n_requests, 2)
    for b in range(1, n_blocks):
        request, side = layer.node // 4, layer.node % 2
        values = np.concatenate([layer.values + cost[b, request, side, to] for to in (0, 1)])
        node = np.concatenate([layer.node - side + to for to in (0, 1)])
        parent = np.tile(np.arange(len(layer.node)), 2)
        created += 2 * np.bincount(request, minlength=n_requests)
        keep = prune.survivors(b, values, node, low[b].reshape(-1, SLOTS), high[b].reshape(-1, SLOTS))
        layer = Layer(values[keep], node[keep], parent[keep])
        layers.append(layer)
    final = layer.values + sink.reshape(-1, SLOTS)[layer.node]
    request = layer.node // 4
    rows = np.nonzero(feasible(final, limit[request]) & ((final[:, WORK] < cutoff[request]) | keep_coupled))[0]
    key = final[rows][:, [WORK] + TRADED]
    if not keep_coupled:  # only work counts
        key[:, 1:] = 0.0
    rows = rows[pareto_rows(key, request[rows])]
    per_request: list[list[Label]] = [[] for _ in range(n_requests)]
    for row, placement in zip(rows, _backtrack(layers, rows)):
        per_request[request[row]].append(Label(tuple(final[row]), placement))
    return [
        LabelSearch(min(labels, key=lambda lab: lab.values[WORK], default=None), labels, int(n))
        for labels, n in zip(per_request, created)
    ]


def _cutoff(incumbent: Array) -> Array:
    """The work a label must stay below to beat each ``incumbent`` (``inf``: none)."""
    finite = np.isfinite(incumbent)
    return np.where(finite, incumbent - INCUMBENT_RTOL * np.abs(np.where(finite, incumbent, 0.0)), np.inf)


@dataclass(frozen=True)
class Pruning:
    """The pruning rules of one label pass (see the module docstring); ``limit[r, slot]``
    and ``cutoff[r]`` (the work a label must stay below) per request of the batch."""

    limit: Array
    cutoff: Array
    lag: Lagrangian | None
    budgets: list[BudgetBound]
    keep_coupled: bool
    beam: int | None

    @functools.cached_property
    def node_limit(self) -> Array:
        """``limit`` with its feasibility tolerance, one row per node ``4 r + 2 anchor + side``."""
        return np.repeat(self.limit, 4, axis=0) * (1 + FEASIBILITY_RTOL)

    def lower_bound(self, b: int, values: np.ndarray, node: np.ndarray, low: np.ndarray) -> np.ndarray:
        """Least total work any feasible completion of each label can reach; ``inf`` when a
        limit is broken whatever follows."""
        rest = low[node]
        slack = self.node_limit[:, LIMITED] - low[:, LIMITED]
        ok = np.all(values[:, LIMITED] <= slack[node], axis=1)
        bound = values[:, WORK] + rest[:, WORK]
        if self.lag is not None:
            bound = np.maximum(bound, self._lagrangian_bound(b, values, node))
        for budget in self.budgets:  # a batch of one request
            bound = np.maximum(bound, values[:, WORK] + budget.bound(b, values, node, self.limit[0, budget.slot]))
        return np.where(ok, bound, np.inf)

    def survivors(self, b: int, values: np.ndarray, node: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Rows of the candidate labels after block ``b`` that survive."""
        bound = self.lower_bound(b, values, node, low)
        idx = np.nonzero(bound < self.cutoff[node // 4])[0]  # an infinite bound never survives
        if self.beam is not None:
            idx = best_per_node(idx, bound[idx], node[idx], self.beam)
        if idx.size <= 1:
            return idx
        v = values[idx]
        key = np.where(v + high[node[idx]] > self.limit[node[idx] // 4], v, -np.inf)  # limits that can still bind
        key[:, WORK] = v[:, WORK]
        key[:, TRADED] = v[:, TRADED] if self.keep_coupled else 0.0
        return idx[pareto_rows(key, node[idx])]

    def _lagrangian_bound(self, b: int, values: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Least work of any feasible completion, by the Lagrangian bound of each multiplier."""
        assert self.lag is not None and len(self.limit) == 1  # multipliers of one request
        lam = self.lag.lam.copy()
        lam[:, COUPLED_SLOTS] = 0.0
        finite_limit = np.where(np.isfinite(self.limit[0]), self.limit[0], 0.0)
        rest = self.lag.bound[b].reshape(4, -1)[node]
        return (values[:, [WORK]] + rest + (values - finite_limit) @ lam.T).max(axis=1)  # type: ignore[no-any-return]


def _backtrack(layers: list[Layer], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
    """The placements (one per row) of the labels at ``rows`` of the last layer."""
    sides = np.empty((len(rows), len(layers)), dtype=bool)
    for b in range(len(layers) - 1, -1, -1):
        sides[:, b] = layers[b].node[rows] % 2 == 1
        rows = layers[b].parent[rows]
    return sides
