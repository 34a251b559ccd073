"""The online-placement hook of the simulator: a placer places each request when it arrives."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from splitllm.batched import server_costs
from splitllm.errors import InputError
from splitllm.instance import example_path, load_instance
from splitllm.serving import SimConfig, simulate
from splitllm.serving.workload import trace_workload
from tests import serving_cases as hand


class Replay:
    """Writes fixed rows for the arriving requests, sends those in ``send``; logs its calls."""

    def __init__(self, rows: NDArray[np.bool_], send: NDArray[np.bool_] | None = None) -> None:
        self.rows, self.send = rows, np.ones(len(rows), bool) if send is None else send
        self.calls: list[tuple[float, list[int], list[int], NDArray[np.bool_]]] = []

    def place(self, now: float, arriving: list[int], in_flight: list[int], placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
        self.calls.append((now, list(arriving), list(in_flight), placements[in_flight].copy()))
        placements[arriving] = self.rows[arriving]
        return self.send[arriving]


def same(a, b) -> None:  # type: ignore[no-untyped-def]
    for key in ("ttft", "tpot", "e2e", "served", "dropped"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert (a.iterations, a.tokens, a.busy_s, a.makespan_s, a.peak_kv_bytes) == (b.iterations, b.tokens, b.busy_s, b.makespan_s, b.peak_kv_bytes)
    assert a.timeline == b.timeline


@pytest.mark.parametrize("engine,chunk", [("vllm", None), ("tensorrt-llm", 4)])
def test_all_server_placer_gives_the_static_run(engine: str, chunk: int | None) -> None:
    inst = hand.instance([hand.request(f"r{i}") for i in range(5)])
    x = np.ones((5, len(hand.KINDS)), bool)
    arrivals = np.array([0.0, 0.0, 0.03, 0.2, 0.2])
    cfg = SimConfig(hand.costs(), engine=engine, chunk=chunk)
    static = simulate(inst, x, cfg, arrivals=arrivals, record=True)
    start = np.zeros_like(x)  # the placer writes every row
    online = simulate(inst, start, cfg, arrivals=arrivals, record=True, placer=Replay(x))
    same(online, static)
    assert not start.any() and online.placements is not None and online.placements.all()


def test_split_placer_on_a_trace_gives_the_static_run() -> None:
    base = load_instance(example_path("llama2-7b"))
    inst, arrivals = trace_workload(base, "azure-conv", n=150, rate=3.0)
    rng = np.random.default_rng(3)
    x = np.ones((inst.n_requests, inst.n_blocks), bool)
    x[:, 12:32] = rng.random((inst.n_requests, 1)) < 0.5  # half of them split 12S 20C 2S
    cfg = SimConfig(server_costs(base, "vllm"), kv_capacity_bytes=4e9)
    static = simulate(inst, x, cfg, arrivals=arrivals, record=True)
    online = simulate(inst, np.ones_like(x), cfg, arrivals=arrivals, record=True, placer=Replay(x))
    same(online, static)


def test_placer_sees_the_requests_in_flight() -> None:
    """a at 0; b at 0.01 waits for KV behind a; c after a's end, while b runs. 960 bytes are two
    480-byte blocks (16 tokens x 3 server layers x 10 B): a's, and the free one its decode steps
    need; b's block would leave none above the watermark."""
    two = hand.instance([hand.request("a"), hand.request("b")])
    cfg = SimConfig(hand.costs(), kv_capacity_bytes=960.0)
    rows = np.array([hand.placement("SSSSS"), hand.placement("CSSSC"), hand.placement("SSSSS")])
    first = simulate(two, rows[:2], cfg, arrivals=np.array([0.0, 0.01]))
    c_at = float(first.e2e[0]) + 0.001
    assert c_at < 0.01 + first.e2e[1]  # b has not finished when c arrives
    inst = hand.instance([hand.request("a"), hand.request("b"), hand.request("c")])
    placer = Replay(rows)
    sim = simulate(inst, np.ones_like(rows), cfg, arrivals=np.array([0.0, 0.01, c_at]), placer=placer)
    assert [(now, arriving, in_flight) for now, arriving, in_flight, _ in placer.calls] == [
        (0.0, [0], []), (0.01, [1], [0]), (c_at, [2], [1])]
    np.testing.assert_array_equal(placer.calls[2][3], rows[1:2])  # it reads b's row as it wrote it
    assert sim.served.all()
    np.testing.assert_array_equal(sim.ttft[:2], first.ttft)  # c came too late to change a's and b's timelines
    np.testing.assert_array_equal(sim.e2e[:2], first.e2e)


def test_placer_sees_simultaneous_arrivals_together() -> None:
    inst = hand.instance([hand.request(f"r{i}") for i in range(4)])
    x = np.ones((4, len(hand.KINDS)), bool)
    placer = Replay(x)
    simulate(inst, x, SimConfig(hand.costs()), arrivals=np.array([0.5, 0.0, 0.5, 0.0]), sent=np.array([1, 1, 0, 1], bool), placer=placer)
    assert [(now, arriving) for now, arriving, _, _ in placer.calls] == [(0.0, [1, 3]), (0.5, [0])]


def test_a_request_the_placer_refuses_is_not_served() -> None:
    inst = hand.instance([hand.request(f"r{i}") for i in range(3)])
    x = np.ones((3, len(hand.KINDS)), bool)
    send = np.array([True, False, True])
    arrivals = np.array([0.0, 0.01, 0.02])
    sim = simulate(inst, x, SimConfig(hand.costs()), arrivals=arrivals, placer=Replay(x, send))
    assert sim.served.tolist() == [True, False, True] and not sim.dropped.any()
    assert np.isnan(sim.ttft[1]) and np.isnan(sim.e2e[1])
    same(sim, simulate(inst, x, SimConfig(hand.costs()), arrivals=arrivals, sent=send))


def test_placer_must_answer_for_each_arriving_request() -> None:
    class Bad:
        def place(self, now, arriving, in_flight, placements):  # type: ignore[no-untyped-def]
            return np.ones(len(arriving) + 1, bool)

    inst = hand.instance([hand.request("a")])
    with pytest.raises(InputError, match="one bool per arriving request"):
        simulate(inst, np.ones((1, len(hand.KINDS)), bool), SimConfig(hand.costs()), placer=Bad())
