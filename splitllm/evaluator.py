"""The independent evaluator: DESIGN §1's formulas, and nothing else.

No solver code lives or is imported here. Every solver's answer goes through
:func:`evaluate` before it is reported, and ``splitllm check`` runs it on any solution
file. Placements are boolean rows, ``True`` where the block runs on the server.

Examples
--------
>>> import numpy as np
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> m = request_metrics(inst.arrays, np.array([0]), np.array([[True, True, True]]))
>>> round(float(m.ttft[0]), 6)  # prompt up, three server blocks, first token down
0.3105
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Arrays, Instance

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Relative slack when comparing a figure with its limit, so that sums taken in a
#: different order than here cannot flip feasibility. 1e-9 of a second is a nanosecond.
FEASIBILITY_RTOL = 1e-9


@dataclass(frozen=True)
class Metrics:
    """Per-placement figures of DESIGN §1; ``tpot`` is NaN when ``o = 1``."""

    ttft: Array
    tpot: Array
    e2e: Array
    work: Array
    kv: Array
    client_mem: Array


def request_metrics(arrays: Arrays, rows: NDArray[np.int64], placements: BoolArray) -> Metrics:
    """Figures of placement ``placements[i]`` for request ``rows[i]`` (vectorised)."""
    x = np.asarray(placements, dtype=bool)
    a = arrays
    up_edges = x[:, 1:] & ~x[:, :-1]
    down_edges = ~x[:, 1:] & x[:, :-1]
    n_up, n_down = up_edges.sum(axis=1), down_edges.sum(axis=1)
    first, last = x[:, 0], x[:, -1]

    prefill_compute = np.where(x, a.server_prefill[rows], a.client_prefill[rows]).sum(axis=1)
    ttft = (
        prefill_compute
        + first * a.prompt_up[rows]
        + n_up * a.act_up_prefill[rows]
        + n_down * a.act_down_prefill[rows]
        + last * a.first_token_down[rows]
    )
    decode_compute = np.where(x, a.server_decode[rows], a.client_decode[rows]).sum(axis=1)
    cycle = (first & ~last) * a.token_up_decode[rows] + (~first & last) * a.token_down_decode[rows]
    step = decode_compute + n_up * a.act_up_decode[rows] + n_down * a.act_down_decode[rows] + cycle
    steps = a.output_tokens[rows] - 1
    tpot = np.where(steps > 0, step, np.nan)
    e2e = ttft + steps * np.where(steps > 0, step, 0.0)
    return Metrics(
        ttft=ttft,
        tpot=tpot,
        e2e=e2e,
        work=np.where(x, a.work[rows], 0.0).sum(axis=1),
        kv=np.where(x, a.kv[rows], 0.0).sum(axis=1),
        client_mem=np.where(x, 0.0, a.client_mem[rows]).sum(axis=1),
    )


def exceeds(value: Array, limit: Array | float) -> BoolArray:
    """``value > limit`` beyond :data:`FEASIBILITY_RTOL` (NaN values never exceed)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(value > limit + FEASIBILITY_RTOL * np.abs(limit), dtype=bool) & np.isfinite(limit)


def limit_pairs(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> dict[str, tuple[Array, Array]]:
    """Each per-request limit by its instance-file name: (figure, limit) per placement.

    TPOT of a single-pass request (NaN) counts as 0: it has no decode steps to limit.
    """
    return {
        "ttft_s": (m.ttft, arrays.ttft_limit[rows]),
        "tpot_s": (np.nan_to_num(m.tpot, nan=0.0), arrays.tpot_limit[rows]),
        "e2e_s": (m.e2e, arrays.e2e_limit[rows]),
        "memory_bytes": (m.client_mem, arrays.mem_limit[rows]),
    }


def _broken(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> dict[str, BoolArray]:
    return {name: exceeds(value, limit) for name, (value, limit) in limit_pairs(arrays, rows, m).items()}


def request_violations(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> list[list[str]]:
    """For each placement, the names of the per-request limits it breaks."""
    broken = _broken(arrays, rows, m)
    return [[name for name, bad in broken.items() if bad[i]] for i in range(len(rows))]


def feasible_mask(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> BoolArray:
    """True where a placement meets its request's SLOs and client memory."""
    return ~np.any(list(_broken(arrays, rows, m).values()), axis=0)


@dataclass(frozen=True)
class Evaluation:
    """A whole solution re-evaluated: per-request metrics (NaN when rejected) and totals."""

    admitted: BoolArray
    metrics: Metrics
    violations: list[str]
    admitted_weight: float
    server_work: float
    server_kv: float

    @property
    def feasible(self) -> bool:
        return not self.violations

    def objective(self, objective: str) -> float:
        """The figure DESIGN §5 calls ``objective`` for this instance's objective."""
        return self.admitted_weight if objective == "max_admitted" else self.server_work


def evaluate(instance: Instance, placements: BoolArray, admitted: BoolArray) -> Evaluation:
    """Re-evaluate a whole solution; ``violations`` says what breaks, naming the request.

    ``placements`` is (requests x blocks); rows of rejected requests are ignored.
    Under ``min_server_work`` every request must be admitted.
    """
    a = instance.arrays
    admitted = np.asarray(admitted, dtype=bool)
    rows = np.arange(instance.n_requests)
    m = request_metrics(a, rows, np.asarray(placements, dtype=bool))
    nan = np.full(instance.n_requests, np.nan)
    m = Metrics(*(np.where(admitted, field, nan) for field in (m.ttft, m.tpot, m.e2e, m.work, m.kv, m.client_mem)))
    violations: list[str] = []
    for i, names in enumerate(request_violations(a, rows, m)):
        if admitted[i] and names:
            violations += [f"requests[{i}] (id {instance.requests[i].id!r}): {describe_violation(a, m, i, n)}" for n in names]
    if instance.objective == "min_server_work" and not admitted.all():
        missing = np.nonzero(~admitted)[0]
        violations.append(f"requests[{missing[0]}]: not served, but objective min_server_work serves every request")
    work = float(np.nansum(m.work))
    kv = float(np.nansum(m.kv))
    if exceeds(np.array([work]), a.work_capacity)[0]:
        violations.append(f"server.work_capacity_s: total server work {work:.6g} s > {a.work_capacity:.6g} s")
    if exceeds(np.array([kv]), a.kv_capacity)[0]:
        violations.append(f"server.kv_capacity_bytes: total server KV {kv:.6g} B > {a.kv_capacity:.6g} B")
    return Evaluation(admitted, m, violations, float(a.weight[admitted].sum()), work, kv)


def describe_violation(arrays: Arrays, m: Metrics, i: int, name: str) -> str:
    """``'ttft_s 1.2 s > SLO 1 s (by 0.2 s)'`` for request ``i`` and limit ``name``."""
    values, limits = limit_pairs(arrays, np.arange(len(m.ttft)), m)[name]
    value, limit = float(values[i]), float(limits[i])
    what, bound, unit = ("client memory", "limit", "B") if name == "memory_bytes" else (name, "SLO", "s")
    return f"{what} {value:.6g} {unit} > {bound} {limit:.6g} {unit} (by {value - limit:.3g} {unit})"
