"""Workloads: which requests arrive when.

Either the instance's own requests at their ``arrival_s``, or requests made from a real
trace (:mod:`splitllm.instances.arrivals`): the first ``n`` requests of the trace with
their own timestamps and lengths, optionally rescaled to a mean rate (times stretched or
compressed by one factor, burstiness kept) or re-timed as a Poisson process (exponential
gaps at the rate, the trace's lengths in order). Lengths are clipped to the model's
context as the instance generator does. Each request's client is drawn from the
instance's client mix (the share of its requests per client; every client alike when it
has none) and its SLO set as the generator sets it (absolute seconds, raised to 1.05 x
the request's batch-1 all-server figure when below it; or a factor of that figure).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst, arrivals = trace_workload(load_instance(example_path("llama2-7b")), "azure-conv", n=5, rate=2.0, seed=1)
>>> inst.n_requests, bool(arrivals[-1] > 0)
(5, True)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import InputError
from splitllm.instance import Instance, parse_instance
from splitllm.instances.arrivals import load_arrivals
from splitllm.instances.generate import DEFAULT_SLO, apply_slo
from splitllm.instances.models import get_shape


#: Latest arrival a workload may have: the instance format's bound on seconds.
MAX_ARRIVAL_S = 1e6


def instance_arrivals(inst: Instance) -> NDArray[np.float64]:
    """The instance's own arrival times (``arrival_s``, default 0)."""
    return np.array([r.arrival_s for r in inst.requests], dtype=float)


def check_rate(rate: float | None, option: str = "--rate") -> None:
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise InputError(option, f"must be a finite number of requests per second > 0, got {rate}")


def retime(times: NDArray[np.float64], rate: float | None, poisson: bool, rng: np.random.Generator) -> NDArray[np.float64]:
    """Arrival times at mean ``rate`` (scaled trace times, or Poisson); unchanged without a rate.

    >>> retime(np.array([0.0, 1.0, 4.0]), 1.0, False, np.random.default_rng(0)).tolist()
    [0.0, 0.5, 2.0]
    """
    check_rate(rate)
    start = float(times.min()) if times.size else 0.0
    if rate is None:
        if poisson:
            raise InputError("--poisson", "needs --rate")
        return times - start
    if poisson:
        gaps = rng.exponential(1.0 / rate, size=len(times))
        return np.concatenate([[0.0], np.cumsum(gaps[1:])])[: len(times)]
    span = float(times.max()) - start if times.size else 0.0  # in any order: the first to the last arrival
    if span <= 0:
        raise InputError("--rate", "the requests all arrive at once: use --poisson to spread them")
    return (times - start) * ((len(times) - 1) / span / rate)


def check_span(arrivals: NDArray[np.float64], option: str = "--rate") -> None:
    """Refuse arrivals past :data:`MAX_ARRIVAL_S` (a rate so low that the workload would span
    more than the instance format allows; simulated time would lose its precision)."""
    last = float(arrivals.max(initial=0.0)) if arrivals.size else 0.0
    if not last <= MAX_ARRIVAL_S:
        raise InputError(option, f"puts the last arrival at {last:.3g} s, past the {MAX_ARRIVAL_S:g} s a workload may span")


def _client_mix(inst: Instance) -> tuple[list[str], NDArray[np.float64]]:
    names = sorted(inst.clients)
    counts = np.array([sum(r.client == n for r in inst.requests) for n in names], dtype=float)
    if counts.sum() == 0:
        counts[:] = 1.0
    return names, counts / counts.sum()


def _clip(lengths: NDArray[np.int64], model: str) -> NDArray[np.int64]:
    try:
        shape = get_shape(model)
    except InputError:
        return lengths
    out = lengths.copy()
    out[:, 1] = np.minimum(out[:, 1], shape.max_context // 4)
    out[:, 0] = np.minimum(out[:, 0], shape.max_context - out[:, 1])
    return out


def trace_slo(overrides: dict[str, str | float] | None = None) -> dict[str, str | float]:
    """The SLO of trace requests: the defaults, each replaced by an override; ``none`` drops one.

    >>> trace_slo({"ttft_s": "10"})
    {'ttft_s': '10', 'tpot_s': '0.1'}
    >>> trace_slo({"tpot_s": "none", "e2e_s": "3x"})
    {'ttft_s': '2', 'e2e_s': '3x'}
    """
    merged = {**DEFAULT_SLO, **(overrides or {})}
    return {key: value for key, value in merged.items() if str(value).strip().lower() != "none"}


def trace_workload(
    inst: Instance,
    trace: str,
    *,
    n: int | None = None,
    rate: float | None = None,
    poisson: bool = False,
    seed: int = 0,
    slo: dict[str, str | float] | None = None,
) -> tuple[Instance, NDArray[np.float64]]:
    """``inst`` with its requests replaced by the first ``n`` of ``trace`` (all when ``None``)."""
    if n is not None and n < 1:
        raise InputError("--requests", f"must be >= 1, got {n}")
    arrivals = load_arrivals(trace)
    count = len(arrivals.times_s) if n is None else min(n, len(arrivals.times_s))
    rng = np.random.default_rng(seed)
    times = retime(arrivals.times_s[:count], rate, poisson, rng)
    lengths = _clip(arrivals.lengths[:count], inst.model.name)
    names, shares = _client_mix(inst)
    picks = rng.choice(len(names), size=count, p=shares)
    data: dict[str, Any] = copy.deepcopy(inst.source)
    data["requests"] = [
        {"id": f"{trace}-{i}", "client": names[k], "prompt_tokens": int(p), "output_tokens": int(o), "arrival_s": round(float(t), 6)}
        for i, (k, (p, o), t) in enumerate(zip(picks, lengths, times))
    ]
    apply_slo(data, trace_slo(slo), option="--slo")
    made = parse_instance(data)
    return made, instance_arrivals(made)
