"""The batched per-request solvers against their plain per-request references.

``greedy`` walks every distinct request at once and ``dp`` searches them in batches;
on a few hundred random requests each must give the answers of the request-by-request
code: greedy the very same placements, dp the same least work (among placements of
equal work it may pick another) and the same proven-infeasible requests.
"""

from __future__ import annotations

import numpy as np
import pytest

from factories import random_instance
from splitllm.instance import Instance, example_path, load_instance
from splitllm.registry import solve
from splitllm.result import SolveResult, Status
from splitllm.serving.policies import place
from splitllm.serving.workload import trace_workload
from splitllm.solvers import dp
from splitllm.solvers.baselines import greedy_request


def _random(seed: int, tight: float) -> Instance:
    return random_instance(seed, n_requests=300, n_blocks=12, objective="max_admitted", slo_tightness=tight)


def _trace() -> Instance:
    return trace_workload(load_instance(example_path("llama2-7b")), "azure-conv", n=300, seed=3)[0]


CASES = [pytest.param(lambda: _random(1, 0.6), id="random-tight"), pytest.param(lambda: _random(2, 1.0), id="random"),
         pytest.param(_trace, id="azure-conv")]


def assert_greedy_matches(inst: Instance, got: SolveResult) -> None:
    outcomes = [greedy_request(inst.arrays, r) for r in range(inst.n_requests)]
    assert got.admitted.tolist() == [o.placement is not None for o in outcomes]
    for r, o in enumerate(outcomes):
        if o.placement is not None:
            assert got.placements[r].tolist() == o.placement.tolist(), r


def assert_dp_matches(inst: Instance, got: SolveResult) -> None:
    outcomes = [dp.solve_request(inst.arrays, r) for r in range(inst.n_requests)]
    assert got.status == Status.OPTIMAL
    assert got.admitted.tolist() == [o.status == "optimal" for o in outcomes]
    assert got.info["request_status"] == [o.status for o in outcomes]
    work = got.evaluation.metrics.work  # the evaluator's figures; NaN where not admitted
    for r, o in enumerate(outcomes):
        if o.placement is not None:
            assert work[r] == pytest.approx(o.work, rel=1e-9, abs=1e-12), r


@pytest.mark.parametrize("make", CASES)
def test_batched_greedy_gives_the_per_request_placements(make) -> None:
    inst = make()
    got = solve(inst, "greedy")
    assert got.status == Status.FEASIBLE, got.message
    assert_greedy_matches(inst, got)


@pytest.mark.parametrize("make", CASES)
def test_batched_dp_gives_the_per_request_optimum(make, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dp, "LEAST_WORK_BATCH", 37)  # several batches, the last one short
    inst = make()
    assert_dp_matches(inst, solve(inst, "dp"))


@pytest.mark.slow
def test_placing_a_trace_places_as_the_per_request_solvers() -> None:
    inst = _trace()
    for policy, check in (("greedy", assert_greedy_matches), ("dp", assert_dp_matches)):
        placed = place(inst, policy)
        result = solve(inst, policy)
        assert placed.sent.tolist() == result.admitted.tolist()
        assert np.array_equal(placed.placements, result.placements)
        check(inst, result)
