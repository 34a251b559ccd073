"""``batch``'s MILP over placement columns (solvers/batch_columns.py) against batch-brute:
its signatures cover every placement, its ``T`` bound never exceeds the optimum (blocks of
a class interchangeable or not), it is the optimum when every class is one block, and
``batch`` with the column model taken (the branch and bound off) claims only what holds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_cases import batch_data as case_data
from f5_oracle import oracle_costs
from sweeps import sweep
from splitllm.batched.evaluator import verify_batch
from splitllm.formulations.batch_data import BatchData, build_data
from splitllm.instance import Instance, parse_instance
from splitllm.result import Status
from splitllm.solvers import batch_columns as bc
from splitllm.solvers import batch_exact
from splitllm.solvers.batch_brute import solve_brute


def _key(classes: np.ndarray, x: tuple[bool, ...] | np.ndarray) -> tuple:
    """What a placement's figures depend on: counts per class, up and down crossings, ends."""
    x = np.asarray(x, dtype=bool)
    counts = tuple(int(x[classes == c].sum()) for c in range(int(classes.max()) + 1))
    up = int((x[1:] & ~x[:-1]).sum())
    down = int((~x[1:] & x[:-1]).sum())
    return counts, up, down, bool(x[0]), bool(x[-1])


def test_refined_makes_the_ends_of_each_run_classes_of_their_own() -> None:
    classes = np.array([0, 1, 1, 1, 1, 2])
    assert bc.refined(classes, 0).tolist() == [0, 1, 1, 1, 1, 2]
    assert bc.refined(classes, 1).tolist() == [0, 1, 2, 2, 3, 4]
    assert bc.refined(np.array([0, 0, 1, 0, 0]), 1).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("classes", [[0, 1, 1, 1, 1, 1, 2], [0, 1, 1, 2, 1, 1, 0], [0, 1, 2, 3, 4]])
@pytest.mark.parametrize("max_up", [0, 1, 2, 7])
def test_signatures_cover_every_placement_with_few_enough_segments(classes, max_up) -> None:
    classes = np.array(classes)
    reps = bc.signatures(classes, max_up)
    want = {_key(classes, x) for x in itertools.product((False, True), repeat=len(classes))
            if _key(classes, x)[1] <= max_up}
    got = [_key(classes, x) for x in reps]
    assert set(got) == want and len(got) == len(want)  # each signature once


def _identical_layers(seed: int, n_requests: int, n_blocks: int, kv: bool) -> Instance:
    """A snapshot of ``batch_cases`` whose layer blocks are interchangeable (each request's
    figures the same on every layer), as in a model of identical decoder layers."""
    data = case_data(seed, n_requests, n_blocks, kv)
    for request in data["requests"]:
        for figures in request["costs"].values():
            figures[1:-1] = [figures[1]] * (n_blocks - 2)
    return parse_instance(data)


def _instance(seed: int, n_requests: int, n_blocks: int, kv: bool, identical: bool) -> Instance:
    return _identical_layers(seed, n_requests, n_blocks, kv) if identical else parse_instance(case_data(seed, n_requests, n_blocks, kv))


def _optimum(data: BatchData) -> tuple[float, float]:
    ref = solve_brute(data)
    return float(data.instance.arrays.weight[ref.admitted].sum()), float(ref.info["iteration_time_s"])


@sweep(15, quick=5, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), n_blocks=st.integers(3, 6), kv=st.booleans(),
       ttft=st.booleans(), identical=st.booleans(), falling=st.booleans(), backend=st.sampled_from(("highs", "cbc")))
def test_column_bound_never_exceeds_the_optimum(seed, n_requests, n_blocks, kv, ttft, identical, falling, backend):
    """At the optimal weight, the bound is at most the optimal ``T``; with every class one
    block it equals it and its answer is optimal."""
    inst = _instance(seed, n_requests, n_blocks, kv, identical)
    data = build_data(inst, oracle_costs("vllm", falling), ttft=ttft)
    weight, t = _optimum(data)
    if identical and n_blocks > 3:
        assert len(set(bc.block_classes(data).tolist())) < n_blocks
    cb = bc.column_bound(data, weight, 0.0, t * (1 + 1e-7), backend, None)
    assert cb is not None
    assert cb.t_low <= t * (1 + 1e-9)
    if len(set(bc.refined(bc.block_classes(data), bc.EDGE_DEPTH).tolist())) == n_blocks:
        assert cb.t_low >= t * (1 - 1e-6)
        assert cb.x is not None and cb.admitted is not None
        assert data.instance.arrays.weight[cb.admitted].sum() >= weight - 1e-9
        assert data.iteration_time(cb.x, cb.admitted) == pytest.approx(t, rel=1e-6)


@sweep(15, quick=5, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), n_blocks=st.integers(3, 6), kv=st.booleans(),
       ttft=st.booleans(), identical=st.booleans(), falling=st.booleans())
def test_batch_with_the_column_model_claims_only_what_brute_force_confirms(seed, n_requests, n_blocks, kv, ttft, identical, falling):
    """The branch and bound off, ``batch`` proves ``T`` by the column model: ``optimal``
    only at the optimum, its ``T`` bound at most the optimal ``T``; and ``optimal`` whenever
    the model was solved with every class one block."""
    inst = _instance(seed, n_requests, n_blocks, kv, identical)
    costs = oracle_costs("vllm", falling)
    data = build_data(inst, costs, ttft=ttft)
    weight, t = _optimum(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_exact, "ENUMERATION_LIMIT", 0)
        got = verify_batch(inst, costs, batch_exact.solve_exact(data, "highs", None, 64), ttft)
    assert got.status in (Status.OPTIMAL, Status.FEASIBLE), got.message
    assert got.objective <= weight + 1e-9
    if got.objective >= weight - 1e-9:
        assert got.info["iteration_time_s"] >= t * (1 - 1e-9)
        assert got.info.get("iteration_time_bound_s", 0.0) <= t * (1 + 1e-9)
    if got.status == Status.OPTIMAL:
        assert got.objective == pytest.approx(weight, rel=1e-9)
        assert got.info["iteration_time_s"] == pytest.approx(t, rel=1e-6)
    singletons = len(set(bc.refined(bc.block_classes(data), bc.EDGE_DEPTH).tolist())) == n_blocks
    if "column model optimal" in got.message and singletons:
        assert got.status == Status.OPTIMAL, got.message


def test_the_llama_snapshot_of_8_requests_is_proven_by_the_column_model():
    """34 blocks in three classes: the column model proves the optimum CP-SAT also proves."""
    from splitllm.bench.f5_scale import instance
    from splitllm.solvers.batch_common import batch_data

    data = batch_data(instance(8, 0.06, 0), "vllm", False)
    assert bc.block_classes(data).tolist() == [0] + [1] * 32 + [2]
    got = batch_exact.solve_exact(data, "highs", 60)
    assert got.status == Status.OPTIMAL and "column model optimal" in got.message, got.message
    assert got.info["iteration_time_s"] == pytest.approx(0.0130338, rel=1e-5)
