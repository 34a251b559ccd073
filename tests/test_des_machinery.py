"""The DES machinery benchmark compares like with like: heapq and SimPy runs agree."""

from __future__ import annotations

import pytest

pytest.importorskip("simpy", reason='needs SimPy: pip install -e ".[bench]"')

from splitllm.bench.des_machinery import Toy, check_same, make_toy, run_heap, run_simpy  # noqa: E402

pytestmark = pytest.mark.extras


@pytest.mark.parametrize("seed", [0, 1])
def test_heap_and_simpy_agree_on_random_delays(seed: int) -> None:
    toy = make_toy(requests=6, tokens=40, seed=seed)
    heap_run, simpy_run = run_heap(toy), run_simpy(toy)
    assert check_same(heap_run, simpy_run) <= 1e-9
    assert heap_run.iterations == simpy_run.iterations > 0
    assert heap_run.events == 6 * 40 + heap_run.iterations


def test_simultaneous_items_share_one_iteration() -> None:
    # Equal delays: every item of a token is ready at one instant, so each token is one
    # iteration of all requests in both implementations.
    toy = Toy([[0.01] * 5 for _ in range(4)], a=0.002, b=0.001)
    heap_run, simpy_run = run_heap(toy), run_simpy(toy)
    check_same(heap_run, simpy_run)
    assert heap_run.iterations == 5
    assert heap_run.finish == pytest.approx([5 * (0.01 + 0.002 + 4 * 0.001)] * 4)
