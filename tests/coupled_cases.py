"""Small coupled instances with realistic magnitudes (seconds ~1e-4, bytes ~1e8..1e9).

Per-request explicit ``costs``; the capacities are set from the per-request DP's least
totals so that they bind: ``work_capacity_s`` and ``kv_capacity_bytes`` are drawn
factors of the least-work placements' total work and KV.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from splitllm.bench.synthetic import explicit_instance, explicit_request
from splitllm.solvers.columns import dp_columns
from splitllm.instance import Instance, parse_instance


def random_clients(rng: np.random.Generator, total_weight: float, memory: tuple[float, float],
                   rtt_s: tuple[float, float]) -> dict[str, dict[str, float]]:
    """A phone and a laptop: memory a uniform share ``memory`` of the model's weights,
    links of 3-100 MB/s up and 10-300 MB/s down, RTT uniform in ``rtt_s``."""
    return {
        name: {
            "memory_bytes": float(rng.uniform(*memory)) * total_weight,
            "uplink_bytes_per_s": float(10 ** rng.uniform(6.5, 8)),
            "downlink_bytes_per_s": float(10 ** rng.uniform(7, 8.5)),
            "rtt_s": float(rng.uniform(*rtt_s)),
        }
        for name in ("phone", "laptop")
    }


def coupled_data(seed: int, n_requests: int, n_blocks: int, objective: str) -> dict[str, Any]:
    """An instance dict without capacities (see :func:`coupled_instance`)."""
    rng = np.random.default_rng(seed)
    blocks = [{"kind": "embed", "weight_bytes": 2.6e8, "kv_bytes_per_token": 0}]
    blocks += [{"kind": "layer", "weight_bytes": 4.0e8, "kv_bytes_per_token": float(rng.choice([2.6e5, 5.2e5]))} for _ in range(n_blocks - 2)]
    blocks += [{"kind": "head", "weight_bytes": 2.6e8, "kv_bytes_per_token": 0}]
    total_weight = sum(b["weight_bytes"] for b in blocks)
    clients = random_clients(rng, total_weight, memory=(0.3, 1.2), rtt_s=(0.005, 0.04))
    requests = []
    for r in range(n_requests):
        p, o = int(rng.integers(16, 1500)), int(rng.integers(1, 200))
        vary = 1 + 0.4 * rng.uniform(-1, 1, n_blocks)
        server_prefill = (2e-4 + 1e-6 * p) * vary
        server_decode = 1.5e-4 * vary
        slow = rng.uniform(3, 20)
        client_prefill, client_decode = server_prefill * slow, server_decode * slow / 2
        slo = {"ttft_s": float(rng.uniform(server_prefill.sum() + 0.05, client_prefill.sum() + 0.1))}
        if o > 1 and rng.random() < 0.7:
            slo["tpot_s"] = float(rng.uniform(server_decode.sum() + 0.03, client_decode.sum() * 1.2 + 0.03))
        client = "phone" if rng.random() < 0.5 else "laptop"
        costs = (server_prefill, server_decode, client_prefill, client_decode)
        requests.append(explicit_request(f"r{r}", client, p, o, slo, float(rng.integers(1, 4)), *costs))
    return explicit_instance(f"coupled-{seed}", objective, blocks, 8192, clients, requests)


def coupled_instance(seed: int, n_requests: int = 3, n_blocks: int = 5, objective: str = "min_server_work") -> Instance:
    """:func:`coupled_data` with binding work and KV capacities drawn from the DP's totals."""
    data = coupled_data(seed, n_requests, n_blocks, objective)
    free = parse_instance(data)
    data["server"] = {"kv_capacity_bytes": 1.0}  # makes the DP keep Pareto columns
    columns = dp_columns(parse_instance(data))
    assert columns is not None
    work = sum(c.least_work * n for c, n in zip(columns.per_type, columns.counts) if c.work.size)
    kv_hi = sum(c.kv[0] * n for c, n in zip(columns.per_type, columns.counts) if c.work.size)
    kv_lo = sum(c.least_kv * n for c, n in zip(columns.per_type, columns.counts) if c.work.size)
    rng = np.random.default_rng(seed + 1)
    if objective == "max_admitted":
        work_cap, kv_cap = rng.uniform(0.4, 1.1) * work, rng.uniform(0.3, 1.0) * kv_hi
    else:  # between the least KV and the least-work placements' KV, so KV trades against work
        work_cap, kv_cap = rng.uniform(1.0, 1.3) * work, kv_lo + rng.uniform(0.0, 1.05) * (kv_hi - kv_lo)
    data["server"] = {
        "work_capacity_s": float(work_cap) or float(free.arrays.work.sum()),
        "kv_capacity_bytes": float(kv_cap) or float(free.arrays.kv.sum()),
    }
    return parse_instance(data)
