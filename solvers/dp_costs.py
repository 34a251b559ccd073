"""The exact DP's arrays: label slots, edge costs and limits of F1 in layered form.

A label's value vector has one slot per resource of :data:`splitllm.resources.RESOURCES`
(:data:`splitllm.resources.SLOT`): server work and KV (objectives), TTFT, TPOT, E2E and
client memory (limited). Edge costs are ``cost[b, from_side, to_side, slot]`` (block
``b`` entered from ``from_side``) and sink costs ``sink[anchor, side, slot]``
(:func:`splitllm.formulations.chain_graph.edge_costs`); a batch of requests adds leading
axes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from splitllm.formulations import chain_graph
from splitllm.instance import Arrays
from splitllm.resources import COUPLED, E2E, REQUEST_LIMITS, RESOURCES, SLOT
from splitllm.tolerances import FEASIBILITY_RTOL

WORK, KV = SLOT["work"], SLOT["kv"]
#: The coupled resources' slots, and those of them traded against work in Pareto sets.
COUPLED_SLOTS = [SLOT[res.key] for res in COUPLED]
TRADED = [slot for slot in COUPLED_SLOTS if slot != WORK]
#: The slots held to a per-request limit.
LIMITED = [SLOT[res.key] for res in REQUEST_LIMITS]
SLOTS = len(RESOURCES)
Array = NDArray[np.float64]


def stack_slots(costs: dict[str, np.ndarray], steps: int | np.ndarray) -> np.ndarray:
    """Resource dict of equal-shaped arrays (F1's edge resources) -> one array with the
    slots last; E2E is ``ttft + steps * tpot``.

    ``steps`` (decode steps) is one number or one per request of a batch (leading axes).
    """
    steps = np.reshape(steps, np.shape(steps) + (1,) * (costs["ttft"].ndim - np.ndim(steps)))
    e2e = costs["ttft"] + steps * costs["tpot"]
    return np.stack([e2e if res is E2E else costs[res.key] for res in RESOURCES], axis=-1)


def limit_vector(limits: dict[str, float | Array], steps: int | NDArray[np.int64]) -> Array:
    """``limit[..., slot]`` (``inf`` for unlimited slots and for TPOT without decode
    steps); the limits and ``steps`` may be arrays over a batch of requests."""
    decoding = np.asarray(steps) > 0
    per_slot = [
        np.where(decoding, limits[res.key], np.inf) if res.decode_only else limits.get(res.key, np.inf) for res in RESOURCES
    ]
    return np.stack(np.broadcast_arrays(*per_slot), axis=-1).astype(np.float64)


def graph_costs(g: nx.DiGraph, steps: int) -> tuple[np.ndarray, np.ndarray]:
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
    return stack_slots(cost, steps), stack_slots(sink, steps)


def request_costs(arrays: Arrays, r: int | NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray, Array]:
    """Edge costs ``[..., b, from, to, slot]``, sink costs and limits of request ``r`` (or
    of each request of an array, whose axes lead) straight from the compiled arrays."""
    steps = arrays.output_tokens[r].astype(np.int64) - 1
    cost = stack_slots(chain_graph.edge_costs(arrays, r), steps)
    sink = stack_slots(chain_graph.sink_costs(arrays, r), steps)
    return cost, sink, limit_vector(arrays.request_limits(r), steps)


def path_values(cost: np.ndarray, sink: np.ndarray, placements: np.ndarray) -> np.ndarray:
    """Resource values (n x 6) of whole placements."""
    sides = placements.astype(np.int64)
    n_blocks = cost.shape[0]
    prev = np.concatenate([np.zeros((len(sides), 1), np.int64), sides[:, :-1]], axis=1)
    values = cost[np.arange(n_blocks)[None, :], prev, sides].sum(axis=1)
    return values + sink[sides[:, 0], sides[:, -1]]


def feasible(values: np.ndarray, limit: Array) -> np.ndarray:
    """Rows of ``values`` within ``limit`` (one limit vector, or one per row)."""
    return np.all(values[:, LIMITED] <= limit[..., LIMITED] * (1 + FEASIBILITY_RTOL), axis=1)
