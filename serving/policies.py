"""Placement policies: how each request is placed when it arrives.

Every policy is a spec of the policy registry (:mod:`splitllm.serving.registry`;
``splitllm policies`` lists them):

* ``all-server``: every block on the server.
* ``batch-online`` (:mod:`.online`): each arriving request placed given the server's
  current batch.
* any registered solver (``greedy``, ``dp``, ...): the request placed alone (no server
  capacity: the batch-1 per-request problem), a request it cannot place is not sent;
  identical requests are placed once.
* ``solution:FILE``: the placements of a solution file for this very instance (same
  requests, same order), checked first as ``splitllm check`` checks it (a file that is
  not a valid solution of the instance is refused); rejected requests are not sent.
* ``batch[:N[:S]]``, ``batch-greedy[:N[:S]]`` (and the other throughput-placement
  solvers, ``batch-milp``, ``batch-cpsat``, ``batch-brute``): batch-aware, windowed. The requests,
  in arrival order (ties: instance order), are cut into consecutive windows of ``N``
  (default :data:`WINDOW`; the last may be shorter). Each window's requests with at least
  2 output tokens are placed together as one throughput-placement (F5) snapshot by the
  registered solver of that name, with at most ``S`` seconds (default
  :data:`WINDOW_BUDGET_S`), their own TPOT SLOs and batch-1 TTFT SLOs (``ttft=true``:
  they are arriving), the server's batched tables of the simulated engine and the
  simulated KV capacity. Requests with 1 output token go all on
  the server, and so do the requests the solver rejects (or all of a window it places
  nothing of): every request is sent. Windows count requests, not seconds, so the
  placements do not depend on the arrival rate (a capacity search places once).

The wall time of placing is always measured. Charged in simulated time (``latency``), it
delays the start of the first request of each group of identical ones by that group's
share of the solve time (the others reuse the answer); for a windowed policy, every
request of a window by the solve time of its window (the wait for the window to fill is
not charged); for ``batch-online``, the requests of each arrival instant by the time
spent placing them.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> p = place(load_instance(example_path("tiny")), "dp")
>>> p.placements.shape, p.sent.tolist()
((2, 3), [True, True])
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import InputError, InputErrors, OptionError, SplitLLMError
from splitllm.identical import unique_requests
from splitllm.instance import Instance, parse_instance
from splitllm.jsonio import read_json
from splitllm.options import Option
from splitllm.registry import SolverSpec, solve, solvers
from splitllm.resources import COUPLED, Objective
from splitllm.solution import check_solution
# Each module of a policy that registers itself, one line each:
from splitllm.serving import online  # noqa: F401  (batch-online)
from splitllm.serving import planned  # noqa: F401  (plan, cut)
from splitllm.serving.registry import Placement, PolicySpec, Server, get_policy, register_policy, register_solver_policies
from splitllm.serving.simulator import SimConfig, SimResult, simulate


def run_policy(inst: Instance, placement: Placement, cfg: SimConfig, arrivals: NDArray[np.float64], *,
               charge: bool = False, progress: Callable[[int], None] | None = None) -> tuple[SimResult, Placement]:
    """One simulation of ``placement`` over requests arriving at ``arrivals``.

    With ``charge``, placing is charged in simulated time (``latency_s``, or an online
    placer's wall time). TTFT and E2E are from each request's arrival. An online policy's
    placement comes back with what it placed and its wall time.
    """
    start = arrivals + (placement.latency_s if charge else 0.0)
    placer = placement.online() if placement.online is not None else None
    sim = simulate(inst, placement.placements, cfg, arrivals=start, sent=placement.sent, progress=progress, placer=placer,
                   charge_placer=charge)
    sim.ttft, sim.e2e = sim.ttft + (start - arrivals), sim.e2e + (start - arrivals)
    if placer is not None:
        placement = replace(placement, placements=sim.placements, wall_s=placer.wall_s)
    return sim, placement


#: Requests per window of ``batch`` / ``batch-greedy`` and the solver's seconds per window.
WINDOW, WINDOW_BUDGET_S = 32, 10.0
#: The arguments of a windowed policy ``solver[:N[:S]]``.
WINDOW_OPTIONS = (
    Option("N", "integer", WINDOW, "requests a window, in arrival order", low=1),
    Option("S", "number", WINDOW_BUDGET_S, "the solver's seconds a window", low=0, low_open=True),
)


def is_throughput_solver(solver: SolverSpec) -> bool:
    """A throughput-placement (F5) solver: it prices ``T`` on a serving engine's tables (an ``engine`` option)."""
    return any(option.name == "engine" for option in solver.options)


def windowed(policy: str) -> tuple[str, int, float] | None:
    """``(solver, N, S)`` of a windowed policy ``solver[:N[:S]]``; ``None`` for other policies.

    >>> windowed("batch"), windowed("batch-greedy:8:2.5"), windowed("greedy")
    (('batch', 32, 10.0), ('batch-greedy', 8, 2.5), None)
    """
    name, sep, rest = policy.partition(":")
    solver = solvers().get(name)
    if solver is None or not is_throughput_solver(solver):
        return None
    parts = rest.split(":") if sep else []
    bad = f"{policy!r}: expected {name}[:N[:S]], " + ", ".join(f"{o.name} {o.help} ({o.expected()})" for o in WINDOW_OPTIONS)
    if len(parts) > len(WINDOW_OPTIONS):
        raise InputError("--policy", bad)
    given = parts + [option.default for option in WINDOW_OPTIONS[len(parts) :]]
    try:
        size, budget = (option.coerce(value) for option, value in zip(WINDOW_OPTIONS, given))
    except OptionError:
        raise InputError("--policy", bad) from None
    return name, size, budget


def windows(arrivals: NDArray[np.float64], size: int) -> list[NDArray[np.int64]]:
    """Request indices of each window: the next ``size`` requests in arrival order (stable).

    >>> [w.tolist() for w in windows(np.array([0.0, 2.0, 1.0, 1.0, 5.0]), 2)]
    [[0, 2], [3, 1], [4]]
    """
    order = np.argsort(np.asarray(arrivals, float), kind="stable")
    return [order[i : i + size] for i in range(0, len(order), size)]


def place(inst: Instance, policy: str, *, engine: str = "vllm", kv_capacity_bytes: float | None = None) -> Placement:
    """Place every request of ``inst`` by ``policy`` (see the module docstring and
    :mod:`splitllm.serving.registry`).

    ``engine`` and ``kv_capacity_bytes`` (default: the instance's) are the simulated
    server's, used by the windowed and online policies.
    """
    return get_policy(policy).place(inst, policy, Server(engine, kv_capacity_bytes))


@register_policy("all-server", "every block on the server (the reference without a split)")
def _all_server(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    n, b = inst.n_requests, inst.n_blocks
    return Placement(policy, np.ones((n, b), bool), np.ones(n, bool), 0.0, np.zeros(n))


@register_policy("solution", "the placements of a solution file for this very instance; rejected requests are not sent",
                 syntax="solution:FILE")
def _solution(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    path = policy.partition(":")[2]
    if not path:
        raise InputError("--policy", f"{policy!r}: expected solution:FILE")
    return _replay(inst, policy, Path(path))


@register_solver_policies
def solver_policy(solver: SolverSpec) -> PolicySpec:
    """The policy of a registered solver: windowed for a throughput-placement solver, else per request."""
    if is_throughput_solver(solver):
        return PolicySpec(solver.name, f"{solver.name}[:N[:S]]", f"windows of N requests, each a throughput-placement "
                          f"snapshot solved by {solver.name} in S seconds", _windowed_policy, "windowed", WINDOW_OPTIONS, solver.name)
    return PolicySpec(solver.name, solver.name, f"each request placed alone by {solver.name} (no server capacity); "
                      "identical requests once", _per_request, "per-request", (), solver.name)


def _windowed_policy(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    spec_args = windowed(policy)
    assert spec_args is not None
    return _windowed(inst, policy, *spec_args, engine=server.engine, kv_capacity_bytes=server.kv_capacity_bytes)


def _per_request(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    n = inst.n_requests
    uncoupled = per_request_problem(inst)
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


def _windowed(inst: Instance, policy: str, solver: str, size: int, budget: float, *, engine: str,
              kv_capacity_bytes: float | None) -> Placement:
    n, b = inst.n_requests, inst.n_blocks
    x, latency = np.ones((n, b), bool), np.zeros(n)
    arrivals = np.array([r.arrival_s for r in inst.requests], dtype=float)
    decoding = inst.arrays.output_tokens >= 2
    wall, fallback, statuses = 0.0, 0, {}
    groups = windows(arrivals, size)
    for group in groups:
        idx = group[decoding[group]]
        if idx.size == 0:
            continue
        snapshot = _snapshot(inst, idx, kv_capacity_bytes)
        started = time.perf_counter()
        try:
            result = solve(snapshot, solver, time_limit=budget, engine=engine, ttft=True)
        except SplitLLMError as exc:
            raise InputError("--policy", f"{policy}: {exc}") from None
        spent = time.perf_counter() - started
        wall += spent
        latency[group] = spent
        statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
        if result.placements is None or result.admitted is None:
            fallback += idx.size
            continue
        adm = np.asarray(result.admitted, bool)
        x[idx[adm]] = np.asarray(result.placements, bool)[adm]
        fallback += int((~adm).sum())
    return Placement(policy, x, np.ones(n, bool), wall, latency, fallback, len(groups), statuses)


def _snapshot(inst: Instance, idx: NDArray[np.int64], kv_capacity_bytes: float | None) -> Instance:
    """The requests ``idx`` of ``inst`` alone, with the simulated server's KV capacity."""
    data = copy.deepcopy(inst.source)
    data["requests"] = [data["requests"][int(i)] for i in idx]
    if kv_capacity_bytes is not None:
        data.setdefault("server", {})["kv_capacity_bytes"] = float(kv_capacity_bytes)
    return parse_instance(data)


def per_request_problem(inst: Instance) -> Instance:
    """``inst`` without server capacities, each request admitted on its own (max_admitted);
    the compiled arrays are reused, not parsed again."""
    server = {k: v for k, v in inst.source.get("server", {}).items() if k not in {res.limit_name for res in COUPLED}}
    return replace(
        inst,
        objective=Objective.MAX_ADMITTED,
        server=replace(inst.server, **{res.limit_name: None for res in COUPLED}),
        arrays=replace(inst.arrays, **{res.limit_attr: math.inf for res in COUPLED}),
        source={**inst.source, "objective": str(Objective.MAX_ADMITTED), "server": server},
    )


def _replay(inst: Instance, policy: str, path: Path) -> Placement:
    """The placements of a solution file of this instance, checked as ``splitllm check``
    checks it (schema, ids in order, status, every limit and figure): a file for another
    instance, of another model, or that breaks a limit is refused, naming the file."""
    if not path.is_file():
        raise InputError("--policy", f"{path}: no such solution file" if not path.exists() else f"{path}: not a regular file")
    try:
        data = read_json(path)
    except SplitLLMError as exc:  # its message names the file
        raise InputError("--policy", str(exc)) from None
    try:
        problems = check_solution(inst, data)
    except InputErrors as exc:
        raise InputErrors([InputError("--policy", f"{path}: {e}") for e in exc.errors[:MAX_SHOWN]]) from None
    except SplitLLMError as exc:
        raise InputError("--policy", f"{path}: {exc}") from None
    if problems:
        raise InputErrors([InputError("--policy", f"{path}: does not hold for this instance: {p}") for p in problems[:MAX_SHOWN]])
    x = np.ones((inst.n_requests, inst.n_blocks), bool)
    sent = np.zeros(inst.n_requests, bool)
    for i, entry in enumerate(data["requests"]):
        if entry["admitted"] and entry["placement"] is not None:
            x[i] = [ch == "S" for ch in entry["placement"]]
            sent[i] = True
    return Placement(policy, x, sent, 0.0, np.zeros(inst.n_requests))


#: Problems of a refused solution file shown, one line each.
MAX_SHOWN = 5
