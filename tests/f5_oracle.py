"""An independent reference for the throughput placement (F5), written from the documented
formulas (README, docs/formulations.md, docs/cost-model.md) and the instance's own figures,
without any solver, formulation or evaluator code; and random snapshots that stress what
the solvers have got wrong before: fractional weights, layer curves that fall with the
count, TTFT limits, requests that could run all on the client, two engines.

The reference enumerates every combination of placements (or rejection) of every request:
- ``T = overhead + per_seq x (admitted requests with a server block) + sum over active
  blocks of (lin_kind(n_b) + the attention floor for a layer) + sum over admitted
  requests' server layers of their attention at context p + o`` (one decode token);
- ``TPOT = client decode of the client blocks + activation crossings + the token crossing
  of the head -> embed edge + T x (s + w)``; ``s + w`` is 1 all-server, 0 all-client,
  else 2 per server segment entered from the client, plus 1 when a server segment wraps
  from the head round to the embedding;
- server KV of the admitted requests' server blocks within the capacity, client memory of
  each admitted request's client blocks within its limit, and (when held) each admitted
  request's batch-1 TTFT within its SLO.
The best admitted weight wins, then the least ``T``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from batch_cases import batch_data
from splitllm.batched import AttentionModel, BatchedCosts
from splitllm.instance import Instance, parse_instance
from splitllm.profiles import Curve

RTOL = 1e-9  # a figure meets its limit when value <= limit * (1 + RTOL) (docs/cost-model.md)
ENGINES = ("vllm", "tensorrt-llm")


def oracle_costs(engine: str = "vllm", falling: bool = True) -> BatchedCosts:
    """Hand-built tables whose layer and head curves fall from 1 to 2 tokens when ``falling``
    (as measured tables sometimes do); the engine sets the overheads (one has a per-sequence one)."""
    layer = [[1, 2.4e-4], [2, 1.9e-4], [4, 2.2e-4], [16, 4.0e-4]] if falling else [[1, 2.0e-4], [4, 2.2e-4], [16, 4.0e-4]]
    head = [[1, 5.4e-4], [2, 5.0e-4], [16, 7.0e-4]] if falling else [[1, 5.0e-4], [2, 5.1e-4], [16, 7.0e-4]]
    lin = {"embed": Curve.from_points([[1, 1.0e-5], [16, 2.0e-5]]), "layer": Curve.from_points(layer), "head": Curve.from_points(head)}
    att = AttentionModel(flops_per_s=1e14, bytes_per_s=1.5e12, floor_s=5e-6, hidden=4096, kv_dim=4096, dtype_bytes=2)
    overhead, per_seq = (2e-3, 0.0) if engine == "vllm" else (1e-3, 6e-5)
    return BatchedCosts("toy-gpu", "toy", lin, att, overhead_s=overhead, memory_bytes=0.0, overhead_per_seq_s=per_seq)


def oracle_instance(seed: int, n_requests: int, n_blocks: int, kv: bool, ttft: bool, fractional: bool) -> Instance:
    """A random snapshot (tests/batch_cases.py's family) with fractional weights when asked,
    and TTFT SLOs drawn inside each request's range when ``ttft``."""
    data = batch_data(seed, n_requests, n_blocks, kv)
    rng = np.random.default_rng(seed + 7)
    for request in data["requests"]:
        if fractional:
            request["weight"] = float(rng.choice([0.1, 0.2, 0.3, 0.7, 1.1, 1.5]))
    inst = parse_instance(data)
    if ttft:
        for r, request in enumerate(data["requests"]):
            first = [ttft_s(inst, r, x) for x in _placements(n_blocks)]
            request.setdefault("slo", {})["ttft_s"] = float(rng.uniform(min(first), max(first)))
        inst = parse_instance(data)
    return inst


def _placements(n_blocks: int) -> list[tuple[bool, ...]]:
    return list(itertools.product((False, True), repeat=n_blocks))


def _crossings(x: tuple[bool, ...], up: float, down: float) -> float:
    total = 0.0
    for b in range(1, len(x)):
        if x[b] and not x[b - 1]:
            total += up
        elif x[b - 1] and not x[b]:
            total += down
    return total


def ttft_s(inst: Instance, r: int, x: tuple[bool, ...]) -> float:
    """Batch-1 TTFT: prefill on each side, prompt up, activation crossings, first token down."""
    a = inst.arrays
    t = sum(a.server_prefill[r, b] if x[b] else a.client_prefill[r, b] for b in range(len(x)))
    t += _crossings(x, a.act_up_prefill[r], a.act_down_prefill[r])
    t += a.prompt_up[r] if x[0] else 0.0
    t += a.first_token_down[r] if x[-1] else 0.0
    return float(t)


def tpot_base(inst: Instance, r: int, x: tuple[bool, ...]) -> float:
    """TPOT without the server: client decode, activation crossings, the token crossing."""
    a = inst.arrays
    t = sum(a.client_decode[r, b] for b in range(len(x)) if not x[b])
    t += _crossings(x, a.act_up_decode[r], a.act_down_decode[r])
    if x[0] and not x[-1]:
        t += a.token_up_decode[r]
    if x[-1] and not x[0]:
        t += a.token_down_decode[r]
    return float(t)


def waits(x: tuple[bool, ...]) -> int:
    """``s + w`` of a placement."""
    if all(x):
        return 1
    entered = sum(1 for b in range(len(x)) if x[b] and not x[b - 1])  # b = 0: from the head
    return 2 * entered + int(x[0] and x[-1])


def iteration_s(inst: Instance, costs: BatchedCosts, chosen: dict[int, tuple[bool, ...]]) -> float:
    """``T`` of the admitted requests ``chosen`` (request -> placement)."""
    kinds = [b.kind for b in inst.model.blocks]
    a = inst.arrays
    t = costs.overhead_s + costs.overhead_per_seq_s * sum(1 for x in chosen.values() if any(x))
    for b, kind in enumerate(kinds):
        n = sum(1 for x in chosen.values() if x[b])
        if n:
            t += float(costs.lin[kind].value([float(n)])[0]) + (costs.attention.floor_s if kind == "layer" else 0.0)
    for r, x in chosen.items():
        ctx = float(a.prompt_tokens[r] + a.output_tokens[r])
        layers = sum(1 for b, kind in enumerate(kinds) if kind == "layer" and x[b])
        t += layers * float(costs.attention.item_s([1.0], [ctx])[0])
    return float(t)


def _ok(value: float, limit: float) -> bool:
    return not math.isfinite(limit) or value <= limit * (1 + RTOL)


@dataclass(frozen=True)
class Optimum:
    weight: float
    t: float


def capacity(inst: Instance, costs: BatchedCosts) -> float:
    a = inst.arrays
    if math.isfinite(a.kv_capacity):
        return float(a.kv_capacity)
    return costs.memory_bytes - costs.weight_bytes if costs.memory_bytes > 0 else math.inf


def brute_optimum(inst: Instance, costs: BatchedCosts, ttft: bool) -> Optimum:
    """The F5 optimum by enumeration (module docstring); weight 0 and ``T = overhead`` when nothing is admitted."""
    a, R, B = inst.arrays, inst.n_requests, inst.n_blocks
    options: list[list[tuple[bool, ...] | None]] = []
    for r in range(R):
        keep: list[tuple[bool, ...] | None] = [None]
        for x in _placements(B):
            mem = sum(a.client_mem[r, b] for b in range(B) if not x[b])
            if not _ok(mem, a.client_mem_limit[r]) or not _ok(tpot_base(inst, r, x), a.tpot_limit[r]):
                continue
            if ttft and not _ok(ttft_s(inst, r, x), a.ttft_limit[r]):
                continue
            keep.append(x)
        options.append(keep)
    cap = capacity(inst, costs)
    best = Optimum(-1.0, math.inf)
    for combo in itertools.product(*options):
        chosen = {r: x for r, x in enumerate(combo) if x is not None}
        weight = float(sum(a.weight[r] for r in chosen))
        if weight < best.weight * (1 - 1e-12):
            continue
        kv = sum(a.kv[r, b] for r, x in chosen.items() for b in range(B) if x[b])
        if not _ok(kv, cap):
            continue
        t = iteration_s(inst, costs, chosen)
        if not all(_ok(tpot_base(inst, r, x) + t * waits(x), a.tpot_limit[r]) for r, x in chosen.items()):
            continue
        if weight > best.weight * (1 + 1e-12) or t < best.t:
            best = Optimum(weight, t)
    return best


def with_costs(costs_by_engine: dict[str, BatchedCosts]):  # noqa: ANN201 - a monkeypatch target
    """A stand-in for ``splitllm.batch_costs.batched_costs`` returning the given tables."""
    return lambda instance, engine="vllm": costs_by_engine[engine]


__all__ = ["ENGINES", "Optimum", "brute_optimum", "iteration_s", "oracle_costs", "oracle_instance", "replace", "with_costs"]
