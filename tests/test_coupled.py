"""Every exact coupled solver agrees with brute force (both objectives, binding capacities)."""

from __future__ import annotations

import math
import subprocess
import time
import warnings

import pytest
from coupled_cases import coupled_instance
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from sweeps import sweep
from splitllm.registry import solve
from splitllm.result import Status

EXACT = [
    ("decomp", {}),
    ("milp", {"backend": "highs"}),
    ("milp", {"backend": "cbc"}),
    ("colmilp", {}),
    ("cpsat", {}),
    ("cpsat", {"formulation": "column"}),
]
BASELINES = ["greedy", "all-server"]
RTOL = 1e-6


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _key(result):  # (status, weight, work) for comparison
    if not result.status.has_solution:
        return result.status, None, None
    return result.status, result.evaluation.admitted_weight, result.evaluation.server_work


@sweep(40, quick=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_requests=st.integers(2, 4),
    n_blocks=st.integers(3, 6),
    objective=st.sampled_from(["min_server_work", "max_admitted"]),
)
def test_exact_solvers_agree_with_brute(seed: int, n_requests: int, n_blocks: int, objective: str) -> None:
    inst = coupled_instance(seed, n_requests, n_blocks, objective)
    assert inst.coupled
    ref = solve(inst, "brute")
    assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
    for name, options in EXACT:
        got = solve(inst, name, **options)
        label = f"{name} {options}"
        assert got.status != Status.ERROR, (label, got.message)
        if ref.status == Status.INFEASIBLE:
            assert got.status == Status.INFEASIBLE, (label, got.status, got.message)
            assert got.message
            continue
        _, ref_weight, ref_work = _key(ref)
        _, weight, work = _key(got)
        if name == "cpsat" and got.status in (Status.FEASIBLE, Status.NO_SOLUTION):
            # safe rounding may cut off the optimum (or all) when a capacity is met
            # exactly; what it does return can never beat brute force
            if got.status == Status.FEASIBLE:
                assert weight <= ref_weight * (1 + RTOL), (label, weight, ref_weight)
                assert weight < ref_weight * (1 - RTOL) or work >= ref_work * (1 - RTOL) - 1e-12, (label, work, ref_work)
            continue
        assert got.status == Status.OPTIMAL, (label, got.status, got.message)
        assert math.isclose(weight, ref_weight, rel_tol=RTOL), (label, weight, ref_weight)
        assert math.isclose(work, ref_work, rel_tol=RTOL, abs_tol=1e-12), (label, work, ref_work)
        assert got.bound is not None


@pytest.mark.parametrize("objective", ["min_server_work", "max_admitted"])
def test_baselines_are_feasible_and_no_better_than_brute(objective: str) -> None:
    for seed in range(4):
        inst = coupled_instance(seed, 3, 5, objective)
        ref = solve(inst, "brute")
        for name in BASELINES:
            got = solve(inst, name)
            assert got.status in (Status.FEASIBLE, Status.OPTIMAL, Status.NO_SOLUTION, Status.INFEASIBLE), (name, got.message)
            if got.status.has_solution and ref.status.has_solution:
                if objective == "max_admitted":
                    assert got.objective <= ref.objective * (1 + RTOL)
                else:
                    assert got.objective >= ref.objective * (1 - RTOL)
            if got.status == Status.INFEASIBLE:
                assert ref.status == Status.INFEASIBLE


def test_infeasible_capacity_says_by_how_much() -> None:
    import dataclasses

    inst = coupled_instance(3, 3, 5, "min_server_work")
    tight = dataclasses.replace(inst, arrays=dataclasses.replace(inst.arrays, work_capacity=1e-6))
    for name, options in EXACT:
        got = solve(tight, name, **options)
        assert got.status == Status.INFEASIBLE
        assert "least possible total server work" in got.message and "short by" in got.message


@pytest.mark.slow
def test_time_limit_on_large_instance_is_held_and_never_optimal() -> None:
    inst = coupled_instance(7, 60, 34, "max_admitted")
    limit = 3.0
    for name, options in [("milp", {"backend": "highs"}), ("cpsat", {})]:
        start = time.perf_counter()
        got = solve(inst, name, time_limit=limit, **options)
        elapsed = time.perf_counter() - start
        assert got.status in (Status.FEASIBLE, Status.NO_SOLUTION, Status.OPTIMAL), got.message
        if got.status == Status.OPTIMAL:  # only if it truly closed the gap in time
            assert got.gap is not None and got.gap <= 1e-6
        assert elapsed < limit + 15.0  # building the model is counted; slack for a busy CI box


def test_cbc_process_is_stopped_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """CBC does not check its clock in every phase, so its process gets the deadline."""
    import signal
    import sys

    from splitllm.solvers import pulp_backend

    stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print(flush=True); time.sleep(30)"
    for script, stopped_by, ended in (
        ("import time; print(flush=True); time.sleep(30)", signal.SIGINT, "interrupted"),
        (stubborn, signal.SIGKILL, "killed"),
    ):
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            process.stdout.readline()  # the child is up (and its SIGINT handler set)
            how = pulp_backend._wait(process, time.perf_counter() + 0.5, 0.5)
            elapsed = time.perf_counter() - start
        finally:
            process.stdout.close()
        assert (process.returncode, how) == (-stopped_by, ended)
        assert elapsed < 0.5 + (0.5 if stopped_by == signal.SIGKILL else 0.0) + 5.0, (stopped_by, elapsed)
        assert elapsed > 0.4, (stopped_by, elapsed)
