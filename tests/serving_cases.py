"""Hand instances for the serving simulator, with batched tables whose block times equal
the instance's batch-1 server costs.

The identity: attention is free (infinite FLOP/s and bytes/s, no floor), the overhead is
0, each kind's ``lin`` passes through (1 token, decode cost) and (P tokens, prefill cost),
and the head's prefill cost equals its decode cost (the head samples one token either way).
An iteration of one item then costs exactly the sum of its blocks' batch-1 costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from splitllm.batched import AttentionModel, BatchedCosts
from splitllm.instance import Instance, parse_instance
from splitllm.profiles import Curve

P, O = 10, 4
KINDS = ("embed", "layer", "layer", "layer", "head")
SERVER_PREFILL = {"embed": 0.005, "layer": 0.02, "head": 0.003}
SERVER_DECODE = {"embed": 0.001, "layer": 0.002, "head": 0.003}
CLIENT_PREFILL = {"embed": 0.01, "layer": 0.3, "head": 0.006}
CLIENT_DECODE = {"embed": 0.002, "layer": 0.03, "head": 0.006}


def costs(overhead_s: float = 0.0) -> BatchedCosts:
    lin = {k: Curve.from_points([[1, SERVER_DECODE[k]], [P, SERVER_PREFILL[k]]]) for k in ("embed", "layer")}
    lin["head"] = Curve.from_points([[1, SERVER_DECODE["head"]], [P, SERVER_DECODE["head"]]])
    attention = AttentionModel(np.inf, np.inf, 0.0, hidden=8, kv_dim=8, dtype_bytes=2)
    return BatchedCosts("hand", "hand-5", lin, attention, overhead_s=overhead_s)


def request(rid: str, arrival: float | None = None, output: int = O) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rid, "client": "phone", "prompt_tokens": P, "output_tokens": output,
        "costs": {
            "server_prefill_s": [SERVER_PREFILL[k] for k in KINDS],
            "server_decode_s": [SERVER_DECODE[k] for k in KINDS],
            "client_prefill_s": [CLIENT_PREFILL[k] for k in KINDS],
            "client_decode_s": [CLIENT_DECODE[k] for k in KINDS],
        },
    }  # fmt: skip
    if arrival is not None:
        data["arrival_s"] = arrival
    return data


def instance(requests: list[dict[str, Any]]) -> Instance:
    return parse_instance({
        "format": "splitllm/instance", "version": 1, "name": "serving-hand", "objective": "min_server_work",
        "model": {
            "name": "hand-5", "activation_bytes_per_token": 4, "token_bytes": 1,
            "blocks": [{"name": f"b{i}", "kind": k, "weight_bytes": 100, "kv_bytes_per_token": 10 if k == "layer" else 0}
                       for i, k in enumerate(KINDS)],
        },
        "server": {},
        "clients": {"phone": {"memory_bytes": 1e9, "uplink_bytes_per_s": 1000, "downlink_bytes_per_s": 2000, "rtt_s": 0.02}},
        "requests": requests,
    })  # fmt: skip


def placement(text: str) -> np.ndarray:
    return np.array([ch == "S" for ch in text], dtype=bool)
