"""DP column generation for F3 (:mod:`splitllm.formulations.column`) and the coupled solvers.

:func:`dp_columns` computes, once per distinct request
(:func:`splitllm.identical.unique_requests`), the Pareto-optimal feasible
placements in the coupled resources (server work and KV) from the exact label DP, run as
one batched pass over up to :data:`PARETO_BATCH` distinct requests
(:func:`splitllm.solvers.dp.pareto_search`). With no finite capacity but the work
capacity, only the least-work placement matters (the other coupled resources then
constrain nothing and work is the objective), so only it is kept. The column sets are
complete Pareto sets, so F3 over them is exact.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> cols = dp_columns(inst)
>>> [c.work.round(6).tolist() for c in cols.per_type]
[[0.29], [0.11]]
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.typing import NDArray

from splitllm.formulations.column import Columns, TypeColumns
from splitllm.identical import unique_requests
from splitllm.instance import Instance
from splitllm.resources import COUPLED, SLOT, WORK
from splitllm.solvers.dp import pareto_search, solve_request

#: Distinct requests per batched Pareto label pass (bounds its memory; the deadline is
#: checked between batches).
PARETO_BATCH = 256


def _pareto_columns(instance: Instance, rows: NDArray[np.int64]) -> list[TypeColumns]:
    slots = [SLOT[res.key] for res in COUPLED]
    per_type = []
    for r, search in zip(rows, pareto_search(instance.arrays, rows)):
        labels = sorted(search.pareto, key=lambda lab: tuple(lab.values[s] for s in slots))
        per_type.append(TypeColumns.of(instance.arrays, int(r), [lab.placement for lab in labels]))
    return per_type


def _least_work_columns(instance: Instance, rows: NDArray[np.int64]) -> list[TypeColumns]:
    outcomes = (solve_request(instance.arrays, int(r)) for r in rows)
    return [TypeColumns.of(instance.arrays, int(r), [] if o.placement is None else [o.placement]) for r, o in zip(rows, outcomes)]


def needs_pareto(instance: Instance) -> bool:
    """Whether a capacity other than the work capacity is finite (then least work alone
    is not enough: the columns must trade work against the other resources)."""
    return any(math.isfinite(instance.arrays.limit(res)) for res in COUPLED if res is not WORK)


def dp_columns(instance: Instance, deadline: float | None = None) -> Columns | None:
    """Complete Pareto column sets per distinct request; ``None`` past ``deadline``
    (a :func:`time.perf_counter` instant)."""
    first, inverse = unique_requests(instance.arrays)
    pareto = needs_pareto(instance)
    batch = PARETO_BATCH if pareto else 1
    per_type: list[TypeColumns] = []
    per_row = 0.0  # seconds per distinct request in the last batch: stop before one that cannot end in time
    for start in range(0, len(first), batch):
        rows = first[start : start + batch]
        if deadline is not None and time.perf_counter() + per_row * len(rows) > deadline:
            return None
        began = time.perf_counter()
        per_type += _pareto_columns(instance, rows) if pareto else _least_work_columns(instance, rows)
        per_row = (time.perf_counter() - began) / len(rows)
    return Columns(per_type, first, inverse)
