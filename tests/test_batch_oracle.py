"""Every F5 solver against an independent brute force (tests/f5_oracle.py, written from the
documented formulas), on random snapshots with fractional weights, layer curves that fall
with the count, TTFT limits, KV limits and both engines.

Every status, figure and bound a solver states must be true: ``optimal`` only at the
enumerated optimum (weight, then ``T``), a weight bound never below the optimum, a ``T``
bound never above the optimal ``T``, no ``error``. The registry's solvers are checked
(their claims re-proved as shipped), and so are ``batch``'s and ``batch-cpsat``'s own
claims before any re-proof. The default run is short; ``-m slow`` runs a bigger sweep.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from f5_oracle import ENGINES, Optimum, brute_optimum, oracle_costs, oracle_instance, with_costs
from splitllm.batched import costs as batch_costs
from splitllm.batched.evaluator import verify_batch
from splitllm.formulations.batch_data import build_data
from splitllm.registry import solve
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_cpsat import solve_cpsat
from splitllm.solvers.batch_exact import solve_exact

#: (solver, options) as a user runs them.
SOLVERS = (("batch", {}), ("batch-milp", {}), ("batch-milp", {"backend": "cbc"}), ("batch-cpsat", {"workers": 1}),
           ("batch-brute", {}), ("batch-greedy", {}))


def _holds(result: SolveResult, best: Optimum, label: str) -> None:
    """Every claim of a verified ``result`` against the enumerated optimum ``best``."""
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE), (label, result.status, result.message)
    tol = 1e-9 * max(1.0, best.weight)
    w, t = result.objective, result.info["iteration_time_s"]
    assert w <= best.weight + tol, (label, w, best)
    if abs(w - best.weight) <= tol:
        assert t >= best.t * (1 - 1e-9), (label, t, best)
    if result.status == Status.OPTIMAL:
        assert abs(w - best.weight) <= tol and t <= best.t * (1 + 1e-6), (label, "false optimal", w, t, best, result.message)
    if result.bound is not None:
        assert result.bound >= best.weight - tol, (label, "bound", result.bound, best)
    t_bound = result.info.get("iteration_time_bound_s")
    if t_bound is not None and abs(w - best.weight) <= tol:
        assert t_bound <= best.t * (1 + 1e-9), (label, "T bound", t_bound, best)


def _case(seed: int, n_requests: int, n_blocks: int, kv: bool, ttft: bool, fractional: bool, falling: bool, engine: str,
          monkeypatch: pytest.MonkeyPatch) -> None:
    costs = {e: oracle_costs(e, falling) for e in ENGINES}
    monkeypatch.setattr(batch_costs, "batched_costs", with_costs(costs))
    inst = oracle_instance(seed, n_requests, n_blocks, kv, ttft, fractional)
    best = brute_optimum(inst, costs[engine], ttft)
    assert best.weight >= 0 and math.isfinite(best.t)
    for name, options in SOLVERS:
        result = solve(inst, name, time_limit=60, engine=engine, ttft=ttft, **options)
        _holds(result, best, f"{name} {options}")
    data = build_data(inst, costs[engine], ttft=ttft)  # the methods' own claims, before any re-proof
    own = {"batch (own)": solve_exact(data, "highs", None, 64), "batch-cpsat (own)": solve_cpsat(data, None, workers=1, seed=0, resolution=10**6)}
    for label, result in own.items():
        _holds(verify_batch(inst, costs[engine], result, ttft), best, label)


CASES = dict(
    seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), n_blocks=st.integers(3, 4), kv=st.booleans(),
    ttft=st.booleans(), fractional=st.booleans(), falling=st.booleans(), engine=st.sampled_from(ENGINES),
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CASES)
@example(seed=85, n_requests=3, n_blocks=3, kv=False, ttft=False, fractional=True, falling=False, engine="tensorrt-llm")  # 0.1 + 0.2 > 0.3
@example(seed=134, n_requests=3, n_blocks=4, kv=False, ttft=False, fractional=False, falling=True, engine="vllm")  # all-client request split
def test_every_solver_claims_only_what_brute_force_confirms(seed, n_requests, n_blocks, kv, ttft, fractional, falling, engine, monkeypatch):
    _case(seed, n_requests, n_blocks, kv, ttft, fractional, falling, engine, monkeypatch)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CASES)
def test_every_solver_claims_only_what_brute_force_confirms_sweep(seed, n_requests, n_blocks, kv, ttft, fractional, falling, engine, monkeypatch):
    _case(seed, n_requests, n_blocks, kv, ttft, fractional, falling, engine, monkeypatch)
