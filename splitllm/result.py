"""One result type and one status enum for every solver."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from splitllm.evaluator import Evaluation
from splitllm.resources import RESOURCES

if TYPE_CHECKING:
    import pandas as pd


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

    def to_dict(self, request_ids: list[Any] | None = None) -> dict[str, Any]:
        """The result as plain JSON types (non-finite numbers become ``None``).

        ``requests`` has one entry per request (index, id when ``request_ids`` is given,
        admitted, placement as a ``C``/``S`` string or ``None`` when rejected, and the
        evaluator's figures when the result has been verified).

        >>> from splitllm.instance import load_instance, example_path
        >>> from splitllm.registry import solve
        >>> inst = load_instance(example_path("tiny"))
        >>> d = solve(inst, "dp").to_dict([q.id for q in inst.requests])
        >>> d["status"], d["requests"][1]["id"], d["requests"][1]["placement"], d["requests"][1]["tpot_s"]
        ('optimal', 'classify', 'SSC', None)
        """
        return {
            "solver": self.solver,
            "status": self.status.value,
            "objective": _plain(self.objective),
            "bound": _plain(self.bound),
            "gap": _plain(self.gap),
            "time_s": _plain(self.time_s),
            "message": self.message,
            "info": _plain(self.info),
            "requests": self._request_rows(request_ids),
        }

    def to_dataframe(self, request_ids: list[Any] | None = None) -> pd.DataFrame:
        """One row per request (the ``requests`` of :meth:`to_dict`) as a pandas DataFrame,
        indexed by request id when ``request_ids`` is given (else by position, ``index``).

        >>> from splitllm.instance import load_instance, example_path
        >>> from splitllm.registry import solve
        >>> inst = load_instance(example_path("tiny"))
        >>> df = solve(inst, "dp").to_dataframe([q.id for q in inst.requests])
        >>> df.loc["classify", "placement"], df.index.name
        ('SSC', 'id')
        """
        import pandas as pd  # a dependency, imported on use: it costs every command's start ~0.4 s

        frame = pd.DataFrame(self._request_rows(request_ids))
        return frame.set_index("id" if request_ids is not None else "index")

    def _request_rows(self, request_ids: list[Any] | None) -> list[dict[str, Any]]:
        n = 0 if self.placements is None else len(self.placements)
        rows = []
        for i in range(n):
            admitted = bool(self.admitted is not None and self.admitted[i])
            row: dict[str, Any] = {"index": i}
            if request_ids is not None:
                row["id"] = request_ids[i]
            row["admitted"] = admitted
            row["placement"] = "".join("S" if s else "C" for s in self.placements[i]) if admitted else None  # type: ignore[index]
            if self.evaluation is not None:
                m = self.evaluation.metrics
                row.update({res.figure: _plain(float(m.of(res)[i])) for res in RESOURCES})
            rows.append(row)
        return rows


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python ones and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
