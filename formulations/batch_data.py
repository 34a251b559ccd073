"""The data of a throughput placement (F5), compiled once for its formulations and solvers.

``fixed[b, n]`` is block ``b``'s share of the decode iteration time when ``n`` admitted
requests run it on the server: ``lin_b(n)`` plus, for a ``layer`` block, the attention
kernel's floor; 0 at ``n = 0`` (a block nobody runs costs nothing). ``attn[r]`` is request
``r``'s attention at one server ``layer`` block (one token over ``p + o`` cached tokens).
So ``T = overhead + sum_b fixed[b, n_b] + sum_r attn[r] * (server layers of r) +
per_seq * (requests with a server block)``.

Examples
--------
>>> import numpy as np
>>> from splitllm.profiles import Curve
>>> from splitllm.batched import AttentionModel, BatchedCosts
>>> lin = Curve.from_points([[1, 1.0], [3, 2.0]])
>>> att = AttentionModel(1e12, 1e12, 0.0, 8, 8, 2)
>>> fixed_table(BatchedCosts("g", "m", {"embed": lin, "layer": lin, "head": lin}, att), ("embed", "head"), 3)
array([[0. , 1. , 1.5, 2. ],
       [0. , 1. , 1.5, 2. ]])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from splitllm.batched.evaluator import check_batch_instance, context, cycle_factor, kinds, kv_capacity
from splitllm.batched import BatchedCosts
from splitllm.evaluator import exceeds, request_metrics
from splitllm.instance import Arrays, Instance
from splitllm.resources import throughput_limits
from splitllm.tolerances import FEASIBILITY_RTOL

Array = NDArray[np.float64]


def fixed_table(costs: BatchedCosts, block_kinds: tuple[str, ...], n_max: int) -> Array:
    """``fixed[b, n]`` for ``n = 0 .. n_max`` (see the module docstring)."""
    n = np.arange(n_max + 1, dtype=float)
    table = np.zeros((len(block_kinds), n_max + 1))
    for b, kind in enumerate(block_kinds):
        floor = costs.attention.floor_s if kind == "layer" else 0.0
        table[b, 1:] = costs.lin[kind].value(n[1:]) + floor
    return table


@dataclass(frozen=True, eq=False)
class BatchData:
    """Everything an F5 solver needs (R requests x B blocks; seconds, bytes)."""

    instance: Instance
    costs: BatchedCosts
    fixed: Array
    attn: Array
    is_layer: NDArray[np.bool_]
    kv_capacity: float
    #: The instance's arrays with no server decode compute: client time and crossings only.
    no_server: Arrays
    #: Whether each admitted request's batch-1 TTFT is a limit too (a snapshot of arriving requests).
    ttft: bool = False

    @property
    def n_requests(self) -> int:
        return self.instance.n_requests

    @property
    def n_blocks(self) -> int:
        return self.instance.n_blocks

    def iteration_time(self, x: NDArray[np.bool_], admitted: NDArray[np.bool_]) -> float:
        """``T`` of placements ``x`` (R x B) over the admitted requests."""
        xs = x & admitted[:, None]
        n = xs.sum(axis=0)
        layers = (xs & self.is_layer).sum(axis=1)
        scheduled = xs.any(axis=1).sum()  # the engine's per-sequence overhead counts these
        return float(self.costs.overhead_s + self.fixed[np.arange(self.n_blocks), n].sum() + self.attn @ layers
                     + self.costs.overhead_per_seq_s * scheduled)

    def tpot_slack(self, r: int, x: NDArray[np.bool_]) -> tuple[Array, NDArray[np.int64]]:
        """For placements ``x`` (K x B) of request ``r``: the most ``T * (s + w)`` may be
        (its TPOT limit, with the evaluator's tolerance, less client time and crossings),
        and ``s + w``."""
        base = request_metrics(self.no_server, np.full(len(x), r), x).tpot if len(x) else np.zeros(0)
        limit = self.instance.arrays.tpot_limit[r] * (1 + FEASIBILITY_RTOL)
        return limit - base, cycle_factor(x)

    def placeable(self, r: int, x: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Which placements ``x`` (K x B) of request ``r`` meet the limits F5 holds at the
        figure of the request alone (:func:`splitllm.resources.throughput_limits`): client
        memory and, when :attr:`ttft`, its batch-1 TTFT."""
        a = self.instance.arrays
        ok = np.ones(len(x), dtype=bool)
        alone = [res for res in throughput_limits(self.ttft) if res.throughput != "batched"]
        if not len(x) or not alone:
            return ok
        m = request_metrics(a, np.full(len(x), r), x)
        for res in alone:
            ok &= ~exceeds(m.of(res), a.limit(res)[r])  # type: ignore[index]
        return ok


class BatchState:
    """A growing batch as F5 prices it: per-block server counts and the other parts of ``T``.

    ``t_with(r, x)`` is ``T`` with request ``r`` added at each of the placements ``x``
    (K x B), one vectorised evaluation; ``add(r, row)`` adds it. ``kv`` is the batch's server
    KV bytes and ``t_cap`` the least ``T`` cap of its requests (``inf`` when none is given).
    """

    def __init__(self, data: BatchData, x: NDArray[np.bool_] | None = None, rows: NDArray[np.int64] | None = None,
                 caps: Array | None = None) -> None:
        self.data = data
        x = np.zeros((0, data.n_blocks), dtype=bool) if x is None else np.asarray(x, dtype=bool)
        rows = np.zeros(0, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        a = data.instance.arrays
        self.counts = x.sum(axis=0).astype(np.int64)
        self.attn_s = float(data.attn[rows] @ (x & data.is_layer).sum(axis=1))
        self.scheduled = int(x.any(axis=1).sum())
        self.kv = float((x * a.kv[rows]).sum())
        self.t_cap = float(caps.min()) if caps is not None and len(caps) else np.inf

    def t_with(self, r: int, x: NDArray[np.bool_]) -> Array:
        d = self.data
        fixed = d.fixed[np.arange(d.n_blocks), self.counts + x].sum(axis=1)
        return (d.costs.overhead_s + fixed + self.attn_s + d.attn[r] * (x & d.is_layer).sum(axis=1)
                + d.costs.overhead_per_seq_s * (self.scheduled + x.any(axis=1)))

    def t(self) -> float:
        """``T`` of the batch as it is."""
        d = self.data
        return float(d.costs.overhead_s + d.fixed[np.arange(d.n_blocks), self.counts].sum() + self.attn_s
                     + d.costs.overhead_per_seq_s * self.scheduled)

    def add(self, r: int, row: NDArray[np.bool_], cap: float = np.inf) -> None:
        d = self.data
        self.counts = self.counts + row
        self.attn_s += float(d.attn[r] * (row & d.is_layer).sum())
        self.scheduled += int(row.any())
        self.kv += float((row * d.instance.arrays.kv[r]).sum())
        self.t_cap = min(self.t_cap, cap)


def build_data(instance: Instance, costs: BatchedCosts, *, ttft: bool = False, decoding_only: bool = True) -> BatchData:
    """Compile ``instance`` and the server's batched tables for F5.

    ``ttft``: also hold each admitted request's batch-1 TTFT. ``decoding_only=False``
    also accepts requests with one output token (a caller that places those itself, as an
    online policy does).
    """
    check_batch_instance(instance, costs, decoding_only=decoding_only)
    a = instance.arrays
    block_kinds = kinds(instance)
    return BatchData(
        instance=instance,
        costs=costs,
        fixed=fixed_table(costs, block_kinds, instance.n_requests),
        attn=costs.attention.item_s(np.ones(instance.n_requests), context(instance)),
        is_layer=np.array([k == "layer" for k in block_kinds]),
        kv_capacity=kv_capacity(instance, costs),
        no_server=replace(a, server_decode=np.zeros_like(a.server_decode)),
        ttft=ttft,
    )
