"""Why a request cannot be served: which limit, and by how much at best.

Each limit (TTFT, TPOT, E2E, client memory) is additive along the F1 graph, so the best
achievable value of one limit alone is a shortest path. A limit whose best value is over
it is reported with the miss; when every limit is reachable alone, they conflict.
"""

from __future__ import annotations

import networkx as nx

from splitllm.formulations import chain_graph
from splitllm.instance import Arrays


def best_achievable(arrays: Arrays, r: int) -> dict[str, float]:
    """Lowest TTFT, TPOT, E2E and client memory that some placement of request ``r`` reaches."""
    g = chain_graph.build(arrays, r)
    steps = int(arrays.output_tokens[r]) - 1

    def shortest(weight: str | object) -> float:
        return float(nx.shortest_path_length(g, chain_graph.SRC, chain_graph.SINK, weight=weight))  # type: ignore[arg-type]

    return {
        "ttft_s": shortest("ttft"),
        "tpot_s": shortest("tpot") if steps > 0 else 0.0,
        "e2e_s": shortest(lambda u, v, d: d["ttft"] + steps * d["tpot"]),
        "memory_bytes": shortest("client_mem"),
    }


def explain_infeasible(arrays: Arrays, r: int) -> str:
    """A sentence naming the limit(s) request ``r`` cannot meet and the best miss.

    Examples
    --------
    >>> from splitllm.instance import load_instance, example_path
    >>> inst = load_instance(example_path("tiny"))
    >>> import dataclasses, numpy as np
    >>> tight = dataclasses.replace(inst.arrays, ttft_limit=np.array([0.1, np.inf]))
    >>> explain_infeasible(tight, 0)
    'ttft_s: best achievable 0.3105 s > SLO 0.1 s (misses by 0.2105 s, 210.5%)'
    """
    limits = {
        "ttft_s": arrays.ttft_limit[r],
        "tpot_s": arrays.tpot_limit[r] if arrays.output_tokens[r] > 1 else float("inf"),
        "e2e_s": arrays.e2e_limit[r],
        "memory_bytes": arrays.mem_limit[r],
    }
    best = best_achievable(arrays, r)
    misses = []
    for name, limit in limits.items():
        if best[name] > limit:
            unit, what = ("B", "limit") if name == "memory_bytes" else ("s", "SLO")
            label = "client memory" if name == "memory_bytes" else name
            share = (best[name] - limit) / limit * 100 if limit > 1e-300 else float("inf")
            pct = f", {share:.1f}%" if share < 1e9 else ""  # a tiny limit gives no useful share
            misses.append(
                f"{label}: best achievable {best[name]:.6g} {unit} > {what} {limit:.6g} {unit} "
                f"(misses by {best[name] - limit:.4g} {unit}{pct})"
            )
    if misses:
        return "; ".join(misses)
    bounded = [name for name, limit in limits.items() if limit != float("inf")]
    return f"no placement meets {', '.join(bounded)} together (each alone is achievable)"
