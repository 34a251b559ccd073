"""F1: the layer-chain graph of one request.

Nodes are ``"src"``, ``"sink"`` and ``(anchor, b, side)``: ``side`` is where block ``b``
runs and ``anchor`` is the side of block 0, so the graph holds two copies of the chain
and the decode cycle edge head -> embed is known on the last edge. Sides are ``0`` for
the client and ``1`` for the server. Each edge carries the resource vector
``{work, kv, ttft, tpot, client_mem}``: the cost of the block it enters plus the crossing
before it. A placement is a ``src -> sink`` path; adding up an attribute along the path
gives that figure of the placement (TTFT, TPOT, server work, server KV, client memory),
so the placement problem is a resource-constrained shortest path.

Examples
--------
>>> import networkx as nx
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> g = build(inst.arrays, 0)
>>> g.number_of_nodes(), g.number_of_edges()
(12, 18)
>>> path = nx.shortest_path(g, "src", "sink", weight="ttft")
>>> placement_of(path)
'SSS'
>>> round(nx.path_weight(g, path, "ttft"), 6)
0.3105
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np

from splitllm.instance import Arrays
from splitllm.resources import E2E, EDGE_RESOURCES, Resource

#: The resource keys every edge carries (:data:`splitllm.resources.EDGE_RESOURCES`).
RESOURCES = tuple(res.key for res in EDGE_RESOURCES)
CLIENT, SERVER = 0, 1
SRC, SINK = "src", "sink"
Node = Any


EdgeCost = Callable[[Arrays, "int | np.ndarray"], np.ndarray]


def _per_block(x: np.ndarray, r: int | np.ndarray) -> np.ndarray:
    """(..., B) -> (..., B, from_side): a block's own cost, whatever side it comes from."""
    return np.asarray(x[r])[..., None]


def _per_request(x: np.ndarray, r: int | np.ndarray) -> np.ndarray:
    """(...) -> broadcast over the next axis."""
    return np.asarray(x[r])[..., None]


def _sides(arrays: Arrays, r: int | np.ndarray, server: np.ndarray | None, client: np.ndarray | None) -> np.ndarray:
    """Edges ``[..., b, from_side, to_side]`` that cost the entered block's per-block
    ``server`` or ``client`` figure (``None``: that side costs nothing)."""
    n_blocks = arrays.work.shape[1]
    cost = np.zeros(np.shape(r) + (n_blocks, 2, 2))
    for to, per_block in ((SERVER, server), (CLIENT, client)):
        if per_block is not None:
            cost[..., to] = _per_block(per_block, r)
    return cost


def _ttft_edges(a: Arrays, r: int | np.ndarray) -> np.ndarray:
    cost = _sides(a, r, a.server_prefill, a.client_prefill)
    cost[..., 1:, CLIENT, SERVER] += _per_request(a.act_up_prefill, r)  # crossings between blocks b-1 and b
    cost[..., 1:, SERVER, CLIENT] += _per_request(a.act_down_prefill, r)
    cost[..., 0, :, SERVER] += _per_request(a.prompt_up, r)  # the prompt's token ids go up when block 0 is on the server
    return cost


def _tpot_edges(a: Arrays, r: int | np.ndarray) -> np.ndarray:
    cost = _sides(a, r, a.server_decode, a.client_decode)
    cost[..., 1:, CLIENT, SERVER] += _per_request(a.act_up_decode, r)
    cost[..., 1:, SERVER, CLIENT] += _per_request(a.act_down_decode, r)
    return cost


#: Each edge resource's cost on the edges into blocks (:func:`edge_costs`), by key.
EDGE_COSTS: dict[str, EdgeCost] = {
    "work": lambda a, r: _sides(a, r, a.work, None),
    "kv": lambda a, r: _sides(a, r, a.kv, None),
    "client_mem": lambda a, r: _sides(a, r, None, a.client_mem),
    "ttft": _ttft_edges,
    "tpot": _tpot_edges,
}


def _ttft_sink(a: Arrays, r: int | np.ndarray) -> np.ndarray:
    ttft = np.zeros(np.shape(r) + (2, 2))
    ttft[..., SERVER] = np.asarray(a.first_token_down[r])[..., None]
    return ttft


def _tpot_sink(a: Arrays, r: int | np.ndarray) -> np.ndarray:
    tpot = np.zeros(np.shape(r) + (2, 2))
    tpot[..., SERVER, CLIENT] = a.token_up_decode[r]  # head on client, embed on server
    tpot[..., CLIENT, SERVER] = a.token_down_decode[r]  # head on server, embed on client
    return tpot


#: Costs on the sink edge ``[..., anchor, side]``, by key; a resource not here costs nothing there.
SINK_COSTS: dict[str, EdgeCost] = {"ttft": _ttft_sink, "tpot": _tpot_sink}


def edge_costs(arrays: Arrays, r: int | np.ndarray) -> dict[str, np.ndarray]:
    """Per-edge resource arrays of request ``r``, indexed ``[b, from_side, to_side]``.

    Entry ``b = 0`` is the edge out of ``src`` (its ``from_side`` is irrelevant: the prompt
    starts on the client). The sink edge's costs are in :func:`sink_costs`. ``r`` may be
    an array of requests: its axes then lead, ``[..., b, from_side, to_side]``.
    """
    return {name: EDGE_COSTS[name](arrays, r) for name in RESOURCES}


def sink_costs(arrays: Arrays, r: int | np.ndarray) -> dict[str, np.ndarray]:
    """Costs of the edge ``(anchor, B-1, side) -> sink``, indexed ``[anchor, side]``
    (``[..., anchor, side]`` for an array of requests).

    The first token goes down if the head is on the server (TTFT), and each decode step
    closes the cycle head -> embed (TPOT).
    """
    zero = np.zeros(np.shape(r) + (2, 2))
    return {name: SINK_COSTS[name](arrays, r) if name in SINK_COSTS else zero for name in RESOURCES}


def build(arrays: Arrays, r: int) -> nx.DiGraph:
    """The F1 graph of request ``r``: a DAG whose src -> sink paths are its placements."""
    cost = edge_costs(arrays, r)
    final = sink_costs(arrays, r)
    n_blocks = arrays.work.shape[1]
    g = nx.DiGraph(request=r, n_blocks=n_blocks)
    for anchor in (CLIENT, SERVER):
        g.add_edge(SRC, (anchor, 0, anchor), **{k: float(cost[k][0, CLIENT, anchor]) for k in RESOURCES})
        for b in range(1, n_blocks):
            for frm in (anchor,) if b == 1 else (CLIENT, SERVER):  # block 0 runs on the anchor side
                for to in (CLIENT, SERVER):
                    g.add_edge((anchor, b - 1, frm), (anchor, b, to), **{k: float(cost[k][b, frm, to]) for k in RESOURCES})
        for side in (CLIENT, SERVER):
            g.add_edge((anchor, n_blocks - 1, side), SINK, **{k: float(final[k][anchor, side]) for k in RESOURCES})
    return g


def edge_weight(res: Resource, steps: int) -> str | Callable[[Node, Node, dict[str, float]], float]:
    """A networkx ``weight`` for ``res`` on a request with ``steps`` decode steps: the edge
    attribute itself, or E2E's ``ttft + steps * tpot``.

    >>> w = edge_weight(E2E, 3)
    >>> w("u", "v", {"ttft": 1.0, "tpot": 0.5})
    2.5
    """
    if res.on_edges:
        return res.key
    if res is E2E:
        return lambda u, v, d: d["ttft"] + steps * d["tpot"]
    raise ValueError(f"no edge weight for {res.key!r}")


def placement_of(path: list[Node]) -> str:
    """The ``C``/``S`` string of a src -> sink path."""
    return "".join("S" if node[2] == SERVER else "C" for node in path[1:-1])
