"""``greedy``, ``all-server`` and ``brute`` on coupled instances (shared server capacity).

The registered solvers in :mod:`splitllm.solvers.baselines` and :mod:`splitllm.solvers.brute`
hand coupled instances to the functions here.

- :func:`greedy_coupled`: each request gets its least-work placement (exact per-request
  DP). Under ``min_server_work`` all are served; under ``max_admitted`` requests are
  admitted in :func:`admission_order` (weight descending, then the share of the
  capacities they use ascending, then instance order) whenever they still fit, and skipped
  otherwise (first fit).
- :func:`all_server_coupled`: the same admission with every block on the server.
- :func:`brute_coupled`: enumerates every placement of every request (no DP), keeps
  each request's Pareto-optimal feasible ones in (work, kv) (dominance cannot lose an
  optimum), then every combination of them (and of rejections under ``max_admitted``).
  Refuses instances with more than :data:`MAX_COMBINATIONS` combinations.

Examples
--------
>>> import dataclasses
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> inst = dataclasses.replace(inst, objective="max_admitted", arrays=dataclasses.replace(inst.arrays, work_capacity=0.3))
>>> r = greedy_coupled(inst, None)
>>> r.status.value, r.admitted.tolist()
('feasible', [False, True])
>>> brute_coupled(inst, None).admitted.tolist()  # one fits; the one with less work
[False, True]
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from splitllm.deadline import deadline_in
from splitllm.errors import SplitLLMError
from splitllm.evaluator import exceeds, feasible_mask, request_metrics
from splitllm.instance import Instance
from splitllm.result import SolveResult, Status
from splitllm.solvers.brute import all_placements
from splitllm.solvers.capacity import explain_infeasible
from splitllm.solvers.certify import finish

#: brute refuses instances whose Pareto placements (and rejections) combine beyond this.
MAX_COMBINATIONS = 1 << 22


def admission_order(instance: Instance, work: NDArray[np.float64], kv: NDArray[np.float64]) -> NDArray[np.int64]:
    """Requests by weight descending, then capacity share ``work/W + kv/K`` ascending."""
    a = instance.arrays
    share = np.zeros(instance.n_requests)
    for used, cap in ((work, a.work_capacity), (kv, a.kv_capacity)):
        if math.isfinite(cap):
            share += np.nan_to_num(used / cap, nan=0.0, posinf=0.0) if cap > 0 else used
    return np.lexsort((np.arange(instance.n_requests), share, -a.weight)).astype(np.int64)


def _admit(instance: Instance, placements: NDArray[np.bool_], servable: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """First fit in :func:`admission_order` of servable, positive-weight requests."""
    a = instance.arrays
    work, kv = (np.where(placements, a.work, 0).sum(axis=1), np.where(placements, a.kv, 0).sum(axis=1))
    admitted = np.zeros(instance.n_requests, dtype=bool)
    used_work = used_kv = 0.0
    for r in admission_order(instance, work, kv):
        if servable[r] and a.weight[r] > 0 and used_work + work[r] <= a.work_capacity and used_kv + kv[r] <= a.kv_capacity:
            admitted[r] = True
            used_work, used_kv = used_work + work[r], used_kv + kv[r]
    return admitted


def _serve_all(instance: Instance, name: str, placements: NDArray[np.bool_], servable: NDArray[np.bool_], optimal: bool) -> SolveResult:
    """``min_server_work``: every request with its placement, if all fit."""
    a = instance.arrays
    if not servable.all():
        r = int(np.nonzero(~servable)[0][0])
        return SolveResult(name, Status.NO_SOLUTION, message=f"requests[{r}]: {name} has no feasible placement for it")
    work, kv = float(a.work[placements].sum()), float(a.kv[placements].sum())
    if work > a.work_capacity or kv > a.kv_capacity:
        return SolveResult(
            name, Status.NO_SOLUTION, message=f"{name} placements need {work:.6g} s of work and {kv:.6g} B of KV, over the capacities"
        )
    bound = work if optimal else None
    return finish(instance, name, placements, np.ones(instance.n_requests, dtype=bool), optimal, bound)


def greedy_coupled(instance: Instance, time_limit: float | None) -> SolveResult:
    """Least-work placements, admitted first fit (see the module docstring)."""
    from splitllm.formulations.column import dp_columns

    uncapped = _least_work_only(instance)
    columns = dp_columns(uncapped, deadline_in(time_limit))
    if columns is None:
        return SolveResult("greedy", Status.NO_SOLUTION, message="time limit reached (or would be) while computing the DP columns")
    picks = np.array([0 if columns.of_request(r).work.size else -1 for r in range(instance.n_requests)])
    servable = picks >= 0
    placements = np.ones((instance.n_requests, instance.n_blocks), dtype=bool)
    for r in np.nonzero(servable)[0]:
        placements[r] = columns.of_request(int(r)).placements[0]
    if instance.objective == "min_server_work":
        reason = explain_infeasible(uncapped, columns)  # unserved requests, least work > capacity
        if reason is not None:
            return SolveResult("greedy", Status.INFEASIBLE, message=reason, bound=math.inf)
        return _serve_all(instance, "greedy", placements, servable, optimal=True)
    return finish(instance, "greedy", placements, _admit(instance, placements, servable), False, None)


def _least_work_only(instance: Instance) -> Instance:
    """The instance without its KV capacity, so the DP keeps only least-work columns
    (and no KV verdict is drawn from them)."""
    import dataclasses

    return dataclasses.replace(instance, arrays=dataclasses.replace(instance.arrays, kv_capacity=math.inf))


def all_server_coupled(instance: Instance, time_limit: float | None) -> SolveResult:
    """Every block on the server, admitted first fit (see the module docstring)."""
    a = instance.arrays
    rows = np.arange(instance.n_requests)
    placements = np.ones((instance.n_requests, instance.n_blocks), dtype=bool)
    servable = feasible_mask(a, rows, request_metrics(a, rows, placements))
    if instance.objective == "min_server_work":
        return _serve_all(instance, "all-server", placements, servable, optimal=False)
    return finish(instance, "all-server", placements, _admit(instance, placements, servable), False, None)


def _pareto(work: NDArray[np.float64], kv: NDArray[np.float64]) -> NDArray[np.int64]:
    """Indices of the points no other point dominates in (work, kv), one per distinct point."""
    order = np.lexsort((kv, work))
    kept: list[int] = []
    best_kv = math.inf
    for i in order:
        if kv[i] < best_kv:
            kept.append(int(i))
            best_kv = kv[i]
    return np.array(kept, dtype=np.int64)


def _options(instance: Instance, r: int) -> NDArray[np.bool_]:
    """Pareto-optimal feasible placements of request ``r`` by enumeration."""
    a = instance.arrays
    x = all_placements(instance.n_blocks)
    rows = np.full(len(x), r)
    x = x[feasible_mask(a, rows, request_metrics(a, rows, x))]
    return x[_pareto(x @ a.work[r], x @ a.kv[r])]


def brute_coupled(instance: Instance, time_limit: float | None) -> SolveResult:
    """The exact optimum by enumeration (see the module docstring)."""
    a = instance.arrays
    options = [_options(instance, r) for r in range(instance.n_requests)]
    reject = instance.objective == "max_admitted"
    sizes = [len(o) + reject for o in options]
    if math.prod(sizes) > MAX_COMBINATIONS:
        raise SplitLLMError(f"brute: {math.prod(sizes)} combinations of Pareto placements exceed {MAX_COMBINATIONS}; use decomp")
    if min(sizes) == 0:
        r = sizes.index(0)
        from splitllm.diagnose import explain_infeasible as explain_request

        return SolveResult("brute", Status.INFEASIBLE, message=f"requests[{r}]: {explain_request(a, r)}", bound=math.inf)
    work, kv, weight = np.zeros(1), np.zeros(1), np.zeros(1)
    for r, x in enumerate(options):
        w_r, k_r, g_r = x @ a.work[r], x @ a.kv[r], np.full(len(x), a.weight[r])
        if reject:  # the last option of each request is "rejected"
            w_r, k_r, g_r = np.append(w_r, 0.0), np.append(k_r, 0.0), np.append(g_r, 0.0)
        work, kv, weight = ((t[:, None] + t_r[None, :]).ravel() for t, t_r in ((work, w_r), (kv, k_r), (weight, g_r)))
    fits = ~exceeds(work, a.work_capacity) & ~exceeds(kv, a.kv_capacity)
    if not fits.any():
        return SolveResult("brute", Status.INFEASIBLE, message="no combination of feasible placements fits the server capacities", bound=math.inf)
    if reject:
        top = weight[fits].max()
        fits &= ~exceeds(np.full_like(weight, top), weight)  # ties in weight up to float rounding
    best = int(np.argmin(np.where(fits, work, math.inf)))
    picks = np.unravel_index(best, sizes)
    admitted = np.array([k < len(options[r]) for r, k in enumerate(picks)], dtype=bool)
    placements = np.array([options[r][k] if admitted[r] else np.ones(instance.n_blocks, bool) for r, k in enumerate(picks)])
    return finish(instance, "brute", placements, admitted, True, float(weight[best] if reject else work[best]))
