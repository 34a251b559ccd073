"""The units the MILP and CP-SAT models work in, derived from the data.

Seconds of ~1e-4 beside bytes of ~1e9 in one model make MILP solvers misjudge
feasibility and optimality (an unscaled prototype saw CBC and HiGHS call answers
1-3% above the optimum "Optimal"). So every model row is divided by its own limit
(right-hand side 1, see :attr:`splitllm.formulations.request_rows.LinearRow.scale`), the
coupling rows by their capacities, and the objective by :func:`work_unit`, the mean
all-server work of one request (objective values are then about the number of requests).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> round(work_unit(inst.arrays), 6)  # (0.326 + 0.12) / 2
0.223
>>> capacity_scale(float("inf")), capacity_scale(0.0), capacity_scale(2.5)
(1.0, 1.0, 2.5)
"""

from __future__ import annotations

import math


from splitllm.instance import Arrays


def work_unit(arrays: Arrays) -> float:
    """Mean all-server work of one request in seconds (1 when that is 0)."""
    unit = float(arrays.work.sum(axis=1).mean()) if arrays.work.size else 0.0
    return unit if unit > 0 else 1.0


def capacity_scale(capacity: float) -> float:
    """A coupling row's unit: its capacity when finite and positive, else 1."""
    return capacity if math.isfinite(capacity) and capacity > 0 else 1.0
