"""``dp``: the exact Pareto-label DP over the F1 layer-chain graph.

A label is one partial placement's resource vector at a node of F1: server work, server
KV, TTFT, TPOT, E2E and client memory so far. Labels move block by block (F1's
topological order) and are pruned four ways, each safe for optimality:

1. *Remaining minimum*: a label whose value plus the least the rest of any path adds
   breaks a limit can never finish feasible.
2. *Lower bounds on the remaining work*, against an incumbent: a :class:`BudgetBound`
   per binding limit (a backward DP over that limit's remaining budget on a grid, costs
   rounded down, so a relaxation) and, when several limits bind, a Lagrangian bound
   ``work + L(node) + lam . (values - limits)`` with multipliers from a small dual
   search. A label whose bound reaches the incumbent cannot improve on it.
3. *Limits that can no longer bind*: if a label's value plus the most the rest of any
   path adds still meets a limit, that limit leaves the label's dominance key.
4. *Dominance*: a label no better than another in every key is dropped; identical keys
   merge.

The incumbent comes from the Lagrangian paths, the placement a single binding limit's
budget table leads to, a walk that follows the bounds, or (failing those) a beam of the
:data:`BEAM_WIDTH` best labels per node. When it meets the
bound at the source it is optimal and no label pass is needed.

The DP works on F1's edge costs in layered array form, ``cost[b, from_side, to_side]``
(:func:`splitllm.formulations.chain_graph.edge_costs`); :func:`label_dp` runs it on a
networkx F1 graph. With ``keep_kv=True`` (the columns of F3) it keeps every
Pareto-optimal feasible placement in (work, kv) and uses no incumbent.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> best = solve_request(inst.arrays, 0)
>>> best.status, "".join("S" if s else "C" for s in best.placement), round(best.work, 6)
('optimal', 'CSC', 0.29)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import FEASIBILITY_RTOL
from splitllm.formulations import chain_graph
from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.per_request import RequestOutcome, solve_independently

# Label value slots. WORK and KV are objectives; the others are limited.
WORK, KV, TTFT, TPOT, E2E, MEM = range(6)
LIMITED = [TTFT, TPOT, E2E, MEM]
SLOTS = 6
#: A label must beat the incumbent by this relative margin to survive (float noise).
INCUMBENT_RTOL = 1e-12
#: Multipliers scanned per limit, in units of (all-server work / limit).
LAMBDA_SCAN = 2.0 ** np.arange(-10, 11, 2)
#: Labels per node in the heuristic beam pass that seeds the incumbent.
BEAM_WIDTH = 8
Array = NDArray[np.float64]


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


def placement_of(label: Label) -> NDArray[np.bool_]:
    """The boolean placement (True = server) of a finished label."""
    return label.placement


def request_limits(arrays: Arrays, r: int | NDArray[np.int64]) -> dict[str, float | Array]:
    """The limits of request ``r`` (or of each request of an array) in the F1 graph's
    resource names."""
    return {
        "ttft": arrays.ttft_limit[r],
        "tpot": arrays.tpot_limit[r],
        "e2e": arrays.e2e_limit[r],
        "client_mem": arrays.mem_limit[r],
    }


def _stack(costs: dict[str, np.ndarray], steps: int | np.ndarray) -> np.ndarray:
    """Resource dict of equal-shaped arrays -> one array with the 6 slots last.

    ``steps`` (decode steps) is one number or one per request of a batch (leading axes).
    """
    steps = np.reshape(steps, np.shape(steps) + (1,) * (costs["ttft"].ndim - np.ndim(steps)))
    e2e = costs["ttft"] + steps * costs["tpot"]
    return np.stack([costs["work"], costs["kv"], costs["ttft"], costs["tpot"], e2e, costs["client_mem"]], axis=-1)


def _limit_vector(limits: dict[str, float | Array], steps: int | NDArray[np.int64]) -> Array:
    """``limit[..., slot]``; the limits and ``steps`` may be arrays over a batch of requests."""
    tpot = np.where(np.asarray(steps) > 0, limits["tpot"], np.inf)  # one token: no decode step
    ttft, tpot, e2e, mem = np.broadcast_arrays(limits["ttft"], tpot, limits["e2e"], limits["client_mem"])
    unlimited = np.full(ttft.shape, np.inf)
    return np.stack([unlimited, unlimited, ttft, tpot, e2e, mem], axis=-1).astype(np.float64)


def _graph_costs(g: nx.DiGraph, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """F1 graph edges -> ``cost[b, from, to, slot]`` and ``sink[anchor, side, slot]``."""
    n_blocks = g.graph["n_blocks"]
    names = chain_graph.RESOURCES
    cost = {k: np.zeros((n_blocks, 2, 2)) for k in names}
    sink = {k: np.zeros((2, 2)) for k in names}
    for u, v, data in g.edges(data=True):
        for k in names:
            if u == chain_graph.SRC:
                cost[k][0, :, v[2]] = data[k]
            elif v == chain_graph.SINK:
                sink[k][u[0], u[2]] = data[k]
            else:
                cost[k][v[1], u[2], v[2]] = data[k]
    return _stack(cost, steps), _stack(sink, steps)


def label_dp(
    g: nx.DiGraph, limits: dict[str, float], output_tokens: int, incumbent: float = math.inf, keep_kv: bool = False
) -> LabelSearch:
    """Resource-constrained shortest path (least server work) over an F1 graph.

    ``limits`` has ``ttft``, ``tpot``, ``e2e``, ``client_mem`` (``inf`` = unbounded).
    Labels that cannot beat ``incumbent`` are pruned, so ``best`` is ``None`` when no
    placement is strictly better than it.

    Examples
    --------
    >>> from splitllm.instance import load_instance, example_path
    >>> a = load_instance(example_path("tiny")).arrays
    >>> found = label_dp(chain_graph.build(a, 0), request_limits(a, 0), int(a.output_tokens[0]))
    >>> found.best.placement.tolist() == search_request(a, 0).best.placement.tolist()
    True
    """
    steps = output_tokens - 1
    cost, sink = _graph_costs(g, steps)
    return _search(cost, sink, _limit_vector(limits, steps), incumbent, keep_kv)


def _request_costs(arrays: Arrays, r: int | NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray, Array]:
    """Edge costs ``[..., b, from, to, slot]``, sink costs and limits of request ``r`` (or
    of each request of an array, whose axes lead) straight from the compiled arrays."""
    steps = arrays.output_tokens[r].astype(np.int64) - 1
    cost = _stack(chain_graph.edge_costs(arrays, r), steps)
    sink = _stack(chain_graph.sink_costs(arrays, r), steps)
    return cost, sink, _limit_vector(request_limits(arrays, r), steps)


def search_request(arrays: Arrays, r: int, incumbent: float = math.inf, keep_kv: bool = False) -> LabelSearch:
    """:func:`label_dp` for request ``r`` straight from the compiled arrays."""
    return _search(*_request_costs(arrays, r), incumbent, keep_kv)


def pareto_search(arrays: Arrays, rows: NDArray[np.int64]) -> list[LabelSearch]:
    """``search_request(arrays, r, keep_kv=True)`` for every ``r`` in ``rows``, in one
    label pass over the whole batch: numpy's per-call cost is paid once per block instead
    of once per block and request (measured in bench/README-scale.md).

    Examples
    --------
    >>> from splitllm.instance import load_instance, example_path
    >>> a = load_instance(example_path("tiny")).arrays
    >>> [[lab.placement.tolist() for lab in s.pareto] for s in pareto_search(a, np.array([0, 1]))]
    [[[False, True, False]], [[True, True, False]]]
    """
    cost, sink, limit = _request_costs(arrays, np.asarray(rows, dtype=np.int64))
    return _pareto_batch(np.moveaxis(cost, 1, 0), sink, limit)  # the batch axis after the block axis


def _pareto_batch(cost: np.ndarray, sink: np.ndarray, limit: Array) -> list[LabelSearch]:
    """The ``keep_kv`` label pass over a batch (``cost[b, r, from, to, slot]``,
    ``sink[r, anchor, side, slot]``, ``limit[r, slot]``). No incumbent prunes here, so
    the budget and Lagrangian bounds would only repeat the remaining-minimum test.

    A request whose all-client placement is feasible needs no pass: that placement has
    no server work and no KV, so it alone is the Pareto set.
    """
    all_client = cost[:, :, 0, 0].sum(axis=0) + sink[:, 0, 0]  # [r, slot]
    local = _feasible(all_client, limit) & (all_client[:, WORK] == 0) & (all_client[:, KV] == 0)
    rest = np.flatnonzero(~local)
    low = _to_sink(cost[:, rest], sink[rest], np.minimum)
    high = _to_sink(cost[:, rest], sink[rest], np.maximum)
    searched = iter(_labels(cost[:, rest], sink[rest], limit[rest], low, high, math.inf, None, [], keep_kv=True))
    nothing_on_server = np.zeros(cost.shape[0], dtype=bool)
    results = []
    for is_local, values in zip(local, all_client):
        label = Label(tuple(values), nothing_on_server)
        results.append(LabelSearch(label, [label], 0) if is_local else next(searched))
    return results


def _to_sink(cost: np.ndarray, sink: np.ndarray, pick: np.ufunc) -> np.ndarray:
    """``out[b, ..., anchor, side, k]``: least (``np.minimum``) or most (``np.maximum``)
    that the edges after block ``b`` add up to in slot ``k``, over every way to the sink.

    ``cost`` is ``[b, ..., from, to, k]`` and ``sink`` ``[..., anchor, side, k]``; the
    ``...`` axes (a batch of requests) are carried along.
    """
    n_blocks = cost.shape[0]
    out = np.empty((n_blocks,) + sink.shape)
    out[-1] = sink
    for b in range(n_blocks - 2, -1, -1):
        # through[..., anchor, side, next_side, k] = edge b+1 (side -> next_side) + rest from next_side
        through = cost[b + 1][..., None, :, :, :] + out[b + 1][..., :, None, :, :]
        out[b] = pick.reduce(through, axis=-2)
    return out


@dataclass(frozen=True)
class Lagrangian:
    """Multipliers (K x 6, 1 on WORK) with ``bound[b, anchor, side, k]``: least
    ``work + lam_k . resources`` from after block ``b`` to the sink."""

    lam: np.ndarray
    bound: np.ndarray


def _dual_values(cost: np.ndarray, sink: np.ndarray, lam: np.ndarray, limit: Array) -> tuple[np.ndarray, np.ndarray]:
    """Dual bound ``min_P work + lam.(res - limit)`` at the source for each row of ``lam``."""
    scalar_cost, scalar_sink = cost @ lam.T, sink @ lam.T
    bound = _to_sink(scalar_cost, scalar_sink, np.minimum)
    anchors = np.arange(2)
    at_source = (scalar_cost[0, 0, anchors] + bound[0, anchors, anchors]).min(axis=0)
    finite = np.where(np.isfinite(limit), limit, 0.0)
    return at_source - lam @ finite, bound


def _lagrangian(cost: np.ndarray, sink: np.ndarray, limit: Array) -> Lagrangian:
    """A few good multipliers: best per limit on a geometric grid, then their mixes.

    Units: multiplier ``j`` is scanned as ``LAMBDA_SCAN * W / limit_j`` where ``W``
    bounds the all-server work, so the scan is scale-free.
    """
    bounded = [j for j in LIMITED if np.isfinite(limit[j]) and limit[j] > 0]
    base = np.zeros(SLOTS)
    base[WORK] = 1.0
    if not bounded:
        return Lagrangian(base[None], _dual_values(cost, sink, base[None], limit)[1])
    work_scale = max(float(cost[..., WORK].max()) * cost.shape[0], 1e-30)
    singles = np.tile(base, (len(bounded), len(LAMBDA_SCAN), 1))
    for i, j in enumerate(bounded):
        singles[i, :, j] = LAMBDA_SCAN * work_scale / limit[j]
    values, _ = _dual_values(cost, sink, singles.reshape(-1, SLOTS), limit)
    best = np.argmax(values.reshape(len(bounded), -1), axis=1)
    best_per_limit = [base] + [singles[i, k] for i, k in enumerate(best)]
    mixes = [base + sum(w * (lam - base) for w, lam in zip(weights, best_per_limit[1:])) for weights in _mix_weights(len(bounded))]
    lam_all = np.unique(np.array(best_per_limit + mixes), axis=0)
    values, _ = _dual_values(cost, sink, lam_all, limit)
    keep = lam_all[np.argsort(values)[::-1][: len(bounded) + 2]]
    return Lagrangian(keep, _dual_values(cost, sink, keep, limit)[1])


def _mix_weights(n: int) -> list[tuple[float, ...]]:
    grids = np.meshgrid(*([np.array([0.0, 0.5, 1.0])] * n), indexing="ij")
    return [tuple(w) for w in np.stack([g.ravel() for g in grids], axis=1)]


def _lagrangian_paths(cost: np.ndarray, sink: np.ndarray, lag: Lagrangian) -> np.ndarray:
    """The placement minimising ``work + lam_k . resources`` for each multiplier ``k``."""
    scalar_cost = cost @ lag.lam.T
    n_blocks, n_lam = cost.shape[0], lag.lam.shape[0]
    ks = np.arange(n_lam)
    anchors = np.arange(2)
    anchor = np.argmin(scalar_cost[0, 0, anchors] + lag.bound[0, anchors, anchors], axis=0)
    sides = np.empty((n_lam, n_blocks), dtype=np.int64)
    sides[:, 0] = anchor
    for b in range(1, n_blocks):
        options = scalar_cost[b, sides[:, b - 1], :, ks] + lag.bound[b, anchor, :, ks]  # (k, next side)
        sides[:, b] = np.argmin(options, axis=1)
    return sides.astype(bool)


def _path_values(cost: np.ndarray, sink: np.ndarray, placements: np.ndarray) -> np.ndarray:
    """Resource values (n x 6) of whole placements."""
    sides = placements.astype(np.int64)
    n_blocks = cost.shape[0]
    prev = np.concatenate([np.zeros((len(sides), 1), np.int64), sides[:, :-1]], axis=1)
    values = cost[np.arange(n_blocks)[None, :], prev, sides].sum(axis=1)
    return values + sink[sides[:, 0], sides[:, -1]]


def _feasible(values: np.ndarray, limit: Array) -> np.ndarray:
    """Rows of ``values`` within ``limit`` (one limit vector, or one per row)."""
    return np.all(values[:, LIMITED] <= limit[..., LIMITED] * (1 + FEASIBILITY_RTOL), axis=1)


@dataclass(frozen=True)
class BudgetBound:
    """Least remaining work as a function of one limit's remaining budget.

    ``table[b, anchor, side, k]`` is the least work from after block ``b`` to the sink
    over completions whose costs in this limit, each rounded *down* to whole cells of
    ``limit / cells``, fit in ``k`` cells. Rounding down makes it a relaxation, so it is
    a true lower bound for every completion that fits the real remaining budget.
    """

    slot: int
    unit: float
    table: np.ndarray
    used: NDArray[np.int64]  # cells each edge uses, [b, from, to]

    @classmethod
    def build(cls, cost: np.ndarray, sink: np.ndarray, slot: int, limit: float, cells: int) -> BudgetBound:
        unit = limit / cells
        used = np.floor(cost[..., slot] / unit * (1 - 1e-9)).astype(np.int64)
        used_sink = np.floor(sink[..., slot] / unit * (1 - 1e-9)).astype(np.int64)
        k = np.arange(cells + 1)
        table = np.full((cost.shape[0], 2, 2, cells + 1), np.inf)
        table[-1] = np.where(k[None, None, :] >= used_sink[..., None], sink[..., WORK][..., None], np.inf)
        for b in range(cost.shape[0] - 2, -1, -1):
            nxt = table[b + 1]  # (anchor, side, k)
            for side in (0, 1):
                for to in (0, 1):
                    shift = used[b + 1, side, to]
                    if shift <= cells:  # k cells here leave k - shift for the rest
                        best = table[b, :, side, shift:]
                        np.minimum(best, nxt[:, to, : cells + 1 - shift] + cost[b + 1, side, to, WORK], out=best)
        return cls(slot, unit, table, used)

    def relaxed_placement(self, cost: np.ndarray) -> NDArray[np.bool_] | None:
        """The placement the table says is least work within the rounded-down budget
        (follow the table from the source). It may break the real limit by the rounding,
        so callers check it; ``None`` when no placement fits even the relaxation."""
        table, used = self.table, self.used
        cells = table.shape[-1] - 1
        start = [cost[0, 0, a, WORK] + table[0, a, a, cells - used[0, 0, a]] if used[0, 0, a] <= cells else np.inf for a in (0, 1)]
        anchor = int(np.argmin(start))
        if not np.isfinite(start[anchor]):
            return None
        side, k, sides = anchor, cells - used[0, 0, anchor], [anchor]
        for b in range(1, cost.shape[0]):
            options = [
                cost[b, side, to, WORK] + table[b, anchor, to, k - used[b, side, to]] if used[b, side, to] <= k else np.inf
                for to in (0, 1)
            ]
            to = int(np.argmin(options))
            side, k = to, k - used[b, side, to]
            sides.append(to)
        return np.array(sides, dtype=bool)

    def bound(self, b: int, values: np.ndarray, node: np.ndarray, limit: float) -> np.ndarray:
        """Lower bound on the remaining work of each label (``inf``: no completion fits)."""
        remaining = limit * (1 + FEASIBILITY_RTOL) - values[:, self.slot]
        cells = self.table.shape[-1] - 1
        k = np.floor(remaining / self.unit * (1 + 1e-9))
        safe_k = np.clip(k, 0, cells).astype(np.int64)
        rest = self.table[b].reshape(4, -1)[node, safe_k]
        return np.where(k < 0, np.inf, rest)


#: Cells of the budget bounds, shared among the binding limits (a relaxation, so any
#: number is exact; more is tighter and slower). 4,096 measured best for one limit.
BUDGET_CELLS = 4096


def _budget_bounds(cost: np.ndarray, sink: np.ndarray, limit: Array, high: np.ndarray) -> list[BudgetBound]:
    """One :class:`BudgetBound` per limit that some placement breaks (``high``: see
    :func:`_to_sink`)."""
    starts = cost[0, 0, [0, 1]] + high[0, [0, 1], [0, 1]]  # most each anchor's paths use
    binding = [j for j in LIMITED if np.isfinite(limit[j]) and limit[j] > 0 and starts[:, j].max() > limit[j]]
    return [BudgetBound.build(cost, sink, j, float(limit[j]), BUDGET_CELLS // len(binding)) for j in binding]


def _search(cost: np.ndarray, sink: np.ndarray, limit: Array, incumbent: float, keep_kv: bool) -> LabelSearch:
    """The search of one request (``cost[b, from, to, slot]``, ``limit[slot]``)."""
    if keep_kv:
        return _pareto_batch(cost[:, None], sink[None], limit[None])[0]
    low = _to_sink(cost, sink, np.minimum)
    high = _to_sink(cost, sink, np.maximum)
    incumbent_label = None
    lag = None
    budgets = _budget_bounds(cost, sink, limit, high)
    if len(budgets) > 1:  # with one binding limit its budget bound is the stronger one
        lag = _lagrangian(cost, sink, limit)
        candidates = _lagrangian_paths(cost, sink, lag)
        values = _path_values(cost, sink, candidates)
        ok = np.nonzero(_feasible(values, limit))[0]
        if ok.size:
            i = ok[np.argmin(values[ok, WORK])]
            if values[i, WORK] < incumbent:
                incumbent, incumbent_label = float(values[i, WORK]), Label(tuple(values[i]), candidates[i])
    batch = (cost[:, None], sink[None], limit[None], low[:, None], high[:, None])  # _labels' layout
    # Incumbents, cheapest first: follow the bounds greedily, then a narrow beam. When
    # one meets the lower bound at the source it is optimal and the search is over.
    source_bound = _source_bound(cost, low, lag, budgets, limit) * (1 + INCUMBENT_RTOL)
    heuristics = (
        lambda: _relaxed_incumbent(cost, sink, limit, budgets),
        lambda: _guided_walk(cost, sink, limit, low, _Pruning(limit[None], math.inf, lag, budgets, False, None)),
        lambda: _labels(*batch, incumbent, lag, budgets, keep_kv=False, beam=BEAM_WIDTH)[0].best,
    )
    for heuristic in heuristics:
        found = heuristic()
        if found is not None and found.values[WORK] < incumbent:
            incumbent, incumbent_label = found.values[WORK], found
        if incumbent <= source_bound:
            return LabelSearch(incumbent_label, [incumbent_label], 0)  # type: ignore[list-item]
    search = _labels(*batch, incumbent, lag, budgets, keep_kv=False)[0]
    best = search.best if search.best is not None else incumbent_label
    return LabelSearch(best, [best] if best else [], search.labels_created)


def _relaxed_incumbent(cost: np.ndarray, sink: np.ndarray, limit: Array, budgets: list[BudgetBound]) -> Label | None:
    """With one binding limit, the placement its budget table leads to, if truly feasible."""
    if len(budgets) != 1:
        return None
    placement = budgets[0].relaxed_placement(cost)
    if placement is None:
        return None
    values = _path_values(cost, sink, placement[None])
    return Label(tuple(map(float, values[0])), placement) if _feasible(values, limit)[0] else None


def _source_bound(cost: np.ndarray, low: np.ndarray, lag: Lagrangian | None, budgets: list[BudgetBound], limit: Array) -> float:
    """The least work any feasible placement can have, by the pruning bounds at block 0."""
    prune = _Pruning(limit[None], math.inf, lag, budgets, False, None)
    anchors = np.array([0, 1])
    return float(prune.lower_bound(0, cost[0, 0, anchors], 3 * anchors, low[0].reshape(4, SLOTS)).min())


def _guided_walk(cost: np.ndarray, sink: np.ndarray, limit: Array, low: np.ndarray, prune: _Pruning) -> Label | None:
    """From each anchor, take at every block the side whose label has the least lower
    bound; the better feasible end of the two walks, if any."""
    anchors = np.array([0, 1])
    values, node = cost[0, 0, anchors], 3 * anchors
    sides = [anchors]
    for b in range(1, cost.shape[0]):
        side = node % 2
        options = np.stack([values + cost[b, side, to] for to in (0, 1)])  # (to, walk, 6)
        option_node = np.stack([node - side + to for to in (0, 1)])
        bound = prune.lower_bound(b, options.reshape(-1, SLOTS), option_node.ravel(), low.reshape(cost.shape[0], 4, SLOTS)[b])
        choice = np.argmin(bound.reshape(2, -1), axis=0)
        walks = np.arange(len(node))
        values, node = options[choice, walks], option_node[choice, walks]
        sides.append(choice)
    final = values + sink.reshape(4, SLOTS)[node]
    ok = np.nonzero(_feasible(final, limit))[0]
    if not ok.size:
        return None
    best = ok[np.argmin(final[ok, WORK])]
    return Label(tuple(final[best]), np.array([s[best] for s in sides], dtype=bool))


@dataclass(frozen=True)
class _Layer:
    """The labels after one block: values (n x 6), node ``2 * anchor + side``, and the
    row of each label's parent in the previous layer."""

    values: np.ndarray
    node: NDArray[np.int64]
    parent: NDArray[np.int64]


def _labels(
    cost: np.ndarray,
    sink: np.ndarray,
    limit: Array,
    low: np.ndarray,
    high: np.ndarray,
    incumbent: float,
    lag: Lagrangian | None,
    budgets: list[BudgetBound],
    keep_kv: bool,
    beam: int | None = None,
) -> list[LabelSearch]:
    """The label pass over a batch of requests, one block (all four F1 nodes of each
    request) at a time; one :class:`LabelSearch` per request.

    The batch axis follows the block axis: ``cost[b, r, from, to, slot]``,
    ``sink[r, anchor, side, slot]``, ``limit[r, slot]``, ``low`` and ``high`` as
    :func:`_to_sink` gives them. A label's node is ``4 r + 2 anchor + side``. An
    ``incumbent``, ``lag`` and ``budgets`` belong to one request, so come with a batch of
    one. With ``beam`` it keeps only the labels of least bound at each node: a heuristic,
    used for the incumbent.
    """
    n_blocks, n_requests = cost.shape[:2]
    cutoff = incumbent - INCUMBENT_RTOL * abs(incumbent) if math.isfinite(incumbent) else math.inf
    prune = _Pruning(limit, cutoff, lag, budgets, keep_kv, beam)
    request, anchor = np.divmod(np.arange(2 * n_requests), 2)
    layer = _Layer(cost[0, request, 0, anchor], 4 * request + 3 * anchor, np.zeros(2 * n_requests, np.int64))
    layers = [layer]
    created = np.full(n_requests, 2)
    for b in range(1, n_blocks):
        request, side = layer.node // 4, layer.node % 2
        values = np.concatenate([layer.values + cost[b, request, side, to] for to in (0, 1)])
        node = np.concatenate([layer.node - side + to for to in (0, 1)])
        parent = np.tile(np.arange(len(layer.node)), 2)
        created += 2 * np.bincount(request, minlength=n_requests)
        keep = prune.survivors(b, values, node, low[b].reshape(-1, SLOTS), high[b].reshape(-1, SLOTS))
        layer = _Layer(values[keep], node[keep], parent[keep])
        layers.append(layer)
    final = layer.values + sink.reshape(-1, SLOTS)[layer.node]
    request = layer.node // 4
    rows = np.nonzero(_feasible(final, limit[request]) & ((final[:, WORK] < cutoff) | keep_kv))[0]
    key = np.zeros((rows.size, 2))
    key[:, 0] = final[rows, WORK]
    key[:, 1] = final[rows, KV] if keep_kv else 0.0
    rows = rows[_pareto_rows(key, request[rows])]
    per_request: list[list[Label]] = [[] for _ in range(n_requests)]
    for row, placement in zip(rows, _backtrack(layers, rows)):
        per_request[request[row]].append(Label(tuple(final[row]), placement))
    return [
        LabelSearch(min(labels, key=lambda lab: lab.values[WORK], default=None), labels, int(n))
        for labels, n in zip(per_request, created)
    ]


@dataclass(frozen=True)
class _Pruning:
    """The pruning rules of one label pass (see the module docstring); ``limit[r, slot]``
    per request of the batch."""

    limit: Array
    cutoff: float
    lag: Lagrangian | None
    budgets: list[BudgetBound]
    keep_kv: bool
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
        idx = np.nonzero(bound < self.cutoff)[0] if math.isfinite(self.cutoff) else np.nonzero(np.isfinite(bound))[0]
        if self.beam is not None:
            idx = _best_per_node(idx, bound[idx], node[idx], self.beam)
        if idx.size <= 1:
            return idx
        v = values[idx]
        key = np.where(v + high[node[idx]] > self.limit[node[idx] // 4], v, -np.inf)  # limits that can still bind
        key[:, WORK] = v[:, WORK]
        key[:, KV] = v[:, KV] if self.keep_kv else 0.0
        return idx[_pareto_rows(key, node[idx])]

    def _lagrangian_bound(self, b: int, values: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Least work of any feasible completion, by the Lagrangian bound of each multiplier."""
        assert self.lag is not None and len(self.limit) == 1  # multipliers of one request
        lam = self.lag.lam.copy()
        lam[:, [WORK, KV]] = 0.0
        finite_limit = np.where(np.isfinite(self.limit[0]), self.limit[0], 0.0)
        rest = self.lag.bound[b].reshape(4, -1)[node]
        return (values[:, [WORK]] + rest + (values - finite_limit) @ lam.T).max(axis=1)  # type: ignore[no-any-return]


def _best_per_node(idx: np.ndarray, score: np.ndarray, node: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` rows of least ``score`` at each node."""
    order = np.lexsort((score, node))
    sorted_node = node[order]
    start = np.searchsorted(sorted_node, sorted_node)  # first position of each row's node
    rank = np.arange(len(order)) - start
    return np.sort(idx[order[rank < width]])


#: Pairwise comparisons per chunk of :func:`_pareto_rows` (bounds its memory).
PARETO_CHUNK_PAIRS = 1 << 18
#: Up to this many rows numpy's lexsort over every column beats :func:`_sort_order`
#: (measured: 0.04 vs 0.11 ms at 300 rows, 0.39 vs 0.16 ms at 1,000).
LEXSORT_ROWS = 500


def _pareto_rows(key: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``key`` that no other row of the same ``group`` dominates (<= in every
    column); identical rows keep one.

    Sorted by group, column 0 and then the other columns (or :func:`_tie_breaker` when
    there are many rows), a row can only be dominated by an earlier row of its group, so
    each row is compared with those, all groups at once as flat pairs (a float tie in the
    tie-breaker can only keep a dominated row, never drop an undominated one). Repeated
    rows go first, and columns the sort leaves non-decreasing within groups are not
    compared: they hold for every pair.

    >>> _pareto_rows(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]]), np.array([0, 0, 0, 1])).tolist()
    [0, 1, 3]
    """
    if len(key) == 0:
        return np.zeros(0, np.int64)
    group = np.zeros(len(key), np.int64) if group is None else group
    varying = [c for c in range(1, key.shape[1]) if np.any(key[:, c] != key[0, c])]
    if len(key) <= LEXSORT_ROWS:
        order = np.lexsort((*key[:, varying].T[::-1], key[:, 0], group))
    else:
        order = _sort_order(group, key[:, 0], _tie_breaker(key[:, varying]))
    columns, group = key[order][:, [0] + varying].T.copy(), group[order]
    repeat = np.zeros(len(group), dtype=bool)
    repeat[1:] = (group[1:] == group[:-1]) & np.all(columns[:, 1:] == columns[:, :-1], axis=0)
    order, columns, group = order[~repeat], columns[:, ~repeat], group[~repeat]
    first = np.searchsorted(group, group)  # the first row of each row's group
    earlier = np.arange(len(group)) - first
    same_group = group[1:] == group[:-1]
    compared = [col for col in columns[1:] if np.any((col[1:] < col[:-1]) & same_group)]
    keep = np.ones(len(group), dtype=bool)
    rows = np.flatnonzero(earlier)
    pairs_through = np.cumsum(earlier[rows])
    lo = 0
    while lo < len(rows):
        before = pairs_through[lo] - earlier[rows[lo]]
        hi = max(lo + 1, int(np.searchsorted(pairs_through, before + PARETO_CHUNK_PAIRS, side="right")))
        counts = earlier[rows[lo:hi]]
        row = np.repeat(rows[lo:hi], counts)
        other = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts - first[rows[lo:hi]], counts)
        for col in compared:  # drop pairs as soon as a column fails
            holds = col[other] <= col[row]
            row, other = row[holds], other[holds]
        keep[row] = False
        lo = hi
    return np.sort(order[keep])


def _sort_order(group: NDArray[np.int64], primary: np.ndarray, secondary: np.ndarray) -> NDArray[np.int64]:
    """``np.lexsort((secondary, primary, group))`` up to the order of rows tied in both
    floats, from one integer sort (floats' lexsort is several times slower)."""
    n = len(group)
    if (int(group.max()) + 1) * n * n >= 2**62:
        return np.lexsort((secondary, primary, group))
    by_primary = np.argsort(primary)
    sorted_primary = primary[by_primary]
    primary_rank = np.empty(n, np.int64)  # dense: equal values share a rank
    primary_rank[by_primary] = np.cumsum(np.r_[0, sorted_primary[1:] != sorted_primary[:-1]])
    secondary_rank = np.empty(n, np.int64)
    secondary_rank[np.argsort(secondary)] = np.arange(n)
    return np.argsort((group * n + primary_rank) * n + secondary_rank, kind="stable")


def _tie_breaker(key: np.ndarray) -> np.ndarray:
    """A sum of the columns, each mapped monotonically to a finite value in [-2, 1]
    (``-inf``, "this limit cannot bind", below every finite value), so that a row
    dominating another with the same column 0 has a smaller or equal sum."""
    total = np.zeros(len(key))
    for col in key.T:
        finite = np.isfinite(col)
        scale = max(float(np.abs(col[finite]).max(initial=0.0)), 1e-300)
        total += np.where(finite, col / scale, -2.0)
    return total


def _backtrack(layers: list[_Layer], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
    """The placements (one per row) of the labels at ``rows`` of the last layer."""
    sides = np.empty((len(rows), len(layers)), dtype=bool)
    for b in range(len(layers) - 1, -1, -1):
        sides[:, b] = layers[b].node[rows] % 2 == 1
        rows = layers[b].parent[rows]
    return sides


def solve_request(arrays: Arrays, r: int, incumbent: float = math.inf) -> RequestOutcome:
    """Least-work placement of request ``r``, proven optimal, or proven infeasible."""
    search = search_request(arrays, r, incumbent)
    if search.best is None:
        return RequestOutcome("infeasible", bound=math.inf, info={"labels": search.labels_created})
    work = float(search.best.values[WORK])
    return RequestOutcome("optimal", search.best.placement, work, work, {"labels": search.labels_created})


@register("dp", "exact Pareto-label DP over the F1 layer-chain graph (per request)", exact=True)
def solve(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    return solve_independently(instance, "dp", solve_request, time_limit)
