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
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from splitllm.dask_client import dask_client
from splitllm.instance import Instance
from splitllm.serving.policies import Placement, run_policy
from splitllm.serving.report import ATTAINMENT_TARGET, slo_met
from splitllm.serving.simulator import SimConfig
from splitllm.serving.workload import retime

MAX_DOUBLINGS = 40
#: Halvings below a failing start rate before the search gives up (rate / 2**20).
MAX_HALVINGS = 20


def search(
    attainment: Callable[[float], float],
    start: float,
    target: float = ATTAINMENT_TARGET,
    rtol: float = 0.02,
    map_rates: Callable[[list[float]], list[float]] | None = None,
    jobs: int = 1,
    settled: Callable[[float], bool] | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> tuple[float, list[tuple[float, float]]]:
    """(highest rate meeting ``target`` found, every (rate, attainment) tried).

    ``inf`` when ``start * 2**40`` still meets it; ``0`` when no rate tried meets it: the
    halving stops after :data:`MAX_HALVINGS`, or at a failing rate where ``settled(rate)``
    says that every lower rate gives the same attainment. ``progress(rate, attainment)``
    is called after each simulation.

    >>> rate, tried = search(lambda rate: 0.88, start=4.0, settled=lambda rate: rate < 1.5)
    >>> rate, [r for r, _ in tried]
    (0.0, [4.0, 2.0, 1.0])
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
        for _ in range(MAX_HALVINGS):
            if settled is not None and settled(hi):
                return 0.0, tried
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


def _attainment(rate: float) -> Probe:
    """:func:`attainment_at` of this worker process's job."""
    assert _JOB is not None
    return attainment_at(_JOB, rate)


class Probe(NamedTuple):
    """One simulation at one rate: SLO attainment, the policy's wall seconds, and the longest
    time any request spent from arrival to its last token (0 when none was served)."""

    attainment: float
    wall_s: float
    longest_s: float


def attainment_at(job: _Job, rate: float) -> Probe:
    """One simulation of ``job`` at ``rate``."""
    arrivals = retime(job.times, rate, False, np.random.default_rng(0))
    sim, placed = run_policy(job.inst, job.placement, job.cfg, arrivals, charge=job.charge)
    served = sim.e2e[np.isfinite(sim.e2e)]
    return Probe(float(slo_met(job.inst, sim, placed.placements).mean()), placed.wall_s, float(served.max()) if served.size else 0.0)


def least_gap(times: NDArray[np.float64], rate: float) -> float:
    """The shortest time between two distinct arrival instants once ``times`` are rescaled to ``rate``.

    >>> least_gap(np.array([0.0, 0.0, 1.0, 3.0]), 1.0)  # 4 arrivals over 3 s -> 1 req/s keeps the times
    1.0
    """
    instants = np.unique(times)
    if len(instants) < 2:
        return float("inf")
    return float(np.diff(instants).min()) * (len(times) - 1) / float(times[-1] - times[0]) / rate


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
    longest: dict[float, float] = {}

    def attainments(rates: list[float], results: list[Probe]) -> list[float]:
        walls.extend(probe.wall_s for probe in results)
        longest.update((rate, probe.longest_s) for rate, probe in zip(rates, results))
        return [probe.attainment for probe in results]

    def here(rate: float) -> float:
        return attainments([rate], [attainment_at(job, rate)])[0]

    def settled(rate: float) -> bool:
        # Every request was done before the next arrival instant: each burst of arrivals met
        # an empty server, as it would at any lower rate, so attainment cannot change.
        return least_gap(job.times, rate) > longest[rate]

    if dask_scheduler is not None:
        with dask_client(dask_scheduler) as client:
            shared = client.scatter(job, broadcast=True)
            width = max(jobs, len(client.scheduler_info()["workers"]))
            rate, tried = search(here, first, target, rtol,
                                 lambda rs: attainments(rs, client.gather(client.map(attainment_at, [shared] * len(rs), rs, pure=False))),
                                 width, settled, progress)
    elif jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(job,)) as pool:
            rate, tried = search(here, first, target, rtol, lambda rs: attainments(rs, list(pool.map(_attainment, rs))), jobs, settled, progress)
    else:
        rate, tried = search(here, first, target, rtol, settled=settled, progress=progress)
    bounded = bool(np.isfinite(rate))
    finding = "unbounded" if not bounded else "capacity" if rate > 0 else "unreached"
    # An online policy places during each simulation: its wall time is the median over the runs.
    wall = float(np.median(walls)) if placement.online is not None else placement.wall_s
    row = {"policy": placement.policy, "capacity_rps": rate if finding == "capacity" else None, "bounded": bounded,
           "finding": finding, "target": target, "best_attainment": max(v for _, v in tried), "tried": sorted(tried),
           "policy_wall_s": wall}
    if finding == "unreached":
        row["note"] = unreached_note(job.times, row["best_attainment"], target)
    return row


def unreached_note(times: NDArray[np.float64], best: float, target: float) -> str:
    """Why a search found no rate meeting ``target``, naming the arrivals' bursts when they have any.

    >>> unreached_note(np.array([0.0, 0.0, 0.0, 1.0]), 0.75, 0.9)
    'attainment stays below 90% at every rate tried (best 75.0%); the 4 arrivals fall on 2 instants (up to 3 at once) and rescaling the rate keeps those bursts: try --poisson --rate R'
    """
    instants, counts = np.unique(times, return_counts=True)
    note = f"attainment stays below {target:.0%} at every rate tried (best {best:.1%})"
    if counts.max() > 1:
        note += (f"; the {len(times)} arrivals fall on {len(instants)} instants (up to {counts.max()} at once) and rescaling"
                 " the rate keeps those bursts: try --poisson --rate R")
    return note


def attainment(inst: Instance, placement: Placement, cfg: SimConfig, times: NDArray[np.float64], rate: float, *,
               charge: bool = False) -> float:
    """SLO attainment of one simulation of ``placement`` with the workload ``times`` rescaled to ``rate``."""
    return attainment_at(_Job(inst, placement, cfg, np.asarray(times, float), charge), rate).attainment
