"""What the per-request DP proves about a coupled instance before any master runs.

- :func:`dp_bound`: dropping the coupling rows gives a relaxation, so the per-request
  optima give a proven bound: the least total work (``min_server_work``) or the weight of
  the requests that have any feasible placement (``max_admitted``). Every coupled solver
  checks its answer against it; when the least-work placements fit the capacities it is
  the optimum itself.
- :func:`explain_infeasible`: why ``min_server_work`` cannot be met: a request no
  placement serves (with its best miss), or a capacity below the least possible total.

Examples
--------
>>> import dataclasses
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.solvers.columns import dp_columns
>>> inst = load_instance(example_path("tiny"))
>>> round(dp_bound(inst, dp_columns(inst)), 6)
0.4
>>> tight = dataclasses.replace(inst, arrays=dataclasses.replace(inst.arrays, work_capacity=0.3))
>>> explain_infeasible(tight, dp_columns(tight))
'server.work_capacity_s: least possible total server work 0.4 s > capacity 0.3 s (short by 0.1 s)'
"""

from __future__ import annotations

import numpy as np

from splitllm.diagnose import explain_infeasible as explain_request
from splitllm.formulations.column import Columns
from splitllm.instance import Instance
from splitllm.resources import COUPLED, WORK, Resource


def _least(columns: Columns, res: Resource) -> float:
    """The least total use of coupled resource ``res`` over all requests."""
    per_type = np.array([c.least(res) for c in columns.per_type])
    return float(per_type @ columns.counts)


def dp_bound(instance: Instance, columns: Columns) -> float:
    """The coupling-free bound on the objective (see the module docstring)."""
    if instance.objective.maximize:
        servable = np.array([c.work.size > 0 for c in columns.per_type])[columns.type_of]
        return float(instance.arrays.weight[servable].sum())
    return _least(columns, WORK)


#: The reason when an exact master proves infeasible what no single check above explains.
JOINT_INFEASIBLE = (
    f"{' and '.join(res.limit_field for res in COUPLED)}: each capacity alone can hold every request, "
    "but no choice of placements meets them all"
)


def explain_infeasible(instance: Instance, columns: Columns) -> str | None:
    """What the DP proves makes ``min_server_work`` infeasible, or ``None``."""
    a = instance.arrays
    unserved = [t for t, c in enumerate(columns.per_type) if c.work.size == 0]
    if unserved:
        rows = np.nonzero(np.isin(columns.type_of, unserved))[0]
        reasons = [f"requests[{r}] (id {instance.requests[r].id!r}): {explain_request(a, int(r))}" for r in rows[:3]]
        more = f" (+{len(rows) - 3} more requests)" if len(rows) > 3 else ""
        return "; ".join(reasons) + more
    reasons = []
    for res in COUPLED:
        least, cap, unit = _least(columns, res), float(a.limit(res)), res.unit
        if least > cap:
            reasons.append(
                f"{res.limit_field}: least possible total {res.label} {least:.6g} {unit} > capacity {cap:.6g} {unit} "
                f"(short by {least - cap:.3g} {unit})"
            )
    return "; ".join(reasons) if reasons else None
