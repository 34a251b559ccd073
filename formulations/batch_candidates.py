"""The candidate placements of one request joining a throughput-placement (F5) batch.

All-server, all-client, every server suffix and every server prefix; a candidate is
acceptable when the request's own limits hold and, with it added, every admitted request
still meets its TPOT at the new ``T`` and the server KV fits (or, for a batch already past
a promise or its KV, when it makes neither worse). ``batch-greedy`` admits
requests one at a time by this rule; the ``batch-online`` serving policy places each
arriving request by it, the batch in flight taken as admitted.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import Array, BatchState


def candidates(n_blocks: int) -> NDArray[np.bool_]:
    """All-server, all-client, every server suffix and every server prefix (distinct rows).

    >>> candidates(3).astype(int).tolist()
    [[1, 1, 1], [0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0], [1, 1, 0]]
    """
    j = np.arange(1, n_blocks)[:, None]
    b = np.arange(n_blocks)[None, :]
    rows = [np.ones((1, n_blocks), bool), np.zeros((1, n_blocks), bool), b >= j, b < j]
    return np.concatenate(rows)


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
