"""The batched Pareto label pass (the columns of F3 and ``decomp``) against enumeration."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from factories import random_instance
from sweeps import sweep
from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.formulations import chain_graph
from splitllm.solvers.brute import all_placements
from splitllm.solvers.dp import pareto_search
from splitllm.solvers.pareto import pareto_rows as _pareto_rows


def _front(points: np.ndarray) -> set[tuple[float, float]]:
    """The (work, kv) points no other point dominates, by definition, once rounded (work to
    1e-12 s, KV to 1e-3 B): two placements whose figures differ only by the order of a sum
    are the same point, as they are to the label pass."""
    points = np.c_[np.round(points[:, 0], 12), np.round(points[:, 1], 3)]
    return {
        (float(w), float(k))
        for w, k in points
        if not np.any((points[:, 0] <= w) & (points[:, 1] <= k) & ((points[:, 0] < w) | (points[:, 1] < k)))
    }


def _enumerated_front(arrays, r: int, n_blocks: int) -> set[tuple[float, float]]:
    x = all_placements(n_blocks)
    rows = np.full(len(x), r)
    m = request_metrics(arrays, rows, x)
    ok = feasible_mask(arrays, rows, m)
    return _front(np.c_[m.work[ok], m.kv[ok]])


@sweep(60, quick=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_blocks=st.integers(2, 8), tight=st.floats(0.3, 1.5), vary=st.sampled_from([0.0, 0.3]))
def test_batched_pareto_sets_equal_enumeration(seed: int, n_blocks: int, tight: float, vary: float) -> None:
    inst = random_instance(seed, n_requests=4, n_blocks=n_blocks, slo_tightness=tight, vary_layers=vary)
    a = inst.arrays
    searches = pareto_search(a, np.arange(inst.n_requests))
    for r, search in enumerate(searches):
        placements = np.array([lab.placement for lab in search.pareto], dtype=bool).reshape(-1, n_blocks)
        m = request_metrics(a, np.full(len(placements), r), placements)
        assert feasible_mask(a, np.full(len(placements), r), m).all()
        found = _front(np.c_[m.work, m.kv])
        assert len(found) == len(placements)  # no dominated or repeated column
        assert found == _enumerated_front(a, r, n_blocks)


def test_batched_edge_costs_equal_per_request() -> None:
    a = random_instance(7, n_requests=5, n_blocks=6).arrays
    rows = np.array([4, 0, 2])
    batched, sink = chain_graph.edge_costs(a, rows), chain_graph.sink_costs(a, rows)
    for i, r in enumerate(rows):
        for name, one in chain_graph.edge_costs(a, int(r)).items():
            np.testing.assert_array_equal(batched[name][i], one)
        for name, one in chain_graph.sink_costs(a, int(r)).items():
            np.testing.assert_array_equal(sink[name][i], one)


values = st.sampled_from([-np.inf, 0.0, 1.0, 2.0, 1e9])


@sweep(300, quick=100, deadline=None)
@given(data=st.data(), n=st.integers(0, 30), d=st.integers(1, 4))
def test_pareto_rows_keep_exactly_the_undominated_rows(data: st.DataObject, n: int, d: int) -> None:
    key = data.draw(hnp.arrays(np.float64, (n, d), elements=values))
    group = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2)))
    kept = _pareto_rows(key, group)
    le = np.all(key[:, None, :] <= key[None, :, :], axis=2) & (group[:, None] == group[None, :])
    strictly = le & ~le.T  # row i strictly dominates row j
    undominated = ~strictly.any(axis=0)
    # every undominated row's value survives exactly once; no dominated row survives
    assert not np.any(~undominated[kept])
    survivors = {(int(group[i]), *key[i]) for i in kept}
    assert len(survivors) == len(kept)
    assert survivors == {(int(group[i]), *key[i]) for i in np.flatnonzero(undominated)}
