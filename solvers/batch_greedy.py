"""``batch-greedy``: a baseline for F5 that admits requests one at a time.

Requests are taken by weight, heaviest first (ties: instance order). For each, every
*candidate* placement is tried: all-server, all-client, the server running a suffix of
the chain (the client keeps blocks ``0 .. j-1``), or a prefix (the client keeps blocks
``j .. B-1``), for every ``j``. A candidate is acceptable when the request's client memory
holds and, with it added, every admitted request (itself included) still meets its TPOT
at the new ``T`` and the server KV fits. The acceptable candidate with the least ``T`` is
kept (ties: the fewest server blocks); a request with none is rejected. Placements are
never revisited. It proves nothing: its status is ``feasible``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import BatchData, build_data
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_common import ENGINE, batch_result, server_tables, verify


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
    slack = np.zeros(data.n_requests)
    factor = np.zeros(data.n_requests)
    for r in sorted(range(data.n_requests), key=lambda i: (-a.weight[i], i)):
        s_r, k_r = data.tpot_slack(r, cand)
        mem_ok = ~exceeds(np.where(cand, 0.0, a.client_mem[r]).sum(axis=1), a.client_mem_limit[r])
        t = np.array([_t_with(data, x, admitted, r, c) for c in cand])
        ok = mem_ok & (t * k_r <= s_r) & np.all(t[:, None] * factor[admitted] <= slack[admitted], axis=1)
        kv = np.where(x & admitted[:, None], a.kv, 0.0).sum() + (cand * a.kv[r]).sum(axis=1)
        ok &= ~exceeds(kv, data.kv_capacity)
        if ok.any():
            k = int(np.lexsort((cand.sum(axis=1), np.where(ok, t, np.inf)))[0])
            x[r], admitted[r], slack[r], factor[r] = cand[k], True, s_r[k], k_r[k]
    t = data.iteration_time(x, admitted)
    return batch_result("batch-greedy", Status.FEASIBLE, x, admitted, t)


def _t_with(data: BatchData, x: NDArray[np.bool_], admitted: NDArray[np.bool_], r: int, row: NDArray[np.bool_]) -> float:
    x2, adm2 = x.copy(), admitted.copy()
    x2[r], adm2[r] = row, True
    return data.iteration_time(x2, adm2)


@register("batch-greedy", "F5 baseline: admit heaviest first, each at its least-T prefix/suffix split", options=(ENGINE,), verifier=verify)
def solve(instance: Instance, *, time_limit: float | None = None, engine: str = "vllm") -> SolveResult:
    return solve_greedy(build_data(instance, server_tables(instance, engine)))
