"""Random explicit-cost instances with realistic magnitudes, for tests and benchmarks.

Seconds run from ~1e-4 (one server layer) to seconds (client prefill), bytes from 4 (a
token id) to ~1e9 (weights, KV caches), so numerics are exercised as in real instances.
SLOs are drawn between the all-server and all-client figures so that they bind.

Examples
--------
>>> inst = random_instance(0, n_requests=2, n_blocks=5)
>>> inst.n_requests, inst.n_blocks
(2, 5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from splitllm.instance import Instance, parse_instance


def random_instance_data(
    seed: int,
    n_requests: int = 3,
    n_blocks: int = 6,
    objective: str = "min_server_work",
    slo_tightness: float = 1.0,
    memory_fraction: float | None = None,
    vary_layers: float = 0.3,
    slos: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A Llama-like chain (embed, layers, head) with seconds ~1e-4..1 and bytes ~1e6..1e9.

    SLOs are drawn around the all-server and all-client figures so that they bind, scaled
    by ``slo_tightness``; ``memory_fraction`` sets client memory as a share of the whole
    model's weights (random when ``None``). ``slos`` names the SLOs every request gets
    (``ttft_s``, ``tpot_s``, ``e2e_s``); by default each request draws a random mix.
    """
    rng = np.random.default_rng(seed)
    layer_weight = 200e6
    blocks = [{"kind": "embed", "weight_bytes": 260e6, "kv_bytes_per_token": 0}]
    blocks += [{"kind": "layer", "weight_bytes": layer_weight, "kv_bytes_per_token": 512e3} for _ in range(n_blocks - 2)]
    blocks += [{"kind": "head", "weight_bytes": 260e6, "kv_bytes_per_token": 0}]
    total_weight = sum(b["weight_bytes"] for b in blocks)
    clients = {}
    for name in ("phone", "laptop"):
        frac = memory_fraction if memory_fraction is not None else float(rng.uniform(0.1, 1.2))
        clients[name] = {
            "memory_bytes": frac * total_weight,
            "uplink_bytes_per_s": float(10 ** rng.uniform(7, 9.5)),
            "downlink_bytes_per_s": float(10 ** rng.uniform(7, 9.5)),
            "rtt_s": float(rng.uniform(0.0, 0.01)),
        }
    requests = []
    for r in range(n_requests):
        p, o = int(rng.integers(1, 2000)), int(rng.integers(1, 300))
        scale = 1 + vary_layers * rng.uniform(-1, 1, n_blocks)
        server_prefill = 1e-4 * p / 100 * scale + 2e-4
        server_decode = 1.5e-4 * scale
        slow = rng.uniform(3, 30)
        client_prefill = server_prefill * slow
        client_decode = server_decode * slow / 3
        ttft_all_server = server_prefill.sum()
        ttft_all_client = client_prefill.sum()
        slo: dict[str, float] = {}
        pick = rng.integers(0, 4)
        if slos is not None:
            pick = {("ttft_s",): 0, ("tpot_s",): 1, ("e2e_s",): 2, ("tpot_s", "ttft_s"): 3}[tuple(sorted(slos))]
        if pick in (0, 3):
            slo["ttft_s"] = slo_tightness * float(rng.uniform(ttft_all_server, ttft_all_client))
        if pick in (1, 3) and o > 1:
            slo["tpot_s"] = slo_tightness * float(rng.uniform(server_decode.sum(), client_decode.sum() * 1.2))
        if pick == 2:
            e2e_server = ttft_all_server + (o - 1) * server_decode.sum()
            slo["e2e_s"] = slo_tightness * float(rng.uniform(e2e_server, 3 * e2e_server))
        client = "phone" if rng.random() < 0.5 else "laptop"
        costs = (server_prefill, server_decode, client_prefill, client_decode)
        requests.append(explicit_request(f"r{r}", client, p, o, slo, float(rng.integers(1, 4)), *costs))
    return explicit_instance(f"random-{seed}", objective, blocks, 1024, clients, requests)


def explicit_instance(
    name: str,
    objective: str,
    blocks: list[dict[str, Any]],
    activation_bytes_per_token: float,
    clients: dict[str, Any],
    requests: list[dict[str, Any]],
) -> dict[str, Any]:
    """An instance dict of explicit-cost requests, without capacities."""
    return {
        "format": "splitllm/instance",
        "version": 1,
        "name": name,
        "objective": objective,
        "model": {"blocks": blocks, "activation_bytes_per_token": activation_bytes_per_token, "token_bytes": 4},
        "server": {},
        "clients": clients,
        "requests": requests,
    }


def explicit_request(
    rid: str,
    client: str,
    prompt_tokens: int,
    output_tokens: int,
    slo: dict[str, float],
    weight: float,
    server_prefill: np.ndarray,
    server_decode: np.ndarray,
    client_prefill: np.ndarray,
    client_decode: np.ndarray,
) -> dict[str, Any]:
    """One request entry with explicit per-block costs (seconds)."""
    return {
        "id": rid,
        "client": client,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "slo": slo,
        "weight": weight,
        "costs": {
            "server_prefill_s": server_prefill.tolist(),
            "server_decode_s": server_decode.tolist(),
            "client_prefill_s": client_prefill.tolist(),
            "client_decode_s": client_decode.tolist(),
        },
    }


def random_instance(seed: int, **kwargs: Any) -> Instance:
    return parse_instance(random_instance_data(seed, **kwargs))
