"""One result type and one status enum for every solver."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import Evaluation


class Status(str, Enum):
    """Outcome of a solve. ``OPTIMAL`` only when proven; ``UNKNOWN`` for unmapped backend codes."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


def gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap ``|objective - bound| / |objective|``: 0 when they meet.

    The one definition used everywhere (results, solution files, benchmarks). ``None``
    when either side is unknown; ``inf`` when the objective is 0 and the bound is not.

    Examples
    --------
    >>> gap(10.0, 9.0)
    0.1
    >>> gap(0.0, 0.0), gap(5.0, None)
    (0.0, None)
    """
    if objective is None or bound is None or math.isnan(objective) or math.isnan(bound):
        return None
    diff = abs(objective - bound)
    if diff == 0.0:
        return 0.0
    return diff / abs(objective) if objective != 0 else math.inf


@dataclass
class SolveResult:
    """What every solver returns.

    ``placements`` is (requests x blocks), ``True`` = server; ``admitted`` says which
    requests are served. ``objective`` is total server work under ``min_server_work`` and
    admitted weight under ``max_admitted``; ``bound`` is the best proven bound on it.
    ``evaluation`` is filled in by :func:`splitllm.registry.solve` from the independent
    evaluator, and ``objective`` then holds the evaluator's figure.
    """

    solver: str
    status: Status
    placements: NDArray[np.bool_] | None = None
    admitted: NDArray[np.bool_] | None = None
    objective: float | None = None
    bound: float | None = None
    time_s: float = 0.0
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None

    @property
    def gap(self) -> float | None:
        return gap(self.objective, self.bound)
