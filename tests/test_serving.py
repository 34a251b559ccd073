"""The serving simulator against the batch-1 cost model and hand-checked timelines."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from splitllm.evaluator import request_metrics
from splitllm.serving import SimConfig, simulate
from splitllm.serving.route import build_route
from tests import serving_cases as hand

ALL = ["".join(p) for p in itertools.product("CS", repeat=len(hand.KINDS))]


@pytest.mark.parametrize("text", ALL)
@pytest.mark.parametrize("engine", ["vllm", "tensorrt-llm"])
def test_one_request_alone_gives_the_batch1_figures(text: str, engine: str) -> None:
    inst = hand.instance([hand.request("r")])
    x = hand.placement(text)[None, :]
    sim = simulate(inst, x, SimConfig(hand.costs(), engine=engine))
    ref = request_metrics(inst.arrays, np.array([0]), x)
    assert sim.ttft[0] == pytest.approx(ref.ttft[0], rel=1e-12)
    assert sim.tpot[0] == pytest.approx(ref.tpot[0], rel=1e-12)
    assert sim.e2e[0] == pytest.approx(ref.e2e[0], rel=1e-12)


def test_split_request_timeline_by_hand() -> None:
    """C S S S C: embed on the client, prompt's activations up, three layers, activations down, head."""
    inst = hand.instance([hand.request("r")])
    a = inst.arrays
    sim = simulate(inst, hand.placement("CSSSC")[None, :], SimConfig(hand.costs()), record=True)
    up, down = 0.01 + hand.P * 4 / 1000, 0.01 + hand.P * 4 / 2000
    start = hand.CLIENT_PREFILL["embed"] + up
    first = sim.timeline[0]
    assert first[0] == pytest.approx(start) and first[1] == pytest.approx(start + 3 * 0.02)
    assert first[2] == [(0, 0, hand.P)]
    assert sim.ttft[0] == pytest.approx(start + 0.06 + down + hand.CLIENT_PREFILL["head"])
    assert len(sim.timeline) == hand.O  # one server item per phase
    assert a.act_up_prefill[0] == pytest.approx(up)


def test_two_requests_share_every_iteration() -> None:
    inst = hand.instance([hand.request("a"), hand.request("b")])
    x = np.ones((2, len(hand.KINDS)), dtype=bool)
    sim = simulate(inst, x, SimConfig(hand.costs()), record=True)
    assert sim.iterations == hand.O
    assert all(sorted(r for r, _, _ in items) == [0, 1] for _, _, items in sim.timeline)
    assert sim.tokens == 2 * hand.P + 2 * (hand.O - 1)
    assert sim.e2e[0] == sim.e2e[1]


def test_late_activation_waits_for_the_next_iteration() -> None:
    """b's activations reach the server while a's prefill runs: b waits for its end."""
    inst = hand.instance([hand.request("a"), hand.request("b")])
    x = np.array([hand.placement("SSSSS"), hand.placement("CSSSC")])
    sim = simulate(inst, x, SimConfig(hand.costs(), engine="vllm"), record=True)
    a_prefill = float(inst.arrays.prompt_up[0]) + 0.005 + 3 * 0.02 + 0.003  # a's first iteration ends
    ready = build_route(inst.arrays, 1, x[1]).prefill[0]
    assert ready < a_prefill  # b's item is ready during a's first iteration
    assert sim.timeline[1][0] == pytest.approx(a_prefill) and sim.timeline[1][2] == [(1, 0, hand.P)]
    alone = request_metrics(inst.arrays, np.array([1]), x[1:])
    assert sim.ttft[1] - alone.ttft[0] == pytest.approx(a_prefill - ready)


def test_kv_admission_blocks_until_the_first_request_ends() -> None:
    """The reservation rule (TensorRT-LLM): b's whole KV does not fit beside a's."""
    inst = hand.instance([hand.request("a"), hand.request("b")])
    x = np.ones((2, len(hand.KINDS)), dtype=bool)
    one = float(inst.arrays.kv[0].sum())
    sim = simulate(inst, x, SimConfig(hand.costs(), engine="tensorrt-llm", kv_capacity_bytes=1.5 * one), record=True)
    owners = [{r for r, _, _ in items} for _, _, items in sim.timeline]
    assert owners == [{0}] * hand.O + [{1}] * hand.O
    assert sim.timeline[hand.O][0] == pytest.approx(sim.timeline[hand.O - 1][1])
    assert sim.peak_kv_bytes == pytest.approx(one)
    assert sim.ttft[1] > sim.e2e[0]


def test_a_request_whose_kv_never_fits_is_dropped() -> None:
    inst = hand.instance([hand.request("a")])
    x = np.ones((1, len(hand.KINDS)), dtype=bool)
    sim = simulate(inst, x, SimConfig(hand.costs(), kv_capacity_bytes=1.0))
    assert sim.dropped[0] and not sim.served[0] and np.isnan(sim.ttft[0])


def test_tensorrt_mixes_prefill_and_decode_vllm_does_not() -> None:
    inst = hand.instance([hand.request("a", output=6), hand.request("b")])
    x = np.ones((2, len(hand.KINDS)), dtype=bool)
    arrivals = np.array([0.0, 0.03])  # b arrives during a's prefill
    for engine, mixed in (("vllm", False), ("tensorrt-llm", True)):
        sim = simulate(inst, x, SimConfig(hand.costs(), engine=engine), arrivals=arrivals, record=True)
        second = sim.timeline[1][2]
        assert (sorted(r for r, _, _ in second) == [0, 1]) is mixed


def test_chunked_prefill_splits_a_prompt_by_the_budget() -> None:
    inst = hand.instance([hand.request("a")])
    x = np.ones((1, len(hand.KINDS)), dtype=bool)
    sim = simulate(inst, x, SimConfig(hand.costs(), chunk=4), record=True)
    assert [items[0][2] for _, _, items in sim.timeline[:3]] == [4, 4, 2]
    assert sim.iterations == 3 + hand.O - 1


def test_warm_start_measures_decode_only() -> None:
    inst = hand.instance([hand.request("a")])
    x = np.ones((1, len(hand.KINDS)), dtype=bool)
    sim = simulate(inst, x, SimConfig(hand.costs(), warm=True))
    ref = request_metrics(inst.arrays, np.array([0]), x)
    assert np.isnan(sim.ttft[0]) and sim.iterations == hand.O - 1
    assert sim.tpot[0] == pytest.approx(ref.tpot[0], rel=1e-12)
