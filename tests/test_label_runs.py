"""The label pass's runs of identical blocks (one step over fewest-switch patterns) lose
nothing: against enumeration of every placement, on chains whose runs fall anywhere."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import random_instance_data
from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.instance import parse_instance
from splitllm.solvers.brute import all_placements
from splitllm.solvers.dp import least_work_search, pareto_search, search_request
from splitllm.solvers.dp_costs import request_costs
from splitllm.solvers.dp_labels import run_patterns, steps


def _switches(sides: tuple[int, ...]) -> tuple[int, int]:
    """(switches client -> server, switches server -> client) inside a run."""
    pairs = list(zip(sides, sides[1:]))
    return pairs.count((0, 1)), pairs.count((1, 0))


@given(m=st.integers(1, 9))
def test_run_patterns_are_one_fewest_switch_placement_per_ends_and_client_count(m: int) -> None:
    patterns = [tuple(int(x) for x in p) for p in run_patterns(m)]
    key = lambda p: (p[0], p[-1], p.count(0))  # noqa: E731 - (first side, last side, client blocks)
    assert len(set(map(key, patterns))) == len(patterns)  # one per class
    for placement in itertools.product((0, 1), repeat=m):  # every placement of the run ...
        same = [p for p in patterns if key(p) == key(placement)]
        assert len(same) == 1  # ... has its class's pattern, which switches no more often either way
        up, down = _switches(same[0])
        assert up <= _switches(placement)[0] and down <= _switches(placement)[1]


def _chain_with_runs(seed: int, kinds: list[int], n_requests: int) -> dict:
    """A random explicit-cost instance whose layer ``i`` costs ``factor[kinds[i]]`` times a
    common per-request figure: blocks of the same kind next to each other form a run."""
    n_blocks = len(kinds) + 2
    data = random_instance_data(seed, n_requests=n_requests, n_blocks=n_blocks, vary_layers=0.0)
    factor = np.r_[1.0, np.array([1.0, 1.7, 0.6])[kinds], 1.0]
    for request in data["requests"]:
        for name, values in request["costs"].items():
            request["costs"][name] = (np.array(values) * factor).tolist()
    return data


def _enumerated(inst, r: int) -> tuple[float | None, set[tuple[float, float]]]:
    """Least feasible work and the (work, KV) Pareto front of request ``r``, by enumeration."""
    x = all_placements(inst.n_blocks)
    rows = np.full(len(x), r)
    m = request_metrics(inst.arrays, rows, x)
    ok = feasible_mask(inst.arrays, rows, m)
    return (float(m.work[ok].min()) if ok.any() else None), _front(m.work[ok], m.kv[ok])


def _front(work: np.ndarray, kv: np.ndarray) -> set[tuple[float, float]]:
    """The undominated (work, KV) points, rounded first: identical blocks tie in work up to
    the order of float sums (the DP then keeps both of two tied points, which is harmless)."""
    points = np.c_[np.round(work, 12), np.round(kv, 3)]
    return {
        (float(w), float(k))
        for w, k in points
        if not np.any((points[:, 0] <= w) & (points[:, 1] <= k) & ((points[:, 0] < w) | (points[:, 1] < k)))
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    kinds=st.lists(st.integers(0, 2), min_size=2, max_size=7).map(lambda k: [k[0]] + k),  # a run of >= 2 at the start
)
def test_label_pass_with_runs_equals_enumeration(seed: int, kinds: list[int]) -> None:
    inst = parse_instance(_chain_with_runs(seed, kinds, n_requests=3))
    rows = np.arange(inst.n_requests)
    cost = np.moveaxis(request_costs(inst.arrays, rows)[0], 1, 0)
    assert any(end - first > 1 for first, end in steps(cost))  # a run is crossed in one step
    fronts = pareto_search(inst.arrays, rows)
    least = least_work_search(inst.arrays, rows)
    for r in rows:
        work, front = _enumerated(inst, int(r))
        columns = np.array([lab.placement for lab in fronts[r].pareto], dtype=bool).reshape(-1, inst.n_blocks)
        m = request_metrics(inst.arrays, np.full(len(columns), r), columns)
        assert feasible_mask(inst.arrays, np.full(len(columns), r), m).all()
        assert _front(m.work, m.kv) == front
        for search in (least[r], search_request(inst.arrays, int(r))):
            if work is None:
                assert search.best is None
            else:
                assert search.best is not None and abs(search.best.values[0] - work) <= 1e-9 * max(work, 1e-12)
                placement = search.best.placement[None]
                assert feasible_mask(inst.arrays, np.array([r]), request_metrics(inst.arrays, np.array([r]), placement)).all()
