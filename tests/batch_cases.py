"""Small F5 snapshots with realistic magnitudes, and hand-built batched tables.

Layer GEMMs cost about the same for 1 and 8 tokens (a fixed charge), attention grows
with the context, an engine overhead of 2 ms; clients 2-20x slower per block; TPOT SLOs
drawn between one iteration and the all-client time, so that they bind; a KV capacity
drawn as a fraction of the all-server KV when ``kv`` is set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coupled_cases import random_clients

from splitllm.batched import AttentionModel, BatchedCosts
from splitllm.bench.synthetic import explicit_instance, explicit_request
from splitllm.evaluator import request_metrics
from splitllm.instance import Instance, parse_instance
from splitllm.profiles import Curve
from splitllm.solvers.brute import all_placements


def toy_costs(overhead_s: float = 2e-3) -> BatchedCosts:
    """Hand-built tables: layer 0.2 ms at 1 token, 0.22 ms at 4, 0.4 ms at 16."""
    layer = Curve.from_points([[1, 2.0e-4], [4, 2.2e-4], [16, 4.0e-4]])
    embed = Curve.from_points([[1, 1.0e-5], [16, 2.0e-5]])
    head = Curve.from_points([[1, 5.0e-4], [2, 5.1e-4], [16, 7.0e-4]])
    att = AttentionModel(flops_per_s=1e14, bytes_per_s=1.5e12, floor_s=5e-6, hidden=4096, kv_dim=4096, dtype_bytes=2)
    lin = {"embed": embed, "layer": layer, "head": head}
    return BatchedCosts("toy-gpu", "toy", lin, att, overhead_s=overhead_s, memory_bytes=0.0)


def batch_data(seed: int, n_requests: int, n_blocks: int, kv: bool) -> dict[str, Any]:
    """An instance dict (see the module docstring)."""
    rng = np.random.default_rng(seed)
    kv_tok = 5.2e5
    blocks = [{"kind": "embed", "weight_bytes": 2.6e8, "kv_bytes_per_token": 0}]
    blocks += [{"kind": "layer", "weight_bytes": 4.0e8, "kv_bytes_per_token": kv_tok} for _ in range(n_blocks - 2)]
    blocks += [{"kind": "head", "weight_bytes": 2.6e8, "kv_bytes_per_token": 0}]
    total_weight = sum(b["weight_bytes"] for b in blocks)
    clients = random_clients(rng, total_weight, memory=(0.5, 1.5), rtt_s=(0.0005, 0.004))
    requests = []
    for r in range(n_requests):
        p, o = int(rng.integers(16, 1500)), int(rng.integers(2, 200))
        server = np.full(n_blocks, 2e-4)
        client_decode = server * rng.uniform(2, 20) * (1 + 0.2 * rng.uniform(-1, 1, n_blocks))
        slo = {"tpot_s": float(rng.uniform(2.0e-3, client_decode.sum() * 1.1 + 0.005))} if rng.random() < 0.9 else {}
        client = "phone" if rng.random() < 0.5 else "laptop"
        costs = (server, server, client_decode * 3, client_decode)
        requests.append(explicit_request(f"r{r}", client, p, o, slo, float(rng.integers(1, 4)), *costs))
    data = explicit_instance(f"batch-{seed}", "max_admitted", blocks, 8192, clients, requests)
    if kv:
        all_server = sum(kv_tok * (n_blocks - 2) * (q["prompt_tokens"] + q["output_tokens"]) for q in requests)
        data["server"] = {"kv_capacity_bytes": float(rng.uniform(0.2, 0.8)) * all_server}
    return data


def batch_instance(seed: int, n_requests: int = 3, n_blocks: int = 4, kv: bool = False, ttft: bool = False) -> Instance:
    """:func:`batch_data`, parsed; with ``ttft``, each request also gets a TTFT SLO drawn
    between the least and the largest batch-1 TTFT of its placements, so that it binds."""
    data = batch_data(seed, n_requests, n_blocks, kv)
    if ttft:
        inst = parse_instance(data)
        x = all_placements(n_blocks)
        rng = np.random.default_rng(seed + 1)
        for r, request in enumerate(data["requests"]):
            first = request_metrics(inst.arrays, np.full(len(x), r), x).ttft
            request.setdefault("slo", {})["ttft_s"] = float(rng.uniform(first.min(), first.max()))
    return parse_instance(data)
