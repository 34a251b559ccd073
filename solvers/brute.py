"""``brute``: every placement of every request, evaluated by the evaluator itself.

The reference the tests hold every other solver to. It enumerates all ``2**B``
placements of each distinct request (in chunks, vectorised through
:func:`splitllm.evaluator.request_metrics`) and refuses models over
:data:`MAX_BLOCKS` blocks.

On coupled instances it keeps each request's feasible placements that are Pareto-optimal
in the coupled resources (dominance cannot lose an optimum; no DP involved), then tries
every combination of them (and of rejections under ``max_admitted``), refusing instances
with more than :data:`MAX_COMBINATIONS` combinations.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> round(solve(load_instance(example_path("tiny")), "brute").objective, 6)
0.4
>>> import dataclasses
>>> inst = load_instance(example_path("tiny"))
>>> tight = dataclasses.replace(inst, objective="max_admitted", arrays=dataclasses.replace(inst.arrays, work_capacity=0.3))
>>> solve(tight, "brute").admitted.tolist()  # one fits; the one with less work
[False, True]
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from splitllm.diagnose import explain_infeasible
from splitllm.errors import SplitLLMError
from splitllm.evaluator import exceeds, feasible_mask, request_metrics
from splitllm.instance import Arrays, Instance
from splitllm.registry import register
from splitllm.resources import COUPLED
from splitllm.result import SolveResult, Status
from splitllm.solvers.certify import finish
from splitllm.solvers.pareto import pareto_rows
from splitllm.solvers.per_request import RequestOutcome, solve_independently

MAX_BLOCKS = 20
CHUNK = 1 << 16
#: brute refuses coupled instances whose Pareto placements (and rejections) combine beyond this.
MAX_COMBINATIONS = 1 << 22


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
        return brute_coupled(instance)
    return solve_independently(instance, "brute", brute_request, time_limit)


def _options(instance: Instance, r: int) -> NDArray[np.bool_]:
    """Feasible placements of request ``r`` that are Pareto-optimal in the coupled
    resources, by enumeration."""
    a = instance.arrays
    x = all_placements(instance.n_blocks)
    rows = np.full(len(x), r)
    x = x[feasible_mask(a, rows, request_metrics(a, rows, x))]
    return x[pareto_rows(np.stack([x @ a.usage(res)[r] for res in COUPLED], axis=1))]


def brute_coupled(instance: Instance) -> SolveResult:
    """The exact optimum by enumeration (see the module docstring)."""
    a = instance.arrays
    options = [_options(instance, r) for r in range(instance.n_requests)]
    reject = instance.objective.maximize
    sizes = [len(o) + reject for o in options]
    if math.prod(sizes) > MAX_COMBINATIONS:
        raise SplitLLMError(f"brute: {math.prod(sizes)} combinations of Pareto placements exceed {MAX_COMBINATIONS}; use decomp")
    if min(sizes) == 0:
        r = sizes.index(0)
        return SolveResult("brute", Status.INFEASIBLE, message=f"requests[{r}]: {explain_infeasible(a, r)}", bound=math.inf)
    totals = {res.key: np.zeros(1) for res in COUPLED}
    weight = np.zeros(1)
    for r, x in enumerate(options):
        per_option = {res.key: x @ a.usage(res)[r] for res in COUPLED}
        per_option["weight"] = np.full(len(x), a.weight[r])
        if reject:  # the last option of each request is "rejected"
            per_option = {k: np.append(v, 0.0) for k, v in per_option.items()}
        totals = {k: (t[:, None] + per_option[k][None, :]).ravel() for k, t in totals.items()}
        weight = (weight[:, None] + per_option["weight"][None, :]).ravel()
    fits = ~np.any([exceeds(totals[res.key], a.limit(res)) for res in COUPLED], axis=0)
    if not fits.any():
        return SolveResult("brute", Status.INFEASIBLE, message="no combination of feasible placements fits the server capacities", bound=math.inf)
    if reject:
        top = weight[fits].max()
        fits &= ~exceeds(np.full_like(weight, top), weight)  # ties in weight up to float rounding
    work = totals["work"]
    best = int(np.argmin(np.where(fits, work, math.inf)))
    picks = np.unravel_index(best, sizes)
    admitted = np.array([k < len(options[r]) for r, k in enumerate(picks)], dtype=bool)
    placements = np.array([options[r][k] if admitted[r] else np.ones(instance.n_blocks, bool) for r, k in enumerate(picks)])
    return finish(instance, "brute", placements, admitted, True, float(weight[best] if reject else work[best]))
