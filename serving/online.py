"""``batch-online``: place each arriving request given the server's current batch.

A throughput placement (F5) kept up to date as requests arrive. The requests in flight
(arrived, sent, not finished) keep their placements: moving a block of a running request
would move its KV cache, which nothing prices. At each arrival instant the newcomers are
placed one at a time (heaviest first, then in request order) among the candidates of
``batch-greedy`` (all-server, all-client, every server prefix and suffix). A candidate is
acceptable when, with the newcomer added to the batch:

* ``T``, the decode iteration time over every in-flight request's server blocks
  (F5's ``T``: one token each, attention at ``prompt + output`` tokens), still keeps every
  in-flight request that was placed with a promise within it (``client decode +
  crossings + T * (s + w) <= tpot_s``), the newcomer's included;
* the newcomer's batch-1 TTFT (the cost model of one request alone: client prefill,
  crossings, server prefill at batch 1) meets its ``ttft_s``: F5 prices the decode step
  only, and a placement that moves the head to a slow client can break TTFT;
* its client memory holds and the server KV of the whole batch fits.

The acceptable candidate with the least ``T`` is kept (ties: the fewest server blocks):
the server does as little as the batch's promises allow. A newcomer with no acceptable
candidate is sent all on the server without a promise (it does not constrain later
arrivals); so is one with a single output token (it never decodes). Every request is sent.

The warm start is the batch itself: each arrival re-solves only the newcomers, so an
arrival costs one vectorised evaluation of about ``2 B`` candidates over the batch's
per-block counts, not a solve of the whole batch. The policy's wall time is measured and
reported, not charged in simulated time.

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

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import BatchedCosts
from splitllm.batch_evaluator import cycle_factor
from splitllm.evaluator import exceeds, request_metrics
from splitllm.formulations.batch_data import build_data
from splitllm.instance import Instance
from splitllm.solvers.batch_greedy import candidates

POLICY = "batch-online"


class BatchOnline:
    """The ``batch-online`` placer of one simulation (see the module docstring).

    ``costs`` are the simulated server's batched tables, ``kv_capacity_bytes`` its KV
    cache. ``promised[r]`` says whether request ``r`` was placed with a TPOT promise;
    ``wall_s`` accumulates the time spent placing.
    """

    def __init__(self, inst: Instance, costs: BatchedCosts, kv_capacity_bytes: float) -> None:
        self.data = replace(build_data(inst, costs, decoding_only=False), kv_capacity=float(kv_capacity_bytes))
        self.cand = candidates(inst.n_blocks)
        self.factor = cycle_factor(self.cand)
        self.cand_layers = (self.cand & self.data.is_layer).sum(axis=1)
        self.cand_any = self.cand.any(axis=1)
        # Per request: the most T may be for its promise to hold (inf: no promise to keep).
        self.t_cap = np.full(inst.n_requests, np.inf)
        self.promised = np.zeros(inst.n_requests, dtype=bool)
        self.wall_s = 0.0

    def place(self, now: float, arriving: list[int], in_flight: list[int], placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Write the newcomers' rows of ``placements``; every one is sent."""
        started = time.perf_counter()
        batch = _Batch.of(self, placements[in_flight], np.asarray(in_flight, dtype=np.int64))
        weight = self.data.instance.arrays.weight
        for r in sorted(arriving, key=lambda i: (-weight[i], i)):
            placements[r] = self._place_one(r, batch)
            batch.add(self, r, placements[r])
        self.wall_s += time.perf_counter() - started
        return np.ones(len(arriving), dtype=bool)

    def _place_one(self, r: int, batch: _Batch) -> NDArray[np.bool_]:
        data, a = self.data, self.data.instance.arrays
        all_server = np.ones(data.n_blocks, dtype=bool)
        if a.output_tokens[r] < 2:
            return all_server
        rows = np.full(len(self.cand), r)
        slack, factor = data.tpot_slack(r, self.cand)
        t = batch.t_with(self, r)
        ttft = request_metrics(a, rows, self.cand).ttft
        mem = np.where(self.cand, 0.0, a.client_mem[r]).sum(axis=1)
        kv = batch.kv + (self.cand * a.kv[r]).sum(axis=1)
        ok = (
            (t * factor <= slack)
            & (t <= batch.t_cap)
            & ~exceeds(ttft, a.ttft_limit[r])
            & ~exceeds(mem, a.client_mem_limit[r])
            & ~exceeds(kv, data.kv_capacity)
        )
        if not ok.any():
            return all_server
        k = int(np.lexsort((self.cand.sum(axis=1), np.where(ok, t, np.inf)))[0])
        self.promised[r] = True
        self.t_cap[r] = slack[k] / factor[k] if factor[k] else np.inf
        return self.cand[k]


class _Batch:
    """The in-flight batch as F5 sees it: per-block server counts and the fixed parts of ``T``."""

    def __init__(self, counts: NDArray[np.int64], attn_s: float, scheduled: int, kv: float, t_cap: float) -> None:
        self.counts, self.attn_s, self.scheduled, self.kv, self.t_cap = counts, attn_s, scheduled, kv, t_cap

    @classmethod
    def of(cls, placer: BatchOnline, x: NDArray[np.bool_], rows: NDArray[np.int64]) -> _Batch:
        data, a = placer.data, placer.data.instance.arrays
        layers = (x & data.is_layer).sum(axis=1)
        cap = float(placer.t_cap[rows].min()) if len(rows) else np.inf
        return cls(x.sum(axis=0), float(data.attn[rows] @ layers), int(x.any(axis=1).sum()),
                   float((x * a.kv[rows]).sum()), cap)

    def t_with(self, placer: BatchOnline, r: int) -> NDArray[np.float64]:
        """``T`` with request ``r`` added at each candidate placement."""
        data, cand = placer.data, placer.cand
        fixed = data.fixed[np.arange(data.n_blocks), self.counts + cand].sum(axis=1)
        scheduled = self.scheduled + placer.cand_any
        return (data.costs.overhead_s + fixed + self.attn_s + data.attn[r] * placer.cand_layers
                + data.costs.overhead_per_seq_s * scheduled)

    def add(self, placer: BatchOnline, r: int, x: NDArray[np.bool_]) -> None:
        data, a = placer.data, placer.data.instance.arrays
        self.counts = self.counts + x
        self.attn_s += float(data.attn[r] * (x & data.is_layer).sum())
        self.scheduled += int(x.any())
        self.kv += float((x * a.kv[r]).sum())
        self.t_cap = min(self.t_cap, float(placer.t_cap[r]))
