"""The exact DP's label pass: labels block by block over F1, pruned, then backtracked.

A label is one partial placement's resource vector at a node of F1. The pass runs over a
batch of requests at once (a label's node is ``4 r + 2 anchor + side``); :class:`Pruning`
holds the rules that drop labels (see :mod:`splitllm.solvers.dp`).

*Runs*: consecutive blocks whose edge costs are identical for every request of the batch
(the decoder layers of a model, priced from one profile) are crossed in one step
(:func:`steps`). Inside such a run a placement's resources depend only on its first and
last side, how many of its blocks run on the client, and how many times it switches
sides; every crossing costs >= 0 and adds no work, KV or client memory, so for each
(first side, last side, client blocks) the placement with the fewest switches is no
worse in any resource than every other. One step over those :func:`run_patterns`
(about four per block of the run) therefore loses no optimal or Pareto-optimal
placement, and its dominance filter runs once per run instead of once per block:
labels grow with the run's length, so this turns a quadratic number of label
comparisons per run into about one pass.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from splitllm.solvers.dp_bounds import BudgetBound, Lagrangian, to_sink
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
    """The labels after one step (blocks ``first`` to ``first + len(run) - 1``): values
    (n x 6), node ``4 r + 2 anchor + side``, the row of each label's parent in the
    previous layer and the sides the step gave its blocks (``patterns[pattern[i]]``)."""

    values: np.ndarray
    node: NDArray[np.int64]
    parent: NDArray[np.int64]
    first: int
    patterns: NDArray[np.bool_]
    pattern: NDArray[np.int64]


@functools.lru_cache(maxsize=64)
def run_patterns(m: int) -> NDArray[np.bool_]:
    """The placements (True = server) of a run of ``m`` identical blocks that can be
    needed: for each first side, last side and number of client blocks, the one with
    the fewest switches (module docstring). ``[[False], [True]]`` for one block.

    >>> ["".join("S" if x else "C" for x in p) for p in run_patterns(3)]
    ['CCC', 'SSS', 'CSS', 'CCS', 'SSC', 'SCC', 'CSC', 'SCS']
    """
    rows = [[0] * m, [1] * m]
    rows += [[0] * c + [1] * (m - c) for c in range(1, m)]  # C..S: one switch up
    rows += [[1] * (m - c) + [0] * c for c in range(1, m)]  # S..C: one switch down
    rows += [[0] + [1] * (m - c) + [0] * (c - 1) for c in range(2, m)]  # C..C around a server stretch
    rows += [[1] + [0] * c + [1] * (m - c - 1) for c in range(1, m - 1)]  # S..S around a client stretch
    table = np.array(rows, dtype=bool)
    table.flags.writeable = False
    return table


def steps(cost: np.ndarray) -> list[tuple[int, int]]:
    """The steps of the label pass after block 0, as block ranges ``[first, end)``: each
    a single block or a run of blocks whose costs ``cost[b]`` (every request of the
    batch, every edge and slot) are identical."""
    out = []
    first = 1
    while first < cost.shape[0]:
        end = first + 1
        while end < cost.shape[0] and np.array_equal(cost[end], cost[first]):
            end += 1
        out.append((first, end))
        first = end
    return out


@functools.lru_cache(maxsize=64)
def _transitions(m: int) -> NDArray[np.float64]:
    """``count[p, 2 * from + to]``: how often pattern ``p`` of :func:`run_patterns` goes
    from side ``from`` to side ``to`` between two blocks of the run."""
    sides = run_patterns(m).astype(np.int64)
    count = np.zeros((len(sides), 4))
    np.add.at(count, (np.arange(len(sides))[:, None], 2 * sides[:, :-1] + sides[:, 1:]), 1.0)
    count.flags.writeable = False
    return count


def _run_costs(cost: np.ndarray, m: int) -> np.ndarray:
    """``total[r, from, p, slot]``: what pattern ``p`` of :func:`run_patterns` over a run of
    ``m`` blocks with edge costs ``cost[r, from, to, slot]`` (each block's) adds after a
    label on side ``from``."""
    inside = _transitions(m) @ cost.reshape(len(cost), 4, -1)  # (r, p, slot)
    return cost[:, :, run_patterns(m)[:, 0].astype(np.int64)] + inside[:, None]


def pass_bounds(cost: np.ndarray, sink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``low`` and ``high`` (:func:`to_sink`) for :func:`label_pass` over ``cost``, only for
    the blocks it reads (where its steps end: after a long first run, a few)."""
    step_ends = steps(cost)
    first = step_ends[0][1] - 1 if step_ends else 0
    return to_sink(cost, sink, np.minimum, first), to_sink(cost, sink, np.maximum, first)


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
    single = run_patterns(1)
    layer = Layer(cost[0, request, 0, anchor], 4 * request + 3 * anchor, np.zeros(2 * n_requests, np.int64), 0, single, anchor)
    layers = [layer]
    created = np.full(n_requests, 2)
    for first, end in steps(cost):
        patterns = run_patterns(end - first)
        request, side = layer.node // 4, layer.node % 2
        added = _run_costs(cost[first], end - first)[request, side]  # (labels, patterns, slot)
        # pattern-major, as one block's (to = 0, then 1) candidates have always been ordered
        values = (layer.values[None] + added.transpose(1, 0, 2)).reshape(-1, SLOTS)
        last = patterns[:, -1].astype(np.int64)
        node = (layer.node - side + last[:, None]).ravel()
        parent = np.tile(np.arange(len(layer.node)), len(patterns))
        pattern = np.repeat(np.arange(len(patterns)), len(layer.node))
        created += len(patterns) * np.bincount(request, minlength=n_requests)
        b = end - 1
        keep = prune.survivors(b, values, node, low[b].reshape(-1, SLOTS), high[b].reshape(-1, SLOTS))
        layer = Layer(values[keep], node[keep], parent[keep], first, patterns, pattern[keep])
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
    n_blocks = layers[-1].first + layers[-1].patterns.shape[1]
    sides = np.empty((len(rows), n_blocks), dtype=bool)
    for layer in reversed(layers):
        sides[:, layer.first : layer.first + layer.patterns.shape[1]] = layer.patterns[layer.pattern[rows]]
        rows = layer.parent[rows]
    return sides
