"""Capacity: the highest arrival rate at which SLO attainment stays at or above a target.

The workload's arrival times are rescaled to each tried rate (:func:`.workload.retime`);
placements do not depend on the rate, so each policy places once. The search assumes
attainment falls as the rate grows: it doubles the rate from a start until attainment
drops below the target, then narrows the bracket; with ``jobs`` workers each round tries
``jobs`` rates spread over the bracket, in parallel processes (or on a Dask cluster). It stops when the bracket
is narrower than ``rtol`` of its upper end.

Examples
--------
>>> round(search(lambda rate: 1.0 if rate <= 3.0 else 0.0, start=1.0, rtol=0.01)[0], 2)
3.0
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.dask_client import dask_client
from splitllm.instance import Instance
from splitllm.serving.policies import Placement, run_policy
from splitllm.serving.report import ATTAINMENT_TARGET, slo_met
from splitllm.serving.simulator import SimConfig
from splitllm.serving.workload import retime

MAX_DOUBLINGS = 40


def search(
    attainment: Callable[[float], float],
    start: float,
    target: float = ATTAINMENT_TARGET,
    rtol: float = 0.02,
    map_rates: Callable[[list[float]], list[float]] | None = None,
    jobs: int = 1,
    progress: Callable[[float, float], None] | None = None,
) -> tuple[float, list[tuple[float, float]]]:
    """(highest rate meeting ``target`` found, every (rate, attainment) tried).

    0 when even ``start / 2**40`` fails; ``inf`` when ``start * 2**40`` still meets it.
    ``progress(rate, attainment)`` is called after each simulation.
    """
    run = map_rates or (lambda rates: [attainment(r) for r in rates])
    tried: list[tuple[float, float]] = []

    def probe(rates: list[float]) -> list[float]:
        values = run(rates)
        tried.extend(zip(rates, values))
        for rate, value in zip(rates, values):
            if progress is not None:
                progress(rate, value)
        return values

    lo, hi, rate = 0.0, None, start
    for _ in range(MAX_DOUBLINGS):  # bracket: lo meets the target, hi does not
        rates = [rate * 2.0**k for k in range(max(1, jobs))]
        values = probe(rates)
        ok = [r for r, v in zip(rates, values) if v >= target]
        bad = [r for r, v in zip(rates, values) if v < target]
        lo = max(ok + [lo])
        if bad:
            hi = min(bad)
            break
        rate = rates[-1] * 2.0
    if hi is None:  # never fell below the target: the workload cannot load the server enough
        return float("inf"), tried
    if lo == 0.0:
        for _ in range(MAX_DOUBLINGS):
            rate = hi / 2.0
            if probe([rate])[0] >= target:
                lo = rate
                break
            hi = rate
        else:
            return 0.0, tried
    while hi - lo > rtol * hi:
        rates = [float(r) for r in np.linspace(lo, hi, max(1, jobs) + 2)[1:-1]]
        values = probe(rates)
        ok = [r for r, v in zip(rates, values) if v >= target]
        bad = [r for r, v in zip(rates, values) if v < target]
        lo = max(ok + [lo])
        hi = min([r for r in bad if r > lo] + [hi])
    return lo, tried


@dataclass(frozen=True)
class _Job:
    inst: Instance
    placement: Placement
    cfg: SimConfig
    times: NDArray[np.float64]
    charge: bool


_JOB: _Job | None = None


def _init(job: _Job) -> None:
    global _JOB
    _JOB = job


def _attainment(rate: float) -> tuple[float, float]:
    """:func:`attainment_at` of this worker process's job."""
    assert _JOB is not None
    return attainment_at(_JOB, rate)


def attainment_at(job: _Job, rate: float) -> tuple[float, float]:
    """(SLO attainment, the policy's wall seconds) of one simulation of ``job`` at ``rate``."""
    arrivals = retime(job.times, rate, False, np.random.default_rng(0))
    sim, placed = run_policy(job.inst, job.placement, job.cfg, arrivals, charge=job.charge)
    return float(slo_met(job.inst, sim, placed.placements).mean()), placed.wall_s


def capacity(
    inst: Instance, placement: Placement, cfg: SimConfig, times: NDArray[np.float64], *, charge: bool = False,
    jobs: int = 1, target: float = ATTAINMENT_TARGET, rtol: float = 0.02, start: float | None = None,
    dask_scheduler: str | None = None, progress: Callable[[float, float], None] | None = None,
) -> dict[str, Any]:
    """Capacity of one policy over the workload ``times`` (its native rate is the start).

    ``jobs`` rates are tried at a time, in that many processes; with ``dask_scheduler``
    (the address of a running Dask scheduler; needs the ``bench`` extra) on its workers,
    as many at a time as it has workers (at least ``jobs``). ``progress(rate,
    attainment)`` is called after each simulation.
    """
    job = _Job(inst, placement, cfg, np.asarray(times, float), charge)
    span = float(job.times[-1] - job.times[0])
    first = start or ((len(job.times) - 1) / span if span > 0 else 1.0)
    walls: list[float] = []

    def attainments(results: list[tuple[float, float]]) -> list[float]:
        walls.extend(wall for _, wall in results)
        return [value for value, _ in results]

    def here(rate: float) -> float:
        return attainments([attainment_at(job, rate)])[0]

    if dask_scheduler is not None:
        with dask_client(dask_scheduler) as client:
            shared = client.scatter(job, broadcast=True)
            width = max(jobs, len(client.scheduler_info()["workers"]))
            rate, tried = search(here, first, target, rtol,
                                 lambda rs: attainments(client.gather(client.map(attainment_at, [shared] * len(rs), rs, pure=False))),
                                 width, progress)
    elif jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(job,)) as pool:
            rate, tried = search(here, first, target, rtol, lambda rs: attainments(list(pool.map(_attainment, rs))), jobs, progress)
    else:
        rate, tried = search(here, first, target, rtol, progress=progress)
    bounded = bool(np.isfinite(rate))
    # An online policy places during each simulation: its wall time is the median over the runs.
    wall = float(np.median(walls)) if placement.online is not None else placement.wall_s
    return {"policy": placement.policy, "capacity_rps": rate if bounded else None, "bounded": bounded, "target": target,
            "tried": sorted(tried), "policy_wall_s": wall}
