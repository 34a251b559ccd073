"""The reference placements: ``all-server`` and the paper-style ``greedy``.

``greedy`` (the SplitLLM paper compares against "a greedy method" without detail) starts
with every block on the server and walks the chain from the embedding to the head,
moving each block to the client if the whole placement then still meets the request's
SLOs and client memory; otherwise the block stays on the server. Every move saves
server work, so the walk keeps the client's share growing while the limits hold. It
proves nothing: a request it cannot place is ``unsolved``, not ``infeasible``.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> inst = load_instance(example_path("tiny"))
>>> solve(inst, "greedy").placements.astype(int).tolist()
[[0, 1, 0], [1, 1, 0]]
>>> solve(inst, "all-server").status.value
'feasible'
"""

from __future__ import annotations

import numpy as np

from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.result import SolveResult
from splitllm.solvers.per_request import RequestOutcome, solve_independently


def _is_feasible(arrays: Arrays, r: int, placement: np.ndarray) -> bool:
    rows = np.array([r])
    return bool(feasible_mask(arrays, rows, request_metrics(arrays, rows, placement[None, :]))[0])


def greedy_request(arrays: Arrays, r: int) -> RequestOutcome:
    """Grow the client's share block by block, embedding first, while the limits hold."""
    placement = np.ones(arrays.work.shape[1], dtype=bool)
    for b in range(placement.size):
        placement[b] = False
        if not _is_feasible(arrays, r, placement):
            placement[b] = True
    if not _is_feasible(arrays, r, placement):
        return RequestOutcome("unsolved")
    return RequestOutcome("feasible", placement, float(arrays.work[r][placement].sum()))


def all_server_request(arrays: Arrays, r: int) -> RequestOutcome:
    """Every block on the server, if that meets the request's limits."""
    placement = np.ones(arrays.work.shape[1], dtype=bool)
    if not _is_feasible(arrays, r, placement):
        return RequestOutcome("unsolved")
    return RequestOutcome("feasible", placement, float(arrays.work[r].sum()))


def _coupled(name: str, instance: Instance, time_limit: float | None) -> SolveResult:
    """Coupled instances (shared server capacity) go to :mod:`splitllm.solvers.coupled`."""
    from splitllm.solvers import coupled

    function = getattr(coupled, f"{name.replace('-', '_')}_coupled")
    return function(instance, time_limit)  # type: ignore[no-any-return]


@register("greedy", "paper-style baseline: move blocks to the client, embedding first, while SLOs and memory hold")
def solve_greedy(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    if instance.coupled:
        return _coupled("greedy", instance, time_limit)
    return solve_independently(instance, "greedy", greedy_request, time_limit)


@register("all-server", "reference without a split: every block on the server")
def solve_all_server(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    if instance.coupled:
        return _coupled("all-server", instance, time_limit)
    return solve_independently(instance, "all-server", all_server_request, time_limit)
