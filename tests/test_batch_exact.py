"""``batch``, the exact F5 method: agreement with batch-brute, honest bounds, warm replay."""

from __future__ import annotations

import itertools
import math

import numpy as np

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_cases import batch_instance, toy_costs
from sweeps import sweep
from splitllm.batched.evaluator import verify_batch
from splitllm.formulations.batch_data import build_data
from splitllm.result import Status
from splitllm.solvers.batch_brute import solve_brute
from splitllm.solvers.batch_exact import LayerReach, _fractional_cover, _fractional_knapsack, solve_exact
from splitllm.solvers.batch_greedy import solve_greedy


def _agree(inst, intervals=64, ttft=False):
    c = toy_costs()
    data = build_data(inst, c, ttft=ttft)
    ref = verify_batch(inst, c, solve_brute(data), ttft)
    got = verify_batch(inst, c, solve_exact(data, "highs", None, intervals), ttft)
    assert ref.status == Status.OPTIMAL and got.status.has_solution, got.message
    assert got.bound >= ref.objective - 1e-9
    if got.status == Status.OPTIMAL:
        assert got.objective == pytest.approx(ref.objective, rel=1e-9)
        assert got.info["iteration_time_s"] == pytest.approx(ref.info["iteration_time_s"], rel=1e-6)
    else:
        assert got.objective <= ref.objective + 1e-9
    if "iteration_time_bound_s" in got.info and got.objective == pytest.approx(ref.objective, rel=1e-9):
        assert got.info["iteration_time_bound_s"] <= ref.info["iteration_time_s"] * (1 + 1e-9)
    return got


@sweep(15, quick=5, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), n_blocks=st.integers(3, 4))
def test_batch_agrees_with_brute_tpot_binding(seed, n_requests, n_blocks):
    assert _agree(batch_instance(seed, n_requests, n_blocks, kv=False)).status == Status.OPTIMAL


@sweep(15, quick=5, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(2, 3))
def test_batch_agrees_with_brute_kv_binding(seed, n_requests):
    assert _agree(batch_instance(seed, n_requests, 4, kv=True)).status == Status.OPTIMAL


def test_knapsack_bound_and_cover_are_fractional():
    import numpy as np

    w, c = np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 1.0])
    assert _fractional_knapsack(w, c, 1.5) == pytest.approx(2.5)  # item 2 whole, half of item 0
    assert _fractional_cover(w, c, 2.5) == pytest.approx(1.5)
    assert _fractional_cover(w, c, 5.0) == float("inf")


@sweep(15, quick=5, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), kv=st.booleans())
def test_batch_agrees_with_brute_ttft_held(seed, n_requests, kv):
    assert _agree(batch_instance(seed, n_requests, 4, kv=kv, ttft=True), ttft=True).status == Status.OPTIMAL


@sweep(15, quick=5, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), kv=st.booleans(), ttft=st.booleans())
def test_bounds_alone_are_honest(seed, n_requests, kv, ttft):
    """Without the branch and bound, ``optimal`` still means optimal and bounds hold (the
    answer may then be batch-greedy's split, never worse than the one without splits)."""
    import splitllm.solvers.batch_exact as exact

    saved = exact.ENUMERATION_LIMIT
    exact.ENUMERATION_LIMIT = 0
    try:
        inst = batch_instance(seed, n_requests, 4, kv=kv, ttft=ttft)
        got = _agree(inst, ttft=ttft)
        greedy = verify_batch(inst, toy_costs(), solve_greedy(build_data(inst, toy_costs(), ttft=ttft)), ttft)
        assert got.objective >= greedy.objective - 1e-9
        if got.objective == pytest.approx(greedy.objective, rel=1e-9):
            assert got.info["iteration_time_s"] <= greedy.info["iteration_time_s"] * (1 + 1e-12)
    finally:
        exact.ENUMERATION_LIMIT = saved


def _replay_within_promise(inst, costs, result):
    """Replayed as a warm closed batch, no admitted request decodes slower than promised."""
    import numpy as np

    from splitllm.serving.simulator import SimConfig, simulate

    result = verify_batch(inst, costs, result)
    assert result.status.has_solution, result.message
    adm = np.asarray(result.admitted, bool)
    sim = simulate(inst, result.placements, SimConfig(costs, warm=True), sent=adm)
    promised = result.evaluation.metrics.tpot
    assert np.all(sim.tpot[adm] <= promised[adm] * (1 + 1e-9)), (sim.tpot[adm], promised[adm])


def test_a_wrapped_server_segment_is_promised_its_extra_iteration() -> None:
    """A placement whose server segment wraps head -> embed, replayed alone: the simulator
    takes one more iteration per step than a plain split, and the promise counts it."""
    import numpy as np

    from splitllm.batched.evaluator import evaluate_batch
    from splitllm.serving.simulator import SimConfig, simulate

    inst = batch_instance(1, 1, 4, kv=False)
    x = np.array([[True, False, False, True]])
    sim = simulate(inst, x, SimConfig(toy_costs(), warm=True), sent=np.array([True]))
    promised = evaluate_batch(inst, toy_costs(), x, np.array([True])).metrics.tpot
    assert sim.tpot[0] <= promised[0] * (1 + 1e-9)
    assert sim.tpot[0] >= promised[0] * 0.5  # the promise is not vacuous


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("kv", [False, True])
def test_replay_meets_promised_tpot_toy(seed, kv):
    inst = batch_instance(seed, 3, 4, kv=kv)
    data = build_data(inst, toy_costs())
    _replay_within_promise(inst, toy_costs(), solve_exact(data, "highs", None, 64))
    _replay_within_promise(inst, toy_costs(), solve_brute(data))


def test_replay_meets_promised_tpot_llama():
    from splitllm.bench.f5_scale import instance
    from splitllm.solvers.batch_common import server_tables
    from splitllm.solvers.batch_greedy import solve_greedy

    inst = instance(8, 0.06, 0)
    costs = server_tables(inst)
    data = build_data(inst, costs)
    _replay_within_promise(inst, costs, solve_exact(data))
    _replay_within_promise(inst, costs, solve_greedy(data))  # splits included


def test_no_split_model_never_places_all_server_a_request_whose_ttft_forbids_it():
    """A binary's upper bound of 0 does not survive PuLP's model writing (it becomes 1), so
    a request whose all-server batch-1 TTFT breaks its SLO has no all-server variable."""
    import numpy as np

    from batch_cases import batch_data as instance_data
    from splitllm.evaluator import request_metrics
    from splitllm.instance import parse_instance
    from splitllm.solvers.batch_exact import all_server_ok, no_split_model, solve_no_split

    for seed in range(3):
        data_dict = instance_data(seed, 3, 4, kv=False)
        inst = parse_instance(data_dict)
        first = request_metrics(inst.arrays, np.zeros(1, dtype=np.int64), np.ones((1, 4), bool)).ttft[0]
        data_dict["requests"][0].setdefault("slo", {})["ttft_s"] = 0.9 * float(first)
        data = build_data(parse_instance(data_dict), toy_costs(), ttft=True)
        assert not all_server_ok(data)[0]
        _, h = no_split_model(data)
        assert 0 not in h["s"]
        for backend in ("cbc", "highs"):
            assert not solve_no_split(data, backend, None).server[0]


@sweep(20, quick=8, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 6), n_blocks=st.integers(3, 6), kv=st.booleans(), ttft=st.booleans())
def test_local_search_keeps_every_limit_and_never_loses(seed, n_requests, n_blocks, kv, ttft):
    """From batch-greedy's answer, the local search's answer passes the independent evaluator,
    admits at least the same weight and, at the same weight, has no larger ``T``."""
    import numpy as np

    from splitllm.solvers.batch_common import batch_result
    from splitllm.solvers.batch_greedy import improve

    inst = batch_instance(seed, n_requests, n_blocks, kv=kv, ttft=ttft)
    data = build_data(inst, toy_costs(), ttft=ttft)
    greedy = verify_batch(inst, toy_costs(), solve_greedy(data), ttft)
    x, admitted = improve(data, greedy.placements, np.asarray(greedy.admitted, bool))
    t = data.iteration_time(x, admitted)
    searched = verify_batch(inst, toy_costs(), batch_result("batch", Status.FEASIBLE, x, admitted, t), ttft)
    assert searched.status == Status.FEASIBLE, searched.message
    assert searched.objective >= greedy.objective - 1e-9
    if searched.objective == pytest.approx(greedy.objective, rel=1e-12):
        assert t <= greedy.info["iteration_time_s"] * (1 + 1e-12)



def _fewest_by_trying(cost: np.ndarray, is_layer: np.ndarray, excess: float) -> float:
    """The fewest layer blocks whose cost, with every other block's, reaches ``excess``: every subset tried."""
    if excess <= 0:
        return 0.0
    layers = [float(c) for c, is_l in zip(cost, is_layer) if is_l]
    rest = float(cost[~is_layer].sum())
    for k in range(len(layers) + 1):
        if any(rest + sum(chosen) >= excess for chosen in itertools.combinations(layers, k)):
            return float(k)
    return math.inf


@sweep(40, quick=15)
@given(st.lists(st.lists(st.floats(0, 10, allow_nan=False), min_size=4, max_size=4), min_size=1, max_size=4),
       st.lists(st.booleans(), min_size=4, max_size=4), st.lists(st.floats(-5, 45, allow_nan=False), min_size=4, max_size=4))
def test_layer_reach_is_the_fewest_layers_by_trying_every_subset(costs, kinds, excesses) -> None:
    """Per request, the fewest layers to move off the client (the interval bounds' figure) is
    what trying every subset of layers gives (up to the 1e-12 slack that keeps the bound safe)."""
    cost, is_layer = np.array(costs), np.array(kinds)
    excess = np.array(excesses[: len(cost)] + [0.0] * max(0, len(cost) - len(excesses)))
    got = LayerReach.of(cost, is_layer).fewest(excess)
    for r in range(len(cost)):
        want = _fewest_by_trying(cost[r], is_layer, float(excess[r]))
        rest = float(cost[r][~is_layer].sum())
        slack = _fewest_by_trying(cost[r], is_layer, rest + (float(excess[r]) - rest) * (1 - 1e-9))
        assert slack <= got[r] <= want, (cost[r], excess[r], got[r], want)  # a lower bound, tight but for the slack
