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

The registered ``dp`` solver searches the distinct requests in batches
(:func:`least_work_search`): a beam pass seeds each request's incumbent, and one exact
label pass over the whole batch, pruned by the incumbents, the remaining minimum and
dominance, proves or beats it. It finds the same least work as the per-request search
above; among placements of equal work it may pick another.

The DP works on F1's edge costs in layered array form, ``cost[b, from_side, to_side]``
(:func:`splitllm.formulations.chain_graph.edge_costs`); :func:`label_dp` runs it on a
networkx F1 graph. With ``keep_coupled=True`` (the columns of F3) it keeps every
Pareto-optimal feasible placement in the coupled resources (work, KV) and uses no
incumbent.

This module is the search and its incumbents; the pieces live by concept:
:mod:`~splitllm.solvers.dp_costs` (label slots, edge costs, limits),
:mod:`~splitllm.solvers.dp_labels` (the label pass and its pruning),
:mod:`~splitllm.solvers.dp_bounds` (remaining-path, Lagrangian and budget bounds) and
:mod:`~splitllm.solvers.pareto` (the dominance filter).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> best = solve_request(inst.arrays, 0)
>>> best.status, "".join("S" if s else "C" for s in best.placement), round(best.work, 6)
('optimal', 'CSC', 0.29)
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.dp_bounds import BudgetBound, Lagrangian, budget_bounds, lagrangian, lagrangian_paths, to_sink
from splitllm.solvers.dp_costs import COUPLED_SLOTS, SLOTS, WORK, Array, feasible, graph_costs, limit_vector, path_values, request_costs
from splitllm.solvers.dp_labels import BEAM_WIDTH, Label, LabelSearch, Pruning, label_pass, pass_bounds
from splitllm.solvers.per_request import RequestOutcome, solve_in_batches
from splitllm.tolerances import INCUMBENT_RTOL

#: Distinct requests per batched least-work search (:func:`least_work_search`; bounds
#: its memory), and labels per node of the beam that seeds its incumbents.
LEAST_WORK_BATCH = 1024
SEED_BEAM = 2


def label_dp(
    g: nx.DiGraph, limits: dict[str, float], output_tokens: int, incumbent: float = math.inf, keep_coupled: bool = False
) -> LabelSearch:
    """Resource-constrained shortest path (least server work) over an F1 graph.

    ``limits`` has ``ttft``, ``tpot``, ``e2e``, ``client_mem`` (``inf`` = unbounded).
    Labels that cannot beat ``incumbent`` are pruned, so ``best`` is ``None`` when no
    placement is strictly better than it.

    Examples
    --------
    >>> from splitllm.instance import load_instance, example_path
    >>> a = load_instance(example_path("tiny")).arrays
    >>> from splitllm.formulations import chain_graph
    >>> found = label_dp(chain_graph.build(a, 0), a.request_limits(0), int(a.output_tokens[0]))
    >>> found.best.placement.tolist() == search_request(a, 0).best.placement.tolist()
    True
    """
    steps = output_tokens - 1
    cost, sink = graph_costs(g, steps)
    return _search(cost, sink, limit_vector(limits, steps), incumbent, keep_coupled)


def search_request(arrays: Arrays, r: int, incumbent: float = math.inf, keep_coupled: bool = False) -> LabelSearch:
    """:func:`label_dp` for request ``r`` straight from the compiled arrays."""
    return _search(*request_costs(arrays, r), incumbent, keep_coupled)


def pareto_search(arrays: Arrays, rows: NDArray[np.int64]) -> list[LabelSearch]:
    """``search_request(arrays, r, keep_coupled=True)`` for every ``r`` in ``rows``, in one
    label pass over the whole batch: numpy's per-call cost is paid once per block instead
    of once per block and request (measured in bench/README-scale.md).

    Examples
    --------
    >>> from splitllm.instance import load_instance, example_path
    >>> a = load_instance(example_path("tiny")).arrays
    >>> [[lab.placement.tolist() for lab in s.pareto] for s in pareto_search(a, np.array([0, 1]))]
    [[[False, True, False]], [[True, True, False]]]
    """
    cost, sink, limit = request_costs(arrays, np.asarray(rows, dtype=np.int64))
    return _pareto_batch(np.ascontiguousarray(np.moveaxis(cost, 1, 0)), sink, limit)  # the batch axis after the block axis


def _pareto_batch(cost: np.ndarray, sink: np.ndarray, limit: Array) -> list[LabelSearch]:
    """The ``keep_coupled`` label pass over a batch (``cost[b, r, from, to, slot]``,
    ``sink[r, anchor, side, slot]``, ``limit[r, slot]``). No incumbent prunes here, so
    the budget and Lagrangian bounds would only repeat the remaining-minimum test.

    A request whose all-client placement is feasible needs no pass: that placement has
    no server work and no KV, so it alone is the Pareto set.
    """
    all_client = cost[:, :, 0, 0].sum(axis=0) + sink[:, 0, 0]  # [r, slot]
    local = feasible(all_client, limit) & np.all(all_client[:, COUPLED_SLOTS] == 0, axis=1)
    rest = np.flatnonzero(~local)
    cost, sink = cost[:, rest], sink[rest]
    searched = iter(label_pass(cost, sink, limit[rest], *pass_bounds(cost, sink), math.inf, None, [], keep_coupled=True))
    nothing_on_server = np.zeros(cost.shape[0], dtype=bool)
    results = []
    for is_local, values in zip(local, all_client):
        label = Label(tuple(values), nothing_on_server)
        results.append(LabelSearch(label, [label], 0) if is_local else next(searched))
    return results


def _search(cost: np.ndarray, sink: np.ndarray, limit: Array, incumbent: float, keep_coupled: bool) -> LabelSearch:
    """The search of one request (``cost[b, from, to, slot]``, ``limit[slot]``)."""
    if keep_coupled:
        return _pareto_batch(cost[:, None], sink[None], limit[None])[0]
    low = to_sink(cost, sink, np.minimum)
    high = to_sink(cost, sink, np.maximum)
    incumbent_label = None
    lag = None
    budgets = budget_bounds(cost, sink, limit, high)
    if len(budgets) > 1:  # with one binding limit its budget bound is the stronger one
        lag = lagrangian(cost, sink, limit)
        candidates = lagrangian_paths(cost, sink, lag)
        values = path_values(cost, sink, candidates)
        ok = np.nonzero(feasible(values, limit))[0]
        if ok.size:
            i = ok[np.argmin(values[ok, WORK])]
            if values[i, WORK] < incumbent:
                incumbent, incumbent_label = float(values[i, WORK]), Label(tuple(values[i]), candidates[i])
    batch = (cost[:, None], sink[None], limit[None], low[:, None], high[:, None])  # label_pass' layout
    # Incumbents, cheapest first: follow the bounds greedily, then a narrow beam. When
    # one meets the lower bound at the source it is optimal and the search is over.
    source_bound = _source_bound(cost, low, lag, budgets, limit) * (1 + INCUMBENT_RTOL)
    heuristics = (
        lambda: _relaxed_incumbent(cost, sink, limit, budgets),
        lambda: _guided_walk(cost, sink, limit, low, Pruning(limit[None], np.full(1, math.inf), lag, budgets, False, None)),
        lambda: label_pass(*batch, incumbent, lag, budgets, keep_coupled=False, beam=BEAM_WIDTH)[0].best,
    )
    for heuristic in heuristics:
        found = heuristic()
        if found is not None and found.values[WORK] < incumbent:
            incumbent, incumbent_label = found.values[WORK], found
        if incumbent <= source_bound:
            return LabelSearch(incumbent_label, [incumbent_label], 0)  # type: ignore[list-item]
    search = label_pass(*batch, incumbent, lag, budgets, keep_coupled=False)[0]
    best = search.best if search.best is not None else incumbent_label
    return LabelSearch(best, [best] if best else [], search.labels_created)


def _relaxed_incumbent(cost: np.ndarray, sink: np.ndarray, limit: Array, budgets: list[BudgetBound]) -> Label | None:
    """With one binding limit, the placement its budget table leads to, if truly feasible."""
    if len(budgets) != 1:
        return None
    placement = budgets[0].relaxed_placement(cost)
    if placement is None:
        return None
    values = path_values(cost, sink, placement[None])
    return Label(tuple(map(float, values[0])), placement) if feasible(values, limit)[0] else None


def _source_bound(cost: np.ndarray, low: np.ndarray, lag: Lagrangian | None, budgets: list[BudgetBound], limit: Array) -> float:
    """The least work any feasible placement can have, by the pruning bounds at block 0."""
    prune = Pruning(limit[None], np.full(1, math.inf), lag, budgets, False, None)
    anchors = np.array([0, 1])
    return float(prune.lower_bound(0, cost[0, 0, anchors], 3 * anchors, low[0].reshape(4, SLOTS)).min())


def _guided_walk(cost: np.ndarray, sink: np.ndarray, limit: Array, low: np.ndarray, prune: Pruning) -> Label | None:
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
    ok = np.nonzero(feasible(final, limit))[0]
    if not ok.size:
        return None
    best = ok[np.argmin(final[ok, WORK])]
    return Label(tuple(final[best]), np.array([s[best] for s in sides], dtype=bool))


def least_work_search(arrays: Arrays, rows: NDArray[np.int64]) -> list[LabelSearch]:
    """``search_request(arrays, r)`` for every ``r`` in ``rows``, as two label passes over
    the whole batch: a beam of :data:`SEED_BEAM` labels per node seeds each request's
    incumbent, then the exact pass, pruned by the incumbents, the remaining minimum and
    dominance, beats or proves it. Per-request bounds are not built: numpy's per-call
    cost is paid once per block for the whole batch. The least work is the same as
    :func:`search_request`'s; among placements of equal work it may pick another.

    >>> from splitllm.instance import load_instance, example_path
    >>> a = load_instance(example_path("tiny")).arrays
    >>> [s.best.placement.tolist() for s in least_work_search(a, np.array([0, 1]))]
    [[False, True, False], [True, True, False]]
    """
    cost, sink, limit = request_costs(arrays, np.asarray(rows, dtype=np.int64))
    cost = np.ascontiguousarray(np.moveaxis(cost, 1, 0))  # label_pass' layout: the batch axis after the block axis
    batch = (cost, sink, limit, *pass_bounds(cost, sink))
    seeds = label_pass(*batch, math.inf, None, [], keep_coupled=False, beam=SEED_BEAM)
    incumbent = np.array([math.inf if s.best is None else s.best.values[WORK] for s in seeds])
    exact = label_pass(*batch, incumbent, None, [], keep_coupled=False)
    results = []
    for seed, found in zip(seeds, exact):
        best = found.best if found.best is not None else seed.best
        results.append(LabelSearch(best, [] if best is None else [best], seed.labels_created + found.labels_created))
    return results


def solve_request(arrays: Arrays, r: int, incumbent: float = math.inf) -> RequestOutcome:
    """Least-work placement of request ``r``, proven optimal, or proven infeasible."""
    return _outcome(search_request(arrays, r, incumbent))


def solve_requests(arrays: Arrays, rows: NDArray[np.int64]) -> list[RequestOutcome]:
    """:func:`solve_request` for every request of ``rows``, batched (:func:`least_work_search`)."""
    return [_outcome(search) for search in least_work_search(arrays, rows)]


def _outcome(search: LabelSearch) -> RequestOutcome:
    info = {"labels": search.labels_created}
    if search.best is None:
        return RequestOutcome("infeasible", bound=math.inf, info=info)
    work = float(search.best.values[WORK])
    return RequestOutcome("optimal", search.best.placement, work, work, info)


@register("dp", "exact Pareto-label DP over the F1 layer-chain graph (per request)", exact=True)
def solve(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    return solve_in_batches(instance, "dp", solve_requests, time_limit, LEAST_WORK_BATCH)
