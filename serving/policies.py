"""Placement policies: how each request is placed when it arrives.

* ``all-server``: every block on the server.
* any registered solver (``greedy``, ``dp``, ...): the request placed alone (no server
  capacity: the batch-1 per-request problem), a request it cannot place is not sent;
  identical requests are placed once.
* ``solution:FILE``: the placements of a solution file for this very instance (same
  requests, same order); rejected requests are not sent.

The wall time of placing is always measured. Charged in simulated time (``latency``), it
delays the start of the first request of each group of identical ones by that group's
share of the solve time (the others reuse the answer).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> p = place(load_instance(example_path("tiny")), "dp")
>>> p.placements.shape, p.sent.tolist()
((2, 3), [True, True])
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import InputError, SplitLLMError
from splitllm.instance import Instance, parse_instance
from splitllm.jsonio import read_json
from splitllm.registry import solve
from splitllm.solvers.per_request import unique_requests


@dataclass(frozen=True)
class Placement:
    """Per request: ``placements`` (``True`` = server), ``sent``; ``wall_s`` of placing all;
    ``latency_s`` charged to each request when placing is simulated."""

    policy: str
    placements: NDArray[np.bool_]
    sent: NDArray[np.bool_]
    wall_s: float
    latency_s: NDArray[np.float64]


def place(inst: Instance, policy: str) -> Placement:
    """Place every request of ``inst`` by ``policy`` (see the module docstring)."""
    if policy.startswith("solution:"):
        return _replay(inst, policy, Path(policy.split(":", 1)[1]))
    n, b = inst.n_requests, inst.n_blocks
    if policy == "all-server":
        return Placement(policy, np.ones((n, b), bool), np.ones(n, bool), 0.0, np.zeros(n))
    uncoupled = _per_request_problem(inst)
    started = time.perf_counter()
    try:
        result = solve(uncoupled, policy)
    except SplitLLMError as exc:
        raise InputError("--policy", str(exc)) from None
    wall = time.perf_counter() - started
    if result.placements is None or result.admitted is None:
        raise InputError("--policy", f"{policy} placed nothing ({result.status.value}: {result.message})")
    first, inverse = unique_requests(inst.arrays)
    latency = np.zeros(n)
    latency[first] = wall / len(first)
    return Placement(policy, np.asarray(result.placements, bool), np.asarray(result.admitted, bool), wall, latency)


def _per_request_problem(inst: Instance) -> Instance:
    """``inst`` without server capacities, each request admitted on its own (max_admitted)."""
    data = copy.deepcopy(inst.source)
    data["objective"] = "max_admitted"
    for key in ("work_capacity_s", "kv_capacity_bytes"):
        data.get("server", {}).pop(key, None)
    return parse_instance(data)


def _replay(inst: Instance, policy: str, path: Path) -> Placement:
    if not path.is_file():
        raise InputError("--policy", f"no such solution file {path}")
    entries = read_json(path).get("requests")
    if not isinstance(entries, list) or len(entries) != inst.n_requests:
        raise InputError("--policy", f"{path}: needs one entry per request of the instance ({inst.n_requests})")
    x = np.ones((inst.n_requests, inst.n_blocks), bool)
    sent = np.zeros(inst.n_requests, bool)
    for i, (entry, request) in enumerate(zip(entries, inst.requests)):
        text = entry.get("placement") if isinstance(entry, dict) else None
        if isinstance(entry, dict) and entry.get("id", request.id) != request.id:
            raise InputError("--policy", f"{path}: requests[{i}].id is {entry.get('id')!r}, the instance has {request.id!r}")
        if text is None:
            continue
        if not isinstance(text, str) or len(text) != inst.n_blocks or set(text) - {"C", "S"}:
            raise InputError("--policy", f"{path}: requests[{i}].placement must be {inst.n_blocks} letters C/S")
        x[i] = [ch == "S" for ch in text]
        sent[i] = bool(entry.get("admitted", True))
    return Placement(policy, x, sent, 0.0, np.zeros(inst.n_requests))
