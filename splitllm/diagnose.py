"""Why a request cannot be served: which limit, and by how much at best.

Each limit (TTFT, TPOT, E2E, client memory) is additive along the F1 graph, so the best
achievable value of one limit alone is a shortest path. A limit whose best value is over
it is reported with the miss; when every limit is reachable alone, they conflict.
"""

from __future__ import annotations

import networkx as nx

from splitllm.formulations import chain_graph
from splitllm.instance import Arrays
from splitllm.resources import REQUEST_LIMITS, Resource


def best_achievable(arrays: Arrays, r: int) -> dict[Resource, float]:
    """Lowest value of each per-request limit's figure that some placement of request
    ``r`` reaches, each alone (a shortest path on F1)."""
    g = chain_graph.build(arrays, r)
    steps = int(arrays.output_tokens[r]) - 1

    def shortest(res: Resource) -> float:
        if res.decode_only and steps == 0:
            return 0.0
        weight = res.key if res.on_edges else chain_graph.edge_weight(res, steps)
        return float(nx.shortest_path_length(g, chain_graph.SRC, chain_graph.SINK, weight=weight))  # type: ignore[arg-type]

    return {res: shortest(res) for res in REQUEST_LIMITS}


def request_limits(arrays: Arrays, r: int) -> dict[Resource, float]:
    """The limits of request ``r`` (``inf`` = none; TPOT is none when ``o = 1``)."""
    steps = int(arrays.output_tokens[r]) - 1
    limits = arrays.request_limits(r)
    return {res: float("inf") if res.decode_only and steps == 0 else float(limits[res.key]) for res in REQUEST_LIMITS}


def explain_infeasible(arrays: Arrays, r: int) -> str:
    """A sentence naming the limit(s) request ``r`` cannot meet and the best miss.

    Examples
    --------
    >>> from splitllm.instance import load_instance, example_path
    >>> inst = load_instance(example_path("tiny"))
    >>> import dataclasses, numpy as np
    >>> tight = dataclasses.replace(inst.arrays, limits={**inst.arrays.limits, "ttft": np.array([0.1, np.inf])})
    >>> explain_infeasible(tight, 0)
    'ttft_s: best achievable 0.3105 s > SLO 0.1 s (misses by 0.2105 s, 210.5%)'
    """
    limits = request_limits(arrays, r)
    best = best_achievable(arrays, r)
    misses = []
    for res, limit in limits.items():
        if best[res] > limit:
            share = (best[res] - limit) / limit * 100 if limit > 1e-300 else float("inf")
            pct = f", {share:.4g}%" if share < 1e9 else ""  # a tiny limit gives no useful share
            misses.append(
                f"{res.label}: best achievable {best[res]:.6g} {res.unit} > {res.limit_word} {limit:.6g} {res.unit} "
                f"(misses by {best[res] - limit:.4g} {res.unit}{pct})"
            )
    if misses:
        return "; ".join(misses)
    bounded = [res.limit_name for res, limit in limits.items() if limit != float("inf")]
    return f"no placement meets {', '.join(bounded)} together (each alone is achievable)"
