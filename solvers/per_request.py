"""Solving uncoupled instances one request at a time, and combining the answers.

Without shared server capacity the requests are independent: a solver for one request
(:data:`RequestSolver`) is all it takes. Identical requests (same compiled rows) are
solved once. The combination follows the objectives: under ``min_server_work`` every request
must be served; under ``max_admitted`` a request is admitted when it has a placement and
a positive weight (admitting a weight-0 request could only add server work).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from splitllm.diagnose import explain_infeasible
from splitllm.identical import unique_requests
from splitllm.instance import Arrays, Instance
from splitllm.result import SolveResult, Status

OutcomeStatus = Literal["optimal", "feasible", "infeasible", "unsolved"]


@dataclass
class RequestOutcome:
    """One request's answer. ``infeasible`` means proven; ``unsolved`` means none was found.

    ``bound`` is a proven lower bound on the request's server work (``inf`` when proven
    infeasible, ``None`` when the solver proves nothing).
    """

    status: OutcomeStatus
    placement: NDArray[np.bool_] | None = None
    work: float = float("nan")
    bound: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


RequestSolver = Callable[[Arrays, int], RequestOutcome]
#: Solves the requests ``rows`` (an array of indices) together, one outcome per row.
BatchSolver = Callable[[Arrays, NDArray[np.int64]], list[RequestOutcome]]


def solve_independently(
    instance: Instance, name: str, solve_one: RequestSolver, time_limit: float | None = None
) -> SolveResult:
    """Solve each distinct request with ``solve_one`` and combine into one result."""
    return solve_in_batches(instance, name, lambda arrays, rows: [solve_one(arrays, int(r)) for r in rows], time_limit, 1)


def solve_in_batches(
    instance: Instance, name: str, solve_many: BatchSolver, time_limit: float | None = None, batch: int = 1
) -> SolveResult:
    """Solve the distinct requests ``batch`` at a time with ``solve_many`` and combine
    into one result; the time limit is checked between batches."""
    if instance.coupled:
        return SolveResult(name, Status.ERROR, message=f"{name} handles only uncoupled instances (no server capacities)")
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    first, inverse = unique_requests(instance.arrays)
    outcomes: list[RequestOutcome] = []
    for start in range(0, len(first), batch):
        if deadline is not None and time.perf_counter() > deadline:
            return SolveResult(
                name, Status.NO_SOLUTION, message=f"time limit reached after {len(outcomes)} of {len(first)} distinct requests"
            )
        outcomes += solve_many(instance.arrays, first[start : start + batch])
    per_request = [outcomes[k] for k in inverse]
    result = combine(instance, name, per_request)
    result.info["distinct_requests"] = len(first)
    return result


def combine(instance: Instance, name: str, outcomes: list[RequestOutcome]) -> SolveResult:
    """One :class:`SolveResult` from per-request outcomes, with honest status and bound."""
    n_blocks = instance.n_blocks
    placements = np.array([o.placement if o.placement is not None else np.ones(n_blocks, bool) for o in outcomes])
    found = np.array([o.placement is not None for o in outcomes])
    proven = all(o.status in ("optimal", "infeasible") for o in outcomes)
    infeasible = [i for i, o in enumerate(outcomes) if o.status == "infeasible"]
    info: dict[str, Any] = {
        "request_status": [o.status for o in outcomes],
        "request_work": [o.work for o in outcomes],
        "request_bound": [o.bound for o in outcomes],
    }
    if instance.objective.maximize:
        weight = instance.arrays.weight
        admitted = found & (weight > 0)
        bound = float(weight[[o.status != "infeasible" for o in outcomes]].sum())
        status = Status.OPTIMAL if proven else Status.FEASIBLE
        return SolveResult(name, status, placements, admitted, float(weight[admitted].sum()), bound, info=info)
    if infeasible:
        reasons = [f"requests[{i}] (id {instance.requests[i].id!r}): {explain_infeasible(instance.arrays, i)}" for i in infeasible[:10]]
        more = f" (+{len(infeasible) - 10} more requests)" if len(infeasible) > 10 else ""
        return SolveResult(name, Status.INFEASIBLE, message="; ".join(reasons) + more, info=info)
    if not found.all():
        missing = int(np.nonzero(~found)[0][0])
        return SolveResult(
            name, Status.NO_SOLUTION, message=f"no placement found for requests[{missing}] ({(~found).sum()} requests in all)", info=info
        )
    work = float(sum(o.work for o in outcomes))
    bounds = [o.bound for o in outcomes]
    bound = float(sum(bounds)) if all(b is not None for b in bounds) else None  # type: ignore[misc]
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    return SolveResult(name, status, placements, np.ones(len(outcomes), bool), work, bound, info=info)
