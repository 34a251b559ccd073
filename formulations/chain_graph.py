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


def edge_costs(arrays: Arrays, r: int | np.ndarray) -> dict[str, np.ndarray]:
    """Per-edge resource arrays of request ``r``, indexed ``[b, from_side, to_side]``.

    Entry ``b = 0`` is the edge out of ``src`` (its ``from_side`` is irrelevant: the prompt
    starts on the client). The sink edge's costs are in :func:`sink_costs`. ``r`` may be
    an array of requests: its axes then lead, ``[..., b, from_side, to_side]``.
    """
    a = arrays
    lead = np.shape(r)
    n_blocks = a.work.shape[1]
    cost = {name: np.zeros(lead + (n_blocks, 2, 2)) for name in RESOURCES}

    def per_block(x: np.ndarray) -> np.ndarray:  # (..., B) -> (..., B, from_side)
        return x[r][..., None]

    def per_request(x: np.ndarray) -> np.ndarray:  # (...) -> broadcast over the next axis
        return np.asarray(x[r])[..., None]

    for to in (CLIENT, SERVER):
        on_server = to == SERVER
        cost["work"][..., to] = per_block(a.work) if on_server else 0.0
        cost["kv"][..., to] = per_block(a.kv) if on_server else 0.0
        cost["client_mem"][..., to] = 0.0 if on_server else per_block(a.client_mem)
        cost["ttft"][..., to] = per_block(a.server_prefill if on_server else a.client_prefill)
        cost["tpot"][..., to] = per_block(a.server_decode if on_server else a.client_decode)
    # crossings between blocks b-1 and b
    cost["ttft"][..., 1:, CLIENT, SERVER] += per_request(a.act_up_prefill)
    cost["ttft"][..., 1:, SERVER, CLIENT] += per_request(a.act_down_prefill)
    cost["tpot"][..., 1:, CLIENT, SERVER] += per_request(a.act_up_decode)
    cost["tpot"][..., 1:, SERVER, CLIENT] += per_request(a.act_down_decode)
    # the prompt's token ids go up when block 0 is on the server
    cost["ttft"][..., 0, :, SERVER] += per_request(a.prompt_up)
    return cost


def sink_costs(arrays: Arrays, r: int | np.ndarray) -> dict[str, np.ndarray]:
    """Costs of the edge ``(anchor, B-1, side) -> sink``, indexed ``[anchor, side]``
    (``[..., anchor, side]`` for an array of requests).

    The first token goes down if the head is on the server (TTFT), and each decode step
    closes the cycle head -> embed (TPOT).
    """
    shape = np.shape(r) + (2, 2)
    ttft = np.zeros(shape)
    ttft[..., SERVER] = np.asarray(arrays.first_token_down[r])[..., None]
    tpot = np.zeros(shape)
    tpot[..., SERVER, CLIENT] = arrays.token_up_decode[r]  # head on client, embed on server
    tpot[..., CLIENT, SERVER] = arrays.token_down_decode[r]  # head on server, embed on client
    zero = np.zeros(shape)
    return {"work": zero, "kv": zero, "ttft": ttft, "tpot": tpot, "client_mem": zero}


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
