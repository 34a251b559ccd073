"""The reference placements: ``all-server`` and the paper-style ``greedy``.

``greedy`` (the SplitLLM paper compares against "a greedy method" without detail) starts
with every block on the server and walks the chain from the embedding to the head,
moving each block to the client if the whole placement then still meets the request's
SLOs and client memory; otherwise the block stays on the server. Every move saves
server work, so the walk keeps the client's share growing while the limits hold. It
proves nothing: a request it cannot place is ``unsolved``, not ``infeasible``.

On coupled instances (shared server capacity):

- ``greedy``: each request gets its least-work placement (exact per-request DP). Under
  ``min_server_work`` all are served; under ``max_admitted`` requests are admitted in
  :func:`admission_order` (weight descending, then the share of the capacities they use
  ascending, then instance order) whenever they still fit, and skipped otherwise (first fit).
- ``all-server``: the same admission with every block on the server.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> inst = load_instance(example_path("tiny"))
>>> solve(inst, "greedy").placements.astype(int).tolist()
[[0, 1, 0], [1, 1, 0]]
>>> solve(inst, "all-server").status.value
'feasible'
>>> import dataclasses
>>> tight = dataclasses.replace(inst, objective="max_admitted", arrays=dataclasses.replace(inst.arrays, work_capacity=0.3))
>>> r = solve(tight, "greedy")
>>> r.status.value, r.admitted.tolist()
('feasible', [False, True])
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray

from splitllm.deadline import deadline_in
from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.resources import COUPLED
from splitllm.result import SolveResult, Status
from splitllm.solvers.capacity import explain_infeasible
from splitllm.solvers.certify import finish
from splitllm.solvers.columns import dp_columns
from splitllm.solvers.per_request import RequestOutcome, solve_in_batches, solve_independently

#: Distinct requests per batch of the uncoupled greedy walk (bounds its memory).
GREEDY_BATCH = 4096


def _is_feasible(arrays: Arrays, r: int, placement: np.ndarray) -> bool:
    rows = np.array([r])
    return bool(feasible_mask(arrays, rows, request_metrics(arrays, rows, placement[None, :]))[0])


def greedy_request(arrays: Arrays, r: int) -> RequestOutcome:
    """The walk of request ``r`` alone, one feasibility check per block: the plain
    reference :func:`greedy_requests` is checked against."""
    placement = np.ones(arrays.work.shape[1], dtype=bool)
    for b in range(placement.size):
        placement[b] = False
        if not _is_feasible(arrays, r, placement):
            placement[b] = True
    if not _is_feasible(arrays, r, placement):
        return RequestOutcome("unsolved")
    return RequestOutcome("feasible", placement, float(arrays.work[r][placement].sum()))


def greedy_requests(arrays: Arrays, rows: NDArray[np.int64]) -> list[RequestOutcome]:
    """Grow each request's client share block by block, embedding first, while its limits
    hold: the walk of every request of ``rows`` at once, one block at a time."""
    rows = np.asarray(rows, dtype=np.int64)
    placements = np.ones((rows.size, arrays.work.shape[1]), dtype=bool)
    for b in range(placements.shape[1]):
        placements[:, b] = False
        placements[:, b] = ~feasible_mask(arrays, rows, request_metrics(arrays, rows, placements))
    found = feasible_mask(arrays, rows, request_metrics(arrays, rows, placements))
    return [
        RequestOutcome("feasible", placement, float(arrays.work[r][placement].sum())) if ok else RequestOutcome("unsolved")
        for r, placement, ok in zip(rows, placements, found)
    ]


def all_server_request(arrays: Arrays, r: int) -> RequestOutcome:
    """Every block on the server, if that meets the request's limits."""
    placement = np.ones(arrays.work.shape[1], dtype=bool)
    if not _is_feasible(arrays, r, placement):
        return RequestOutcome("unsolved")
    return RequestOutcome("feasible", placement, float(arrays.work[r].sum()))


def _usage(instance: Instance, placements: NDArray[np.bool_]) -> dict[str, NDArray[np.float64]]:
    """Each request's use of each coupled resource under ``placements``."""
    return {res.key: np.where(placements, instance.arrays.usage(res), 0.0).sum(axis=1) for res in COUPLED}


def admission_order(instance: Instance, usage: dict[str, NDArray[np.float64]]) -> NDArray[np.int64]:
    """Requests by weight descending, then capacity share ``sum_k use_k / capacity_k`` ascending."""
    a = instance.arrays
    share = np.zeros(instance.n_requests)
    for res in COUPLED:
        cap = float(a.limit(res))
        if math.isfinite(cap):
            share += usage[res.key] / cap if cap > 0 else usage[res.key]
    return np.lexsort((np.arange(instance.n_requests), share, -a.weight)).astype(np.int64)


def _admit(instance: Instance, placements: NDArray[np.bool_], servable: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """First fit in :func:`admission_order` of servable, positive-weight requests."""
    a = instance.arrays
    usage = _usage(instance, placements)
    caps = {res.key: float(a.limit(res)) for res in COUPLED}
    used = dict.fromkeys(caps, 0.0)
    admitted = np.zeros(instance.n_requests, dtype=bool)
    for r in admission_order(instance, usage):
        if servable[r] and a.weight[r] > 0 and all(used[k] + usage[k][r] <= caps[k] for k in caps):
            admitted[r] = True
            used = {k: used[k] + usage[k][r] for k in caps}
    return admitted


def _serve_all(instance: Instance, name: str, placements: NDArray[np.bool_], servable: NDArray[np.bool_], optimal: bool) -> SolveResult:
    """``min_server_work``: every request with its placement, if all fit."""
    if not servable.all():
        r = int(np.nonzero(~servable)[0][0])
        return SolveResult(name, Status.NO_SOLUTION, message=f"requests[{r}]: {name} has no feasible placement for it")
    totals = {res: float(use.sum()) for res, use in zip(COUPLED, _usage(instance, placements).values())}
    over = [f"{total:.6g} {res.unit} of {res.label} > {res.limit_field}" for res, total in totals.items() if total > instance.arrays.limit(res)]
    if over:
        return SolveResult(name, Status.NO_SOLUTION, message=f"{name} placements need {'; '.join(over)}")
    bound = totals[COUPLED[0]] if optimal else None
    return finish(instance, name, placements, np.ones(instance.n_requests, dtype=bool), optimal, bound)


def greedy_coupled(instance: Instance, time_limit: float | None = None) -> SolveResult:
    """Least-work placements, admitted first fit (see the module docstring)."""
    uncapped = _work_capacity_only(instance)
    columns = dp_columns(uncapped, deadline_in(time_limit))
    if columns is None:
        return SolveResult("greedy", Status.NO_SOLUTION, message="time limit reached (or would be) while computing the DP columns")
    servable = np.array([columns.of_request(r).work.size > 0 for r in range(instance.n_requests)])
    placements = np.ones((instance.n_requests, instance.n_blocks), dtype=bool)
    for r in np.nonzero(servable)[0]:
        placements[r] = columns.of_request(int(r)).placements[0]
    if instance.objective.serves_all:
        reason = explain_infeasible(uncapped, columns)  # unserved requests, least work > capacity
        if reason is not None:
            return SolveResult("greedy", Status.INFEASIBLE, message=reason, bound=math.inf)
        return _serve_all(instance, "greedy", placements, servable, optimal=True)
    return finish(instance, "greedy", placements, _admit(instance, placements, servable), False, None)


def _work_capacity_only(instance: Instance) -> Instance:
    """The instance without its other capacities, so the DP keeps only least-work columns
    (and no verdict on the other capacities is drawn from them)."""
    others = {res.limit_attr: math.inf for res in COUPLED if res.key != "work"}
    return dataclasses.replace(instance, arrays=dataclasses.replace(instance.arrays, **others))


def all_server_coupled(instance: Instance) -> SolveResult:
    """Every block on the server, admitted first fit (see the module docstring)."""
    a = instance.arrays
    rows = np.arange(instance.n_requests)
    placements = np.ones((instance.n_requests, instance.n_blocks), dtype=bool)
    servable = feasible_mask(a, rows, request_metrics(a, rows, placements))
    if instance.objective.serves_all:
        return _serve_all(instance, "all-server", placements, servable, optimal=False)
    return finish(instance, "all-server", placements, _admit(instance, placements, servable), False, None)


@register("greedy", "paper-style baseline: move blocks to the client, embedding first, while SLOs and memory hold")
def solve_greedy(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    if instance.coupled:
        return greedy_coupled(instance, time_limit)
    return solve_in_batches(instance, "greedy", greedy_requests, time_limit, GREEDY_BATCH)


@register("all-server", "reference without a split: every block on the server")
def solve_all_server(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    if instance.coupled:
        return all_server_coupled(instance)
    return solve_independently(instance, "all-server", all_server_request, time_limit)
