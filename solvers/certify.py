"""Turning a backend's answer into an honest :class:`~splitllm.result.SolveResult`.

Every coupled solver ends here: the placements are re-evaluated by the independent
evaluator (the objective reported is the evaluator's), the bound is tightened with the
DP's coupling-free bound (:func:`splitllm.solvers.capacity.dp_bound`), and the status is
``optimal`` only when the backend proved it *and* the gap to that bound is at most
:data:`~splitllm.tolerances.OPTIMAL_GAP` (:func:`proven_status`).

Examples
--------
>>> proven_status(True, 10.0, 10.0 - 1e-9).value, proven_status(True, 10.0, 9.0).value
('optimal', 'feasible')
>>> proven_status(False, 10.0, 10.0).value
'feasible'
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import evaluate
from splitllm.instance import Instance
from splitllm.result import SolveResult, Status, gap
from splitllm.tolerances import OPTIMAL_GAP


def proven_status(backend_optimal: bool, objective: float | None, bound: float | None) -> Status:
    """``optimal`` when the backend proved it and ``gap(objective, bound) <= OPTIMAL_GAP``."""
    if objective is None:
        return Status.NO_SOLUTION
    g = gap(objective, bound)
    return Status.OPTIMAL if backend_optimal and g is not None and g <= OPTIMAL_GAP else Status.FEASIBLE


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (a :func:`time.perf_counter` instant), or ``None``."""
    return None if deadline is None else max(0.0, deadline - time.perf_counter())


def finish(
    instance: Instance,
    name: str,
    placements: NDArray[np.bool_],
    admitted: NDArray[np.bool_],
    backend_optimal: bool,
    bound: float | None,
    message: str = "",
    info: dict[str, Any] | None = None,
) -> SolveResult:
    """The result for a solution: evaluator's objective, best bound, honest status.

    A solution the evaluator rejects comes back as ``error`` naming the violation.
    """
    evaluation = evaluate(instance, placements, admitted)
    if not evaluation.feasible:
        return SolveResult(name, Status.ERROR, message=f"{message}; evaluator: {evaluation.violations[0]}".lstrip("; "), info=info or {})
    objective = evaluation.objective(instance.objective)
    status = proven_status(backend_optimal, objective, bound)
    return SolveResult(name, status, placements, admitted, objective, bound, message=message, info=info or {})
