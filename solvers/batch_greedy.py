"""``batch-greedy``: a baseline for F5 that admits requests one at a time.

Requests are taken by weight, heaviest first (ties: instance order). For each, every
*candidate* placement is tried: all-server, all-client, the server running a suffix of
the chain (the client keeps blocks ``0 .. j-1``), or a prefix (the client keeps blocks
``j .. B-1``), for every ``j``. A candidate is acceptable when the request's own limits
hold (client memory; its batch-1 TTFT with ``-o ttft=true``) and, with it added, every
admitted request (itself included) still meets its TPOT at the new ``T`` and the server
KV fits. The acceptable candidate with the least ``T`` is
kept (ties: the fewest server blocks); a request with none is rejected. Placements are
never revisited. It proves nothing: its status is ``feasible``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import Array, BatchData, BatchState
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_common import COMMON, batch_data, batch_result, verify


def candidates(n_blocks: int) -> NDArray[np.bool_]:
    """All-server, all-client, every server suffix and every server prefix (distinct rows).

    >>> candidates(3).astype(int).tolist()
    [[1, 1, 1], [0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0], [1, 1, 0]]
    """
    j = np.arange(1, n_blocks)[:, None]
    b = np.arange(n_blocks)[None, :]
    rows = [np.ones((1, n_blocks), bool), np.zeros((1, n_blocks), bool), b >= j, b < j]
    return np.concatenate(rows)


def solve_greedy(data: BatchData) -> SolveResult:
    """The greedy admission of the module docstring."""
    a = data.instance.arrays
    cand = candidates(data.n_blocks)
    x = np.zeros((data.n_requests, data.n_blocks), dtype=bool)
    admitted = np.zeros(data.n_requests, dtype=bool)
    batch = BatchState(data)
    for r in sorted(range(data.n_requests), key=lambda i: (-a.weight[i], i)):
        pick = best_candidate(batch, r, cand)
        if pick is not None:
            k, cap = pick
            x[r], admitted[r] = cand[k], True
            batch.add(r, cand[k], cap)
    t = data.iteration_time(x, admitted)
    return batch_result("batch-greedy", Status.FEASIBLE, x, admitted, t)


class Fit(NamedTuple):
    """How each candidate row fits when request ``r`` joins a batch (see :func:`fit`)."""

    t: Array  # T with the request added at each row
    cap: Array  # the most T may be for the request's own TPOT at each row (inf: no server segment)
    own: NDArray[np.bool_]  # client memory (and batch-1 TTFT) hold, and the server KV fits
    acceptable: NDArray[np.bool_]  # own, its TPOT holds at t, and the batch's promises are not made worse


def fit(batch: BatchState, r: int, cand: NDArray[np.bool_]) -> Fit:
    """Price every row of ``cand`` for request ``r`` joining ``batch``.

    A row breaks nothing that is not already broken: it keeps the batch's promises when
    ``T`` stays within the tightest one *or* does not grow (a batch already past a promise,
    as an online batch with unpromised requests can be, still takes a request that adds
    nothing to ``T``), and it fits the KV when the total fits *or* it adds no server KV.
    """
    data, a = batch.data, batch.data.instance.arrays
    slack, factor = data.tpot_slack(r, cand)
    t = batch.t_with(r, cand)
    added_kv = (cand * a.kv[r]).sum(axis=1)
    own = data.placeable(r, cand) & (~exceeds(batch.kv + added_kv, data.kv_capacity) | (added_kv == 0))
    keeps_promises = (t <= batch.t_cap) | (t <= batch.t())
    with np.errstate(divide="ignore"):
        cap = np.where(factor > 0, slack / np.maximum(factor, 1), np.inf)
    return Fit(t, cap, own, own & (t * factor <= slack) & keeps_promises)


def least_t(t: Array, ok: NDArray[np.bool_], cand: NDArray[np.bool_]) -> int | None:
    """The row of ``ok`` with the least ``t`` (ties: fewest server blocks), ``None`` when none is ok."""
    if not ok.any():
        return None
    return int(np.lexsort((cand.sum(axis=1), np.where(ok, t, np.inf)))[0])


def best_candidate(batch: BatchState, r: int, cand: NDArray[np.bool_]) -> tuple[int, float] | None:
    """The acceptable row of ``cand`` with the least ``T`` when request ``r`` joins ``batch``
    (ties: fewest server blocks) and its ``T`` cap; ``None`` when no row is acceptable."""
    rows = fit(batch, r, cand)
    k = least_t(rows.t, rows.acceptable, cand)
    return None if k is None else (k, float(rows.cap[k]))


@register("batch-greedy", "F5 baseline: admit heaviest first, each at its least-T prefix/suffix split", options=COMMON, verifier=verify)
def solve(instance: Instance, *, time_limit: float | None = None, engine: str = "vllm", ttft: bool = False) -> SolveResult:
    return solve_greedy(batch_data(instance, engine, ttft))
