"""``dp``: the exact Pareto-label DP over the F1 layer-chain graph.

A label is one partial placement's resource vector at a node: server work, server KV,
TTFT, TPOT, E2E and client memory so far. Labels move along the graph in topological
order and are pruned three ways, each safe for optimality:

1. *Lower bounds*: a label whose value plus the least that the rest of any path adds
   breaks a limit can never finish feasible; one whose work plus the least remaining
   work reaches the incumbent can never improve on it.
2. *Limits that can no longer bind*: if a label's value plus the most the rest of any
   path adds still meets a limit, that limit is dropped from the label's dominance key.
3. *Dominance*: a label no better than another in every key that can still bind is
   dropped; identical keys merge into one label.

With ``keep_kv=True`` (the columns of F3) the DP keeps every Pareto-optimal feasible
placement in (work, kv) instead of one optimum, and no incumbent is used.

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
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from splitllm.formulations import chain_graph
from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.per_request import RequestOutcome, solve_independently

# Label value slots. WORK and KV are objectives; the others are limited.
WORK, KV, TTFT, TPOT, E2E, MEM = range(6)
LIMITED = (TTFT, TPOT, E2E, MEM)
Values = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Label:
    values: Values
    node: Any
    parent: Label | None


@dataclass(frozen=True)
class LabelSearch:
    """What :func:`label_dp` found: the best sink label (or all Pareto ones) and a count."""

    best: Label | None
    pareto: list[Label]
    labels_created: int


def _edge_values(data: dict[str, float], steps: int) -> Values:
    return (data["work"], data["kv"], data["ttft"], data["tpot"], data["ttft"] + steps * data["tpot"], data["client_mem"])


def _bounds_to_sink(g: nx.DiGraph, order: list[Any], steps: int) -> tuple[dict[Any, Values], dict[Any, Values]]:
    """Least and most each slot can still grow from every node to the sink."""
    low: dict[Any, Values] = {chain_graph.SINK: (0.0,) * 6}  # type: ignore[dict-item]
    high: dict[Any, Values] = {chain_graph.SINK: (0.0,) * 6}  # type: ignore[dict-item]
    for node in reversed(order):
        if node == chain_graph.SINK:
            continue
        outs = [(_edge_values(d, steps), v) for _, v, d in g.out_edges(node, data=True)]
        low[node] = tuple(min(c[k] + low[v][k] for c, v in outs) for k in range(6))  # type: ignore[assignment]
        high[node] = tuple(max(c[k] + high[v][k] for c, v in outs) for k in range(6))  # type: ignore[assignment]
    return low, high


def label_dp(
    g: nx.DiGraph,
    limits: dict[str, float],
    output_tokens: int,
    incumbent: float = math.inf,
    keep_kv: bool = False,
) -> LabelSearch:
    """Resource-constrained shortest path (least server work) over an F1 graph.

    ``limits`` has ``ttft``, ``tpot``, ``e2e``, ``client_mem`` (``inf`` = unbounded).
    Labels that cannot beat ``incumbent`` are pruned, so ``best`` is ``None`` when no
    placement is strictly better than it.
    """
    steps = output_tokens - 1
    limit = {TTFT: limits["ttft"], TPOT: limits["tpot"] if steps > 0 else math.inf, E2E: limits["e2e"], MEM: limits["client_mem"]}
    if keep_kv:
        incumbent = math.inf
    order = list(nx.topological_sort(g))
    low, high = _bounds_to_sink(g, order, steps)
    labels: dict[Any, list[Label]] = {chain_graph.SRC: [Label((0.0,) * 6, chain_graph.SRC, None)]}  # type: ignore[arg-type]
    created = 0
    for node in order[1:]:
        lo, hi = low[node], high[node]
        candidates: list[tuple[tuple[float, ...], Label]] = []
        for pred, _, data in g.in_edges(node, data=True):
            cost = _edge_values(data, steps)
            for label in labels.get(pred, ()):
                values = tuple(a + b for a, b in zip(label.values, cost))
                created += 1
                if values[WORK] + lo[WORK] >= incumbent or any(values[k] + lo[k] > limit[k] for k in LIMITED):
                    continue
                key = (values[WORK], values[KV] if keep_kv else 0.0) + tuple(
                    values[k] if values[k] + hi[k] > limit[k] else -math.inf for k in LIMITED
                )
                candidates.append((key, Label(values, node, label)))  # type: ignore[arg-type]
        labels[node] = _pareto_front(candidates)
    final = labels.get(chain_graph.SINK, [])
    best = min(final, key=lambda lab: lab.values[WORK], default=None)
    return LabelSearch(best, final, created)


def _pareto_front(candidates: list[tuple[tuple[float, ...], Label]]) -> list[Label]:
    """Labels whose key no other key dominates; identical keys merge into the first."""
    candidates.sort(key=lambda item: item[0])
    kept: list[tuple[float, ...]] = []
    front: list[Label] = []
    for key, label in candidates:
        if not any(all(a <= b for a, b in zip(other, key)) for other in kept):
            kept.append(key)
            front.append(label)
    return front


def placement_of(label: Label) -> np.ndarray:
    """The boolean placement (True = server) of a sink label, by backtracking."""
    sides = []
    node = label.parent
    while node is not None and node.node != chain_graph.SRC:
        sides.append(node.node[2] == chain_graph.SERVER)
        node = node.parent
    return np.array(sides[::-1], dtype=bool)


def request_limits(arrays: Arrays, r: int) -> dict[str, float]:
    """The limits of request ``r`` in the F1 graph's resource names."""
    return {
        "ttft": float(arrays.ttft_limit[r]),
        "tpot": float(arrays.tpot_limit[r]),
        "e2e": float(arrays.e2e_limit[r]),
        "client_mem": float(arrays.mem_limit[r]),
    }


def solve_request(arrays: Arrays, r: int, incumbent: float = math.inf) -> RequestOutcome:
    """Least-work placement of request ``r``, proven optimal, or proven infeasible."""
    g = chain_graph.build(arrays, r)
    search = label_dp(g, request_limits(arrays, r), int(arrays.output_tokens[r]), incumbent)
    if search.best is None:
        return RequestOutcome("infeasible", bound=math.inf, info={"labels": search.labels_created})
    work = search.best.values[WORK]
    return RequestOutcome("optimal", placement_of(search.best), work, work, {"labels": search.labels_created})


@register("dp", "exact Pareto-label DP over the F1 layer-chain graph (per request)", exact=True)
def solve(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    return solve_independently(instance, "dp", solve_request, time_limit)
