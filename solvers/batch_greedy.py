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

import numpy as np
from numpy.typing import NDArray

from splitllm.formulations.batch_candidates import best_candidate, candidates
from splitllm.formulations.batch_data import BatchData, BatchState
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_common import COMMON, batch_data, batch_result, verify


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


@register("batch-greedy", "F5 baseline: admit heaviest first, each at its least-T prefix/suffix split", options=COMMON, verifier=verify)
def solve(instance: Instance, *, time_limit: float | None = None, engine: str = "vllm", ttft: bool = False) -> SolveResult:
    return solve_greedy(batch_data(instance, engine, ttft))
