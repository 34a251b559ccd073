"""``batch-online``: place each arriving request given the server's current batch.

A throughput placement (F5) kept up to date as requests arrive. The requests in flight
(arrived, sent, not finished) keep their placements: moving a block of a running request
would move its KV cache, which nothing prices. At each arrival instant the newcomers are
placed one at a time (heaviest first, then in request order) by ``batch-greedy``'s rule
with its TTFT option, the in-flight batch taken as already admitted: among all-server,
all-client and every server prefix and suffix, a candidate is acceptable when, with the
newcomer added to the batch:

* ``T``, the decode iteration time over every in-flight request's server blocks
  (F5's ``T``: one token each, attention at ``prompt + output`` tokens), still keeps every
  in-flight request that was placed with a promise within it (``client decode +
  crossings + T * (s + w) <= tpot_s``), the newcomer's included;
* the newcomer's batch-1 TTFT (the cost model of one request alone: client prefill,
  crossings, server prefill at batch 1) meets its ``ttft_s``: F5 prices the decode step
  only, and a placement that moves the head to a slow client can break TTFT;
* its client memory holds and the server KV of the whole batch fits.

A batch can already be past a promise or the KV capacity (requests sent without a
promise, below, add to it): a candidate is then still acceptable when it makes
neither worse, i.e. does not raise ``T`` and adds no server KV, as an all-client
placement does.

The acceptable candidate with the least ``T`` is kept (ties: the fewest server blocks):
the server does as little as the batch's promises allow. A newcomer with no acceptable
candidate is sent all on the server without a promise: it lengthens ``T`` for the
others and does not constrain later arrivals. So is one with a single output token (it
never decodes). Every request is sent.

The warm start is the batch itself: each arrival re-solves only the newcomers, so an
arrival costs one vectorised evaluation of about ``2 B`` candidates over the batch's
per-block counts, not a solve of the whole batch. The policy's wall time is measured and
reported; with ``--placement-latency`` each call's wall time delays the requests it
placed, in simulated time.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.batched import server_costs
>>> inst = load_instance(example_path("llama2-7b"))
>>> placer = BatchOnline(inst, server_costs(inst, "vllm"), kv_capacity_bytes=4e10)
>>> x = np.ones((inst.n_requests, inst.n_blocks), bool)
>>> placer.place(0.0, [0, 1], [], x).tolist()
[True, True]
>>> bool(placer.promised[0]) and placer.wall_s >= 0
True
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import BatchedCosts, server_costs
from splitllm.formulations.batch_candidates import best_candidate, candidates
from splitllm.formulations.batch_data import BatchState, build_data
from splitllm.instance import Instance
from splitllm.serving.registry import Placement, PolicySpec, Server, register_policy

POLICY = "batch-online"


class BatchOnline:
    """The ``batch-online`` placer of one simulation (see the module docstring).

    ``costs`` are the simulated server's batched tables, ``kv_capacity_bytes`` its KV
    cache. ``promised[r]`` says whether request ``r`` was placed with a TPOT promise;
    ``wall_s`` accumulates the time spent placing.
    """

    def __init__(self, inst: Instance, costs: BatchedCosts, kv_capacity_bytes: float) -> None:
        data = build_data(inst, costs, ttft=True, decoding_only=False)
        self.data = replace(data, kv_capacity=float(kv_capacity_bytes))
        self.cand = candidates(inst.n_blocks)
        # Per request: the most T may be for its promise to hold (inf: no promise to keep).
        self.t_cap = np.full(inst.n_requests, np.inf)
        self.promised = np.zeros(inst.n_requests, dtype=bool)
        self.wall_s = 0.0

    def place(self, now: float, arriving: list[int], in_flight: list[int], placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Write the newcomers' rows of ``placements``; every one is sent."""
        started = time.perf_counter()
        rows = np.asarray(in_flight, dtype=np.int64)
        batch = BatchState(self.data, placements[rows], rows, self.t_cap[rows])
        a = self.data.instance.arrays
        for r in sorted(arriving, key=lambda i: (-a.weight[i], i)):
            pick = best_candidate(batch, r, self.cand) if a.output_tokens[r] >= 2 else None
            if pick is None:
                placements[r] = True
            else:
                k, self.t_cap[r] = pick
                placements[r], self.promised[r] = self.cand[k], True
            batch.add(r, placements[r], self.t_cap[r])
        self.wall_s += time.perf_counter() - started
        return np.ones(len(arriving), dtype=bool)


@register_policy(POLICY, "each arrival placed given the server's current batch (F5 kept up to date)", kind="online")
def batch_online(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    """The ``batch-online`` policy: a :class:`BatchOnline` placer per simulation, on the simulated server."""
    n, b = inst.n_requests, inst.n_blocks
    kv = inst.arrays.kv_capacity if server.kv_capacity_bytes is None else server.kv_capacity_bytes
    placer = partial(BatchOnline, inst, server_costs(inst, server.engine), kv)
    return Placement(policy, np.ones((n, b), bool), np.ones(n, bool), 0.0, np.zeros(n), online=placer)
