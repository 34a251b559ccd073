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

:func:`improve` revisits them: a local search that ``batch`` runs on the answer it cannot
prove.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray

from splitllm.formulations.batch_candidates import best_candidate, candidates, fit, least_t
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


def improve(data: BatchData, x: NDArray[np.bool_], admitted: NDArray[np.bool_], deadline: float | None = None,
            passes: int = 50) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """A better answer near ``(x, admitted)``, by moves that each keep every limit.

    A pass takes each request, heaviest first: a rejected one is admitted at its least-``T``
    candidate when one keeps every admitted request's TPOT and the KV (more weight); an
    admitted one is re-placed at the candidate of least ``T`` given the others, when that
    lowers ``T``. Passes repeat until one changes nothing (at most ``passes``, and not past
    ``deadline``). Candidates as :func:`solve_greedy`'s.

    >>> from splitllm.instance import example_path, load_instance
    >>> from splitllm.solvers.batch_common import batch_data
    >>> data = batch_data(load_instance(example_path("llama2-7b")), "vllm", False)
    >>> greedy = solve_greedy(data)
    >>> x, admitted = improve(data, greedy.placements, greedy.admitted)
    >>> data.iteration_time(x, admitted) <= greedy.info["iteration_time_s"]
    True
    """
    a = data.instance.arrays
    cand = candidates(data.n_blocks)
    x, admitted = x.copy(), admitted.copy()
    caps, t = _caps(data, x), data.iteration_time(x, admitted)
    order = sorted(range(data.n_requests), key=lambda i: (-a.weight[i], i))
    for _ in range(passes):
        changed = False
        for r in order:
            if deadline is not None and time.perf_counter() > deadline:  # each move kept every limit
                return x, admitted
            others = admitted.copy()
            others[r] = False
            rows = np.nonzero(others)[0]
            rows_fit = fit(BatchState(data, x[rows], rows, caps[rows]), r, cand)
            k = least_t(rows_fit.t, rows_fit.acceptable, cand)
            if k is not None and (not admitted[r] or rows_fit.t[k] < t * (1 - 1e-12)):
                x[r], admitted[r], caps[r], t, changed = cand[k], True, rows_fit.cap[k], float(rows_fit.t[k]), True
        if not changed:
            break
    return x, admitted


def _caps(data: BatchData, x: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The most ``T`` may be for each request at its placement (``inf``: no server block)."""
    caps = np.full(data.n_requests, np.inf)
    for r in range(data.n_requests):
        slack, factor = data.tpot_slack(r, x[r][None])
        if factor[0] > 0:
            caps[r] = slack[0] / factor[0]
    return caps


@register("batch-greedy", "F5 baseline: admit heaviest first, each at its least-T prefix/suffix split", options=COMMON, verifier=verify)
def solve(instance: Instance, *, time_limit: float | None = None, engine: str = "vllm", ttft: bool = False) -> SolveResult:
    return solve_greedy(batch_data(instance, engine, ttft))
