"""Re-proving an F5 answer's claims before they are reported.

A backend's proof is not enough: HiGHS (with tight feasibility tolerances) and CBC have
both called a worse throughput placement ``optimal``, and a bound that a wrong proof
gives is wrong too. So every F5 solver but ``batch-brute`` ends here
(:func:`certify`):

* a snapshot of at most :data:`BRUTE_LIMIT` placement combinations is enumerated
  (``batch-brute``), whatever the status: the answer is ``optimal`` exactly when it matches
  the enumerated optimum (weight, then ``T``, within
  :data:`~splitllm.tolerances.OPTIMAL_GAP`), and its bounds become the exact ones;
* a larger one keeps ``optimal`` only when a *referee* (another exact method, given by
  the solver) also proves ``optimal`` and agrees; when the referee's answer is better,
  that answer is returned instead (``feasible``); in every other case (the referee proves
  nothing in its time, or proves something worse than the answer) the status becomes
  ``feasible`` and the bounds from the unconfirmed proof are dropped.

Answers that are not ``optimal`` are left as they are above :data:`BRUTE_LIMIT`.
:func:`file_claims` does the same for a solution file (``splitllm check``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from splitllm.errors import SplitLLMError
from splitllm.formulations.batch_data import BatchData
from splitllm.instance import Instance
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_brute import request_options, solve_brute
from splitllm.solvers.batch_common import batch_data
from splitllm.tolerances import OPTIMAL_GAP

#: Snapshots with at most this many combinations of placements are re-proved by enumeration.
BRUTE_LIMIT = 1 << 14
#: A referee: ``time_limit -> result`` of another exact method on the same data.
Referee = Callable[[float | None], SolveResult]


def combinations(data: BatchData) -> int:
    """How many combinations ``batch-brute`` would enumerate (placements or rejection of each request)."""
    if 2**data.n_blocks > BRUTE_LIMIT:  # one request alone may have that many placements
        return 2**data.n_blocks
    total = 1
    for r in range(data.n_requests):
        total *= len(request_options(data, r)) + 1
        if total > BRUTE_LIMIT:
            break
    return total


def _figures(data: BatchData, result: SolveResult) -> tuple[float, float]:
    """Admitted weight and ``T`` of an answer, recomputed from its placements."""
    assert result.placements is not None and result.admitted is not None
    admitted = np.asarray(result.admitted, dtype=bool)
    return float(data.instance.arrays.weight[admitted].sum()), data.iteration_time(result.placements, admitted)


def _compare(data: BatchData, mine: SolveResult, other: SolveResult) -> int:
    """-1 when ``other`` is better (weight, then ``T``), 1 when ``mine`` is, 0 when they agree."""
    w, t = _figures(data, mine)
    w_o, t_o = _figures(data, other)
    tol = OPTIMAL_GAP * max(1.0, abs(w), abs(w_o))
    if abs(w - w_o) > tol:
        return 1 if w > w_o else -1
    if t > t_o * (1 + OPTIMAL_GAP):
        return -1
    return 1 if t_o > t * (1 + OPTIMAL_GAP) else 0


def certify(data: BatchData, result: SolveResult, referee: Referee | None, time_limit: float | None = None,
            started: float | None = None) -> SolveResult:
    """``result`` with its status and bounds re-proved (module docstring).

    ``time_limit`` is the call's limit and ``started`` its :func:`time.perf_counter` start:
    the referee gets what is left of it (the re-proof is part of the solve).
    """
    if result.placements is None or result.admitted is None:
        return result
    if combinations(data) <= BRUTE_LIMIT:
        return _against(data, result, solve_brute(data), exact=True)
    if result.status != Status.OPTIMAL:
        return result
    if referee is None:
        return _unconfirmed(result, "no other exact method to re-prove it")
    spent = 0.0 if started is None else time.perf_counter() - started
    left = None if time_limit is None else time_limit - spent
    if left is not None and left <= 0:
        return _unconfirmed(result, "no time left to re-prove it")
    try:
        other = referee(left)
    except SplitLLMError as failure:
        return _unconfirmed(result, f"the re-proof failed: {failure}")
    if other.status != Status.OPTIMAL or other.placements is None:
        if other.placements is not None and other.admitted is not None and _compare(data, result, other) < 0:
            return _adopt(result, other, "the re-proof found a better answer")
        return _unconfirmed(result, f"the re-proof by {other.solver} was {other.status.value}")
    return _against(data, result, other, exact=False)


def _against(data: BatchData, result: SolveResult, proof: SolveResult, exact: bool) -> SolveResult:
    """``result`` judged by a proven optimum ``proof`` (``exact``: an enumeration)."""
    order = _compare(data, result, proof)
    if order < 0:
        return _adopt(result, proof, f"{proof.solver} proved a better answer")
    if order > 0:  # the proof is wrong: the answer is better than its "optimum"
        return _unconfirmed(result, f"{proof.solver} proved a worse answer optimal")
    w, t = _figures(data, proof)
    status = Status.OPTIMAL if exact or result.status == Status.OPTIMAL else result.status
    if exact:
        result.bound = w
        result.info["iteration_time_bound_s"] = min(t, _figures(data, result)[1])
    result.status = status
    result.message = f"{result.message}; re-proved by {proof.solver}".lstrip("; ")
    return result


def _unconfirmed(result: SolveResult, why: str) -> SolveResult:
    """``feasible``, without the bounds of an unconfirmed proof."""
    if result.status == Status.OPTIMAL:
        result.bound = None
        result.info.pop("iteration_time_bound_s", None)
    result.status = Status.FEASIBLE
    result.message = f"{result.message}; not optimal: {why}".lstrip("; ")
    return result


def _adopt(result: SolveResult, better: SolveResult, why: str) -> SolveResult:
    """``better``'s placements under ``result``'s name, ``feasible``, without bounds."""
    adopted = SolveResult(result.solver, Status.FEASIBLE, better.placements, better.admitted, None, None,
                          message=f"{result.message}; not optimal: {why}, returned instead".lstrip("; "),
                          info={"iteration_time_s": better.info.get("iteration_time_s", math.nan)})
    return adopted


def file_claims(instance: Instance, data: dict[str, Any]) -> list[str]:
    """A throughput solution file's ``optimal`` and ``bound`` against enumeration, where cheap.

    ``data`` is a solution file whose figures :func:`splitllm.solution.check_solution`
    has confirmed. On a snapshot of at most :data:`BRUTE_LIMIT` combinations, ``optimal``
    must be the enumerated optimum (weight, then ``T``) and the bound at least its weight.
    """
    totals = data.get("totals") or {}
    if "iteration_time_s" not in totals or data.get("status") not in (Status.OPTIMAL.value, Status.FEASIBLE.value):
        return []
    batch = batch_data(instance, data.get("engine", "vllm"), bool(data.get("ttft", False)))
    if combinations(batch) > BRUTE_LIMIT:
        return []
    w, t = _figures(batch, solve_brute(batch))
    objective, stated_t, bound = float(data["objective"]), float(totals["iteration_time_s"]), data.get("bound")
    tol = OPTIMAL_GAP * max(1.0, abs(w))
    problems = []
    worse = objective < w - tol or (objective <= w + tol and stated_t > t * (1 + OPTIMAL_GAP))
    if data["status"] == Status.OPTIMAL.value and worse:
        problems.append(f"status: optimal, but enumeration finds admitted weight {w:.9g} at T {t:.9g} s "
                        f"(the file: {objective:.9g} at {stated_t:.9g} s)")
    if bound is not None and bound < w - tol:
        problems.append(f"bound: {bound:.9g} is below the optimum {w:.9g} that enumeration finds")
    return problems
