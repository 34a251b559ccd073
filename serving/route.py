"""A request's path through the client and the server, from its placement.

A placement splits the model into segments: runs of client blocks and runs of server
blocks. One *phase* (the prefill, or one decode step) alternates client time and server
items::

    delay[0], server[0], delay[1], server[1], ..., server[k-1], delay[k]

``delay[i]`` is everything the request does on its own between two server segments: the
client blocks' batch-1 compute and the crossings around them, priced exactly as in the
batch-1 cost model (the instance's compiled arrays). ``server[i]`` is one work item that
the server runs in an iteration. The phase ends when the head has produced its token;
``stream`` is the time for that token to reach the client when the head is on the
server (0 when it is on the client).

Examples
--------
>>> import numpy as np
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> route = build_route(inst.arrays, 0, np.array([False, True, False]))
>>> route.spans, [seg.tolist() for seg in route.segments]
(((1, 2),), [[False, True, False]])
>>> len(route.prefill), len(route.decode)
(2, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Arrays


@dataclass(frozen=True)
class Route:
    """One request's phases (see the module docstring); server item ``i`` runs blocks
    ``spans[i] = (lo, hi)``, ``lo`` to ``hi - 1`` of the model's ``n_blocks``."""

    spans: tuple[tuple[int, int], ...]
    n_blocks: int
    prefill: tuple[float, ...]
    decode: tuple[float, ...]
    prefill_stream: float
    decode_stream: float

    @property
    def uses_server(self) -> bool:
        return bool(self.spans)

    @property
    def segments(self) -> tuple[NDArray[np.bool_], ...]:
        """Each server item's blocks as a mask over the model's blocks."""
        masks = np.zeros((len(self.spans), self.n_blocks), dtype=bool)
        for mask, (lo, hi) in zip(masks, self.spans):
            mask[lo:hi] = True
        return tuple(masks)


def runs(placement: NDArray[np.bool_]) -> list[tuple[bool, int, int]]:
    """Maximal runs ``(on_server, start, stop)`` of equal sides.

    >>> runs(np.array([False, True, True, False]))
    [(False, 0, 1), (True, 1, 3), (False, 3, 4)]
    """
    x = np.asarray(placement, dtype=bool)
    cuts = [0] + (np.nonzero(x[1:] != x[:-1])[0] + 1).tolist() + [len(x)]
    return [(bool(x[a]), a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def _phase(parts: list[tuple[bool, int, int]], client: NDArray[np.float64], start: float, up: float, down: float) -> list[float]:
    """Delays of one phase over the runs ``parts``: ``start`` before the first block, client compute, crossings."""
    delays, pending, previous = [], start, None
    for on_server, a, b in parts:
        if previous is not None:
            pending += up if on_server else down
        if on_server:
            delays.append(pending)
            pending = 0.0
        else:
            pending += float(client[a:b].sum())
        previous = on_server
    delays.append(pending)
    return delays


def build_route(arrays: Arrays, r: int, placement: NDArray[np.bool_]) -> Route:
    """The route of request ``r`` under ``placement`` (``True`` = server)."""
    a, x = arrays, np.asarray(placement, dtype=bool)
    parts = runs(x)
    first, last = bool(x[0]), bool(x[-1])
    # The prompt starts on the client; each decode step starts where the last token is (at the head).
    prefill = _phase(parts, a.client_prefill[r], a.prompt_up[r] if first else 0.0, a.act_up_prefill[r], a.act_down_prefill[r])
    cycle = a.token_up_decode[r] if first and not last else a.token_down_decode[r] if last and not first else 0.0
    decode = _phase(parts, a.client_decode[r], float(cycle), a.act_up_decode[r], a.act_down_decode[r])
    return Route(
        spans=tuple((lo, hi) for on_server, lo, hi in parts if on_server),
        n_blocks=len(x),
        prefill=tuple(float(d) for d in prefill),
        decode=tuple(float(d) for d in decode),
        prefill_stream=float(a.first_token_down[r]) if last else 0.0,
        decode_stream=float(a.token_down_decode[r]) if last else 0.0,
    )
