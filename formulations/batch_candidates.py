"""The candidate placements of one request joining a throughput-placement (F5) batch.

All-server, all-client, every server suffix and every server prefix; a candidate is
acceptable when the request's own limits hold and, with it added, every admitted request
still meets its TPOT at the new ``T`` and the server KV fits. ``batch-greedy`` admits
requests one at a time by this rule; the ``batch-online`` serving policy places each
arriving request by it, the batch in flight taken as admitted.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import BatchState


def candidates(n_blocks: int) -> NDArray[np.bool_]:
    """All-server, all-client, every server suffix and every server prefix (distinct rows).

    >>> candidates(3).astype(int).tolist()
    [[1, 1, 1], [0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0], [1, 1, 0]]
    """
    j = np.arange(1, n_blocks)[:, None]
    b = np.arange(n_blocks)[None, :]
    rows = [np.ones((1, n_blocks), bool), np.zeros((1, n_blocks), bool), b >= j, b < j]
    return np.concatenate(rows)


def best_candidate(batch: BatchState, r: int, cand: NDArray[np.bool_]) -> tuple[int, float] | None:
    """The acceptable row of ``cand`` with the least ``T`` when request ``r`` joins ``batch``
    (ties: fewest server blocks) and its ``T`` cap; ``None`` when no row is acceptable."""
    data, a = batch.data, batch.data.instance.arrays
    slack, factor = data.tpot_slack(r, cand)
    t = batch.t_with(r, cand)
    ok = data.placeable(r, cand) & (t * factor <= slack) & (t <= batch.t_cap)
    ok &= ~exceeds(batch.kv + (cand * a.kv[r]).sum(axis=1), data.kv_capacity)
    if not ok.any():
        return None
    k = int(np.lexsort((cand.sum(axis=1), np.where(ok, t, np.inf)))[0])
    return k, float(slack[k] / factor[k]) if factor[k] else float("inf")
