"""``batch-milp``: F5 (:mod:`splitllm.formulations.batch`) through CBC or HiGHS, two phases.

Phase 1 maximises the admitted weight; phase 2 keeps it (``weight >= W1``, ``W1`` as
phase 1 reached it) and minimises ``T``. Each backend runs as a child process on an MPS
file; its own verdict is read. ``optimal`` only when the backend proved both phases;
``bound`` is phase 1's bound on the weight, ``iteration_time_bound_s`` phase 2's bound
on ``T``. One ``time_limit`` covers both phases. CBC runs without its preprocessing.

A backend's proof is then re-proved (:func:`~splitllm.solvers.batch_certify.certify`):
by enumeration on small snapshots, else by ``batch`` on the other backend; an answer it
does not confirm is ``feasible``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pulp

from splitllm.deadline import TimeLimitReached, deadline_in
from splitllm.formulations import batch as f5
from splitllm.formulations.batch_data import BatchData
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_certify import certify
from splitllm.solvers.batch_common import COMMON, DEFAULT_TIME_LIMIT_S, batch_data, batch_result, verify
from splitllm.solvers.batch_exact import other_backend, solve_exact
from splitllm.solvers.pulp_backend import BACKENDS, run

OPTIONS = (
    Option("backend", "choice", "highs", "MILP backend, both through PuLP", choices=tuple(sorted(BACKENDS, reverse=True))),
    Option("threads", "integer", None, "backend threads", low=1),
    *COMMON,
)


#: Whether each backend may preprocess F5's model: CBC's preprocessing has cut off better
#: answers and then said optimal (its answers agree with enumeration with it off).
PREPROCESS = {"cbc": False, "highs": True}


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.perf_counter())


def _read(data: BatchData, h: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    R, B = data.n_requests, data.n_blocks
    admitted = np.array([(h["a"][r].varValue or 0) > 0.5 for r in range(R)])
    x = np.array([[(h["x"][r, b].varValue or 0) > 0.5 for b in range(B)] for r in range(R)])
    return x, admitted


def solve_milp(data: BatchData, backend: str = "highs", time_limit: float | None = None, threads: int | None = None) -> SolveResult:
    """Both phases of F5 with ``backend`` (see the module docstring)."""
    name = "batch-milp"
    deadline = deadline_in(time_limit)
    try:
        prob, h = f5.build(data, deadline)
    except TimeLimitReached as stop:
        return batch_result(name, Status.NO_SOLUTION, None, None, None, message=str(stop))
    first = run(prob, backend, _left(deadline), threads, preprocess=PREPROCESS[backend])
    if not first.status.has_solution:
        return batch_result(name, first.status, None, None, None, first.bound, message=f"phase 1 (weight): {first.message}")
    x, admitted = _read(data, h)
    w1 = float(data.instance.arrays.weight[admitted].sum())
    prob += h["weight"] >= w1 - 1e-9 * max(1.0, w1), "lexicographic_weight"
    prob.sense = pulp.LpMinimize
    prob.setObjective(h["T"] * (1 / h["t_unit"]))
    second = run(prob, backend, _left(deadline), threads, preprocess=PREPROCESS[backend]) if _left(deadline) != 0.0 else None
    if second is not None and second.status.has_solution:
        x, admitted = _read(data, h)
    proven = first.status == Status.OPTIMAL and second is not None and second.status == Status.OPTIMAL
    t_bound = second.bound * h["t_unit"] if proven and second is not None and second.bound is not None else None
    t = data.iteration_time(x, admitted)
    if t_bound is not None:
        t_bound = min(t_bound, t)  # the backend's bound within its gap; never above what it found
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    phase2 = "not run" if second is None else second.status.value
    return batch_result(name, status, x, admitted, t, first.bound, t_bound, message=f"phase 1 {first.status.value}, phase 2 {phase2}")


@register("batch-milp", "F5 throughput placement as a MILP (count bands, exact T x segments), -o backend=highs|cbc", requires=("pulp",), exact=True, options=OPTIONS, verifier=verify,
          default_time_limit=DEFAULT_TIME_LIMIT_S)
def solve(instance: Instance, *, time_limit: float | None = None, backend: str = "highs", threads: int | None = None,
          engine: str = "vllm", ttft: bool = False) -> SolveResult:
    started = time.perf_counter()
    data = batch_data(instance, engine, ttft)
    result = solve_milp(data, backend, time_limit, threads)
    return certify(data, result, lambda left: solve_exact(data, other_backend(backend), left), time_limit, started)
