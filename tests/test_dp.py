"""The exact DP against brute force, and the grid DP against the exact one."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from factories import random_instance, random_instance_data
from sweeps import sweep
from splitllm.instance import parse_instance
from splitllm.registry import solve
from splitllm.result import Status

seeds = st.integers(min_value=0, max_value=2**31 - 1)


def assert_same_optimum(a, b) -> None:
    assert a.status == b.status, (a.status, b.status, a.message, b.message)
    if a.status == Status.OPTIMAL:
        assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-12)


@sweep(300, quick=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, n_blocks=st.integers(2, 9), tight=st.floats(0.3, 1.5))
def test_dp_equals_brute(seed: int, n_blocks: int, tight: float) -> None:
    inst = random_instance(seed, n_requests=2, n_blocks=n_blocks, slo_tightness=tight)
    assert_same_optimum(solve(inst, "dp"), solve(inst, "brute"))


@sweep(60, quick=15, deadline=None)
@given(seed=seeds, n_blocks=st.integers(3, 8))
def test_dp_equals_brute_under_max_admitted(seed: int, n_blocks: int) -> None:
    inst = random_instance(seed, n_requests=4, n_blocks=n_blocks, objective="max_admitted", slo_tightness=0.7)
    dp, brute = solve(inst, "dp"), solve(inst, "brute")
    assert dp.status == brute.status == Status.OPTIMAL
    assert dp.objective == brute.objective  # admitted weight
    assert dp.evaluation.server_work == pytest.approx(brute.evaluation.server_work, rel=1e-9, abs=1e-12)


def test_both_cycle_anchors_and_splits_are_exercised() -> None:
    """Across seeds the optimum puts block 0 on each side, and the head on each side."""
    seen = set()
    for seed in range(60):
        inst = random_instance(seed, n_requests=3, n_blocks=6)
        dp, brute = solve(inst, "dp"), solve(inst, "brute")
        assert_same_optimum(dp, brute)
        if dp.status == Status.OPTIMAL:
            seen |= {(bool(row[0]), bool(row[-1])) for row in dp.placements}
    assert seen == {(False, False), (False, True), (True, False), (True, True)}


@sweep(40, quick=10, deadline=None)
@given(seed=seeds, step=st.sampled_from([0.2, 0.05, 0.01]))
def test_grid_is_never_better_than_dp(seed: int, step: float) -> None:
    inst = random_instance(seed, n_requests=2, n_blocks=7)
    exact, grid = solve(inst, "dp"), solve(inst, "dp-grid", grid_step=step)
    if exact.status == Status.INFEASIBLE:
        assert grid.status in (Status.INFEASIBLE, Status.NO_SOLUTION)
    elif grid.status.has_solution:
        assert grid.objective >= exact.objective * (1 - 1e-12)
        assert grid.bound <= exact.objective * (1 + 1e-12)  # the rounded-down pass is a true bound


def test_grid_reaches_dp_as_step_shrinks() -> None:
    """One binding limit (TTFT; memory ample), so fine grids stay small."""
    instances = []
    for seed in range(12):
        data = random_instance_data(seed, n_requests=2, n_blocks=7)
        for client in data["clients"].values():
            client["memory_bytes"] = 1e15
        for request in data["requests"]:
            request["slo"] = {"ttft_s": request["slo"].get("ttft_s", 1e-3)}
        instances.append(parse_instance(data))
    exact = [solve(inst, "dp") for inst in instances]
    misses = []
    for step in (0.2, 0.05, 0.01, 0.001, 0.0001):
        grid = [solve(inst, "dp-grid", grid_step=step) for inst in instances]
        misses.append(sum(g.status != e.status or (e.status == Status.OPTIMAL and g.objective > e.objective * (1 + 1e-12))
                          for g, e in zip(grid, exact)))
    assert misses == sorted(misses, reverse=True)
    assert misses[0] > 0 and misses[-1] == 0


@sweep(40, quick=10, deadline=None)
@given(seed=seeds)
def test_greedy_and_all_server_are_feasible_and_never_better(seed: int) -> None:
    inst = random_instance(seed, n_requests=3, n_blocks=8)
    exact = solve(inst, "dp")
    for name in ("greedy", "all-server"):
        heuristic = solve(inst, name)
        assert heuristic.status in (Status.FEASIBLE, Status.NO_SOLUTION), heuristic.message
        if heuristic.status == Status.FEASIBLE:
            assert exact.status == Status.OPTIMAL
            assert heuristic.objective >= exact.objective * (1 - 1e-12)


def test_heterogeneous_34_block_model_with_binding_memory() -> None:
    """The case a naive prototype blew up on: varied layer costs and bound client memory."""
    inst = random_instance(7, n_requests=20, n_blocks=34, memory_fraction=0.3, vary_layers=0.3)
    exact = solve(inst, "dp")
    greedy = solve(inst, "greedy")
    assert exact.status in (Status.OPTIMAL, Status.INFEASIBLE)
    if greedy.status == Status.FEASIBLE:
        assert exact.objective <= greedy.objective


def test_brute_refuses_large_models() -> None:
    from splitllm.errors import SplitLLMError

    with pytest.raises(SplitLLMError, match="refuses models over 20 blocks"):
        solve(random_instance(0, n_requests=1, n_blocks=21), "brute")


def test_grid_says_when_it_may_have_lost_the_optimum() -> None:
    from splitllm.instance import example_path, load_instance

    inst = load_instance(example_path("llama2-7b"))
    coarse = solve(inst, "dp-grid", grid_step=0.05)
    assert solve(inst, "dp").status == Status.OPTIMAL
    assert coarse.status == Status.NO_SOLUTION
    assert "may have wrongly found them infeasible" in coarse.message
    fine = solve(inst, "dp-grid", grid_step=0.02)
    assert fine.status == Status.FEASIBLE and "may have lost the optimum" in fine.message
