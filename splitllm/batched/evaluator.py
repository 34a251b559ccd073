"""The independent evaluator of throughput placements (F5): one decode batch on the server.

A snapshot of requests that are all decoding. Given which requests are admitted and
where each runs every block, it recomputes, from the cost model's formulas and nothing
else (no solver code):

* ``T``, the time of one decode iteration over the admitted requests' server blocks,
  :func:`splitllm.batched.iteration_time` with ``q = 1`` and each request's context taken
  as ``p + o`` (the largest it reaches; attention only grows with the context, so this is
  conservative for every step);
* each admitted request's promised TPOT: its client decode time and decode crossings at
  batch 1 (the cost model's per-step figures, server compute left out) plus
  ``T * (s + w)``: ``s`` server segments in its decode cycle ``head -> embed -> ... -> head``
  and ``w`` of them entered from the client (each waits up to one iteration, then runs one);
  an all-server request has ``s = 1, w = 0``, an all-client one ``s = w = 0``; a server
  segment that wraps from the head round to the embedding runs in two iterations (the
  sampled token is there only at the end of one), so it counts one more;
* the server KV (every admitted request's server blocks, ``kv_bytes_per_token * (p + o)``)
  against the capacity: the instance's ``server.kv_capacity_bytes``, else the GPU's memory
  minus the model's weights (no limit when the tables give no memory);
* each admitted request's client memory.

* with ``ttft``, each admitted request's batch-1 TTFT (the cost model of one request
  alone) against its ``ttft_s``: a limit for a snapshot of arriving requests.

E2E and server work are batch-1 figures of the whole request and are not F5 limits; they
are reported as null, and so is TTFT without ``ttft``.

Examples
--------
>>> from splitllm.batched import all_blocks
>>> cycle_factor(np.array([[True, True, True], [False, True, False], [True, False, True], [False, False, False]]))
array([1, 2, 3, 0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import BatchedCosts, iteration_time
from splitllm.errors import InputError
from splitllm.evaluator import Evaluation, Metrics, exceeds, request_metrics
from splitllm.instance import Instance
from splitllm.result import SolveResult, Status
from splitllm.tolerances import FIGURE_RTOL

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class BatchEvaluation(Evaluation):
    """An :class:`~splitllm.evaluator.Evaluation` plus the decode iteration time ``T`` (seconds)."""

    iteration_time: float = math.nan


def check_batch_instance(instance: Instance, costs: BatchedCosts, *, decoding_only: bool = True) -> None:
    """Refuse what F5 cannot place: blocks without a table, requests that do not decode
    (unless ``decoding_only`` is false)."""
    missing = sorted({b.kind for b in instance.model.blocks} - set(costs.lin))
    if missing:
        raise InputError("model.blocks", f"kind(s) {', '.join(missing)} have no batched table on {costs.device}")
    if not decoding_only:
        return
    short = np.nonzero(instance.arrays.output_tokens < 2)[0]
    if short.size:
        raise InputError(f"requests[{short[0]}].output_tokens", "F5 places decoding requests: must be >= 2")


def kinds(instance: Instance) -> tuple[str, ...]:
    """The block kinds of the instance's model, in order."""
    return tuple(b.kind for b in instance.model.blocks)


def context(instance: Instance) -> NDArray[np.float64]:
    """The context each request's decode attention is priced at: ``p + o`` tokens."""
    a = instance.arrays
    return (a.prompt_tokens + a.output_tokens).astype(float)


def kv_capacity(instance: Instance, costs: BatchedCosts) -> float:
    """Server KV bytes: the instance's capacity, else GPU memory minus weights (``inf`` if unknown)."""
    given = instance.arrays.kv_capacity
    if math.isfinite(given):
        return float(given)
    return float(costs.memory_bytes - costs.weight_bytes) if costs.memory_bytes > 0 else math.inf


def cycle_factor(placements: BoolArray) -> NDArray[np.int64]:
    """``s + w`` of each placement: how many iterations, waits included, one decode step
    may spend on the server.

    All-server: 1 (the whole step is one iteration). All-client: 0. Otherwise each server
    segment entered from the client may wait up to one iteration and runs in one: 2 per
    entry, counting the head -> embed edge. A segment that wraps from the head round to
    the embedding (both on the server, the middle not) costs one iteration more: the
    token the head samples is only there at the end of an iteration, so the next step's
    embedding runs in the next one.

    >>> cycle_factor(np.array([[1, 1, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]], dtype=bool)).tolist()
    [1, 2, 2, 3, 0]
    """
    x = np.asarray(placements, dtype=bool)
    entered = (x & ~np.roll(x, 1, axis=-1)).sum(axis=-1)  # client -> server steps, head -> embed included
    full = x.all(axis=-1)
    wraps = x[..., 0] & x[..., -1] & ~full
    return np.where(full, 1, 2 * entered + wraps).astype(np.int64)


def decode_base(instance: Instance, placements: BoolArray) -> NDArray[np.float64]:
    """Per-step client decode time plus decode crossings (batch-1 figures, no server compute)."""
    a = instance.arrays
    no_server = replace(a, server_decode=np.zeros_like(a.server_decode))
    x = np.asarray(placements, dtype=bool)
    return request_metrics(no_server, np.arange(len(x)), x).tpot


def evaluate_batch(instance: Instance, costs: BatchedCosts, placements: BoolArray, admitted: BoolArray,
                   ttft: bool = False) -> BatchEvaluation:
    """Re-evaluate a throughput placement; ``violations`` names every broken limit
    (each admitted request's batch-1 TTFT among them when ``ttft``)."""
    check_batch_instance(instance, costs)
    a = instance.arrays
    x = np.asarray(placements, dtype=bool)
    adm = np.asarray(admitted, dtype=bool)
    ctx = context(instance)
    t = float(iteration_time(costs, kinds(instance), x[adm], q=np.ones(int(adm.sum())), context=ctx[adm]))
    tpot = decode_base(instance, x) + t * cycle_factor(x)
    kv = np.where(x, a.kv, 0.0).sum(axis=1)
    mem = np.where(x, 0.0, a.client_mem).sum(axis=1)
    nan = np.full(len(x), np.nan)
    first = request_metrics(a, np.arange(len(x)), x).ttft if ttft else nan
    metrics = Metrics(work=nan, kv=kv, ttft=first, tpot=tpot, e2e=nan, client_mem=mem).where(adm)
    violations = _violations(instance, metrics, adm, kv_capacity(instance, costs), ttft)
    totals = {"work": math.nan, "kv": float(kv[adm].sum())}
    return BatchEvaluation(adm, metrics, violations, float(a.weight[adm].sum()), totals, iteration_time=t)


def _violations(instance: Instance, m: Metrics, adm: BoolArray, capacity: float, ttft: bool) -> list[str]:
    a = instance.arrays
    out = []
    for i in np.nonzero(adm)[0]:
        rid = instance.requests[i].id
        if exceeds(m.tpot[i], a.tpot_limit[i]):
            out.append(f"requests[{i}] (id {rid!r}): batched tpot_s {m.tpot[i]:.6g} s > SLO {a.tpot_limit[i]:.6g} s")
        if ttft and exceeds(m.ttft[i], a.ttft_limit[i]):
            out.append(f"requests[{i}] (id {rid!r}): batch-1 ttft_s {m.ttft[i]:.6g} s > SLO {a.ttft_limit[i]:.6g} s")
        if exceeds(m.client_mem[i], a.client_mem_limit[i]):
            out.append(f"requests[{i}] (id {rid!r}): client_mem_bytes {m.client_mem[i]:.6g} > {a.client_mem_limit[i]:.6g}")
    total = float(m.kv[adm].sum())
    if exceeds(total, capacity):
        out.append(f"server.kv_capacity_bytes: total server KV {total:.6g} bytes > {capacity:.6g} bytes")
    return out


def verify_batch(instance: Instance, costs: BatchedCosts, result: SolveResult, ttft: bool = False) -> SolveResult:
    """Re-check an F5 answer; a broken limit or a misstated figure makes it ``error``.

    ``result.objective`` is the admitted weight (``bound`` an upper bound on it);
    ``result.info["iteration_time_s"]`` the claimed ``T`` and, when given,
    ``info["iteration_time_bound_s"]`` a lower bound on ``T`` at that weight.
    On success both are replaced by the evaluator's figures.
    """
    if result.placements is None or result.admitted is None:
        if result.status.has_solution:
            result.status, result.message = Status.ERROR, f"solver said {result.status.value} but returned no placements"
        return result
    ev = evaluate_batch(instance, costs, result.placements, result.admitted, ttft)
    result.evaluation = ev
    problems = list(ev.violations)
    problems += _claim("objective", result.objective, ev.admitted_weight, 1.0)
    problems += _claim("iteration_time_s", result.info.get("iteration_time_s"), ev.iteration_time, 1e-12)
    slack = FIGURE_RTOL * max(1.0, ev.admitted_weight)
    if result.bound is not None and result.bound < ev.admitted_weight - slack:
        problems.append(f"bound: {result.bound:.9g} is below the admitted weight {ev.admitted_weight:.9g}")
    t_bound = result.info.get("iteration_time_bound_s")
    if t_bound is not None and t_bound > ev.iteration_time * (1 + FIGURE_RTOL):
        problems.append(f"iteration_time_bound_s: {t_bound:.9g} is above T {ev.iteration_time:.9g}")
    if problems:
        result.status = Status.ERROR
        result.message = "; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")
    else:
        result.objective = ev.admitted_weight
        result.info["iteration_time_s"] = ev.iteration_time
    return result


def _claim(name: str, claimed: float | None, true: float, floor: float) -> list[str]:
    if claimed is None or abs(claimed - true) <= FIGURE_RTOL * max(floor, abs(true)):
        return []
    return [f"{name}: solver said {claimed:.9g}, evaluator finds {true:.9g}"]
