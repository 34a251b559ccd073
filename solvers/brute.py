"""``brute``: every placement of every request, evaluated by the evaluator itself.

The reference the tests hold every other solver to. It enumerates all ``2**B``
placements of each distinct request (in chunks, vectorised through
:func:`splitllm.evaluator.request_metrics`) and refuses models over
:data:`MAX_BLOCKS` blocks.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> round(solve(load_instance(example_path("tiny")), "brute").objective, 6)
0.4
"""

from __future__ import annotations

import math

import numpy as np

from splitllm.errors import SplitLLMError
from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.per_request import RequestOutcome, solve_independently

MAX_BLOCKS = 20
CHUNK = 1 << 16


def all_placements(n_blocks: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Placements number ``start .. stop-1`` of ``2**n_blocks``; bit ``b`` is block ``b``."""
    codes = np.arange(start, (1 << n_blocks) if stop is None else stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_blocks)) & 1).astype(bool)


def brute_request(arrays: Arrays, r: int) -> RequestOutcome:
    """The least-work feasible placement of request ``r`` by enumeration."""
    n_blocks = arrays.work.shape[1]
    best_work, best = math.inf, None
    for start in range(0, 1 << n_blocks, CHUNK):
        x = all_placements(n_blocks, start, min(start + CHUNK, 1 << n_blocks))
        rows = np.full(len(x), r)
        m = request_metrics(arrays, rows, x)
        work = np.where(feasible_mask(arrays, rows, m), m.work, np.inf)
        k = int(np.argmin(work))
        if work[k] < best_work:
            best_work, best = float(work[k]), x[k]
    if best is None:
        return RequestOutcome("infeasible", bound=math.inf)
    return RequestOutcome("optimal", best, best_work, best_work)


def check_size(instance: Instance) -> None:
    if instance.n_blocks > MAX_BLOCKS:
        raise SplitLLMError(
            f"brute enumerates 2**B placements and refuses models over {MAX_BLOCKS} blocks; "
            f"this one has {instance.n_blocks} (use dp)"
        )


@register("brute", f"exhaustive enumeration (models of at most {MAX_BLOCKS} blocks); the test reference", exact=True)
def solve(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    check_size(instance)
    if instance.coupled:
        from splitllm.solvers.coupled import brute_coupled

        return brute_coupled(instance, time_limit)
    return solve_independently(instance, "brute", brute_request, time_limit)
