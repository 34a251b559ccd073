"""vLLM's paged KV in the simulator: the reference schedule, the measured rows and the fidelity report's figures, hand cases.

The hand instance (:mod:`tests.serving_cases`) caches 10 bytes per token in each of its three
layers: an all-server request's KV block (16 tokens) is 480 bytes, a request with one
server layer's 160 bytes.
"""

from __future__ import annotations

import csv
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from splitllm.batched.engines import ENGINES
from splitllm.bench.fidelity import HARDWARE, schedule_timing, server_memory
from splitllm.bench.sim_fidelity import FIDELITY_CSV, TOLERANCE, measured_rows, row_costs, simulate_row
from splitllm.serving import SimConfig, simulate
from splitllm.serving.route import build_route
from tests import serving_cases as hand
from tests.engine_reference import vllm_schedule
from sweeps import thinned

BLOCK = 16 * 3 * 10  # bytes of an all-server block of the hand instance


def iterations(timeline: list[tuple[float, float, list[tuple[int, int, int]]]]) -> list[list[tuple[float, float]]]:
    """Each iteration's sorted (new tokens, cached tokens) of all-server requests, from the record."""
    cached: dict[int, int] = {}
    out = []
    for _, _, items in timeline:
        its = []
        for r, _, n in items:
            if n > 1:  # a prefill (a first one, or a recompute) starts from nothing cached
                its.append((float(n), 0.0))
                cached[r] = n
            else:
                its.append((1.0, float(cached[r])))
                cached[r] += 1
        out.append(sorted(its))
    return out


# -- (a) fixed batches: the independent reference's vLLM schedule, iteration by iteration -----
@pytest.mark.parametrize(
    ("gpu", "batch", "length", "preempts"),
    [("a100", 1, 128, False), ("a100", 16, 256, False), ("a100", 64, 128, False), ("a100", 64, 512, True),
     ("a100", 32, 1024, True), ("a100", 64, 2048, True), ("h100", 64, 1024, True), ("h100", 32, 2048, True)],
)  # fmt: skip
def test_fixed_batch_runs_vllm_schedule(gpu: str, batch: int, length: int, preempts: bool) -> None:
    sim = simulate_row(gpu, "vLLM", batch, length, record=True)
    costs = row_costs(gpu, "vLLM")
    vllm = ENGINES["vllm"]
    schedule = vllm_schedule(batch, length, vllm.kv_tokens(server_memory(costs, gpu, batch, length)) // vllm.block)
    assert iterations(sim.timeline) == [sorted(zip(q.tolist(), c.tolist())) for q, c in schedule]
    assert (sim.preemptions > 0) is preempts
    t = schedule_timing(costs, schedule)
    predicted = t.base_s + costs.overhead_s * t.iterations + costs.overhead_per_seq_s * t.items
    assert sim.makespan_s == pytest.approx(predicted, rel=1e-9)  # links at 1e15 B/s are the only difference


# -- (b) every measured row through the whole simulator -------------------------------------
ROWS = measured_rows()
#: The fidelity report's predicted latency of each row (``bench/results/fidelity/fidelity.csv``, 6 digits).
PREDICTED = {int(r["source_line"]): float(r["predicted"]) for r in csv.DictReader(FIDELITY_CSV.open(newline=""))
             if r["metric"] == "latency_s"}  # fmt: skip


@pytest.mark.parametrize("row", thinned(ROWS, 3), ids=[f"{r['framework']}-{HARDWARE[str(r['hardware'])]}-B{r['batch']}-L{r['length']}-line{r['source_line']}" for r in ROWS])
def test_measured_row_within_ten_percent(row: dict[str, Any]) -> None:
    sim = simulate_row(HARDWARE[row["hardware"]], row["framework"], row["batch"], row["length"])
    latency = sim.makespan_s
    throughput = row["batch"] * 2 * row["length"] / latency
    assert abs(latency / row["latency_s"] - 1) <= TOLERANCE
    assert abs(throughput / row["throughput_tok_s"] - 1) <= TOLERANCE
    assert latency == pytest.approx(PREDICTED[row["source_line"]], rel=1e-5)  # the simulator is the fidelity report's model


def test_every_vllm_row_is_there() -> None:
    vllm = [(HARDWARE[str(r["hardware"])], r["batch"], r["length"]) for r in ROWS if r["framework"] == "vLLM"]
    assert {(g, b, n) for g in ("a100", "h100") for b in (1, 16, 32, 64) for n in (128, 256, 512, 1024, 2048)} == set(vllm)


# -- (c) the rules by hand -----------------------------------------------------------------
def all_server(n: int) -> np.ndarray:
    return np.ones((n, len(hand.KINDS)), dtype=bool)


def owners(sim: Any) -> list[set[int]]:
    return [{r for r, _, _ in items} for _, _, items in sim.timeline]


def test_watermark_delays_an_admission() -> None:
    """Two 1-block requests: 960 bytes leave 0 free after both, under the 1% watermark (9.6 B): b waits for a.
    1500 bytes leave 540, a block free for each decode step: both run together. (The reservation
    rule would fit both in 960: 2 x 420.)"""
    inst = hand.instance([hand.request("a"), hand.request("b")])
    tight = simulate(inst, all_server(2), SimConfig(hand.costs(), kv_capacity_bytes=2 * BLOCK), record=True)
    assert owners(tight) == [{0}] * hand.O + [{1}] * hand.O
    assert tight.peak_kv_bytes == BLOCK and tight.ttft[1] > tight.e2e[0]
    roomy = simulate(inst, all_server(2), SimConfig(hand.costs(), kv_capacity_bytes=1500.0), record=True)
    assert owners(roomy) == [{0, 1}] * hand.O and roomy.peak_kv_bytes == 2 * BLOCK
    reserved = simulate(inst, all_server(2), SimConfig(hand.costs(), engine="tensorrt-llm", kv_capacity_bytes=2 * BLOCK), record=True)
    assert owners(reserved) == [{0, 1}] * hand.O


def test_a_decode_step_needs_a_free_block() -> None:
    """vLLM's can_append_slot: 1000 bytes admit both 1-block prompts (40 B left, above the 10 B
    watermark), but a decode step runs only while a block is free, needed or not: at each step a
    preempts b, the latest arrived, which is admitted again before the next step (prefill first)
    and recomputes its prompt and the tokens it has (11, 12, 13), each recompute yielding one."""
    inst = hand.instance([hand.request("a"), hand.request("b")])
    sim = simulate(inst, all_server(2), SimConfig(hand.costs(), kv_capacity_bytes=1000.0), record=True)
    items = [sorted((r, n) for r, _, n in its) for _, _, its in sim.timeline]
    assert items == [[(0, 10), (1, 10)], [(0, 1)], [(1, 11)], [(0, 1)], [(1, 12)], [(0, 1)], [(1, 13)]]
    assert sim.preemptions == 3 and sim.served.all()


def least_capacity(prompt: int, output: int, block: float) -> float:
    """The least KV capacity (bytes) that lets one request of ``block``-byte blocks finish alone:
    its largest recompute (prompt + output - 1 tokens) admissible under the watermark, and a
    block free beside the prompt + output - 2 tokens it holds before its last decode step."""
    admit = -(-(prompt + output - 1) // 16) * block / (1 - ENGINES["vllm"].watermark)
    step = (-(-(prompt + output - 2) // 16) + 1) * block if output > 1 else 0.0
    return max(admit, step)


@pytest.mark.parametrize("prompt, output", [(10, 2), (10, 7), (10, 8), (15, 3), (16, 1), (16, 2), (31, 3), (32, 17)])
def test_a_request_alone_is_served_exactly_when_it_can_finish(prompt: int, output: int) -> None:
    """The least capacity that serves one request alone: its largest recompute (prompt + output - 1
    tokens) admissible under the watermark, and a block free beside the prompt + output - 2 tokens
    it holds before its last decode step. One byte less drops it (never a request that loops)."""
    r = hand.request("a", output=output)
    r["prompt_tokens"] = prompt
    inst = hand.instance([r])
    least = least_capacity(prompt, output, BLOCK)
    served = simulate(inst, all_server(1), SimConfig(hand.costs(), kv_capacity_bytes=least * (1 + 1e-12)))
    assert served.served.all() and served.preemptions == 0
    assert simulate(inst, all_server(1), SimConfig(hand.costs(), kv_capacity_bytes=least - 1.0)).dropped.all()


def test_prompt_token_cap_delays_an_admission() -> None:
    """Two 3000-token prompts exceed 4096 together: b's prefill is admitted one iteration later
    (a's first decode step waits behind it: prefill first). Two 2000-token prompts go together."""
    assert ENGINES["vllm"].max_batched_tokens == 4096
    for prompt, expected in ((3000, [{0}, {1}, {0, 1}]), (2000, [{0, 1}, {0, 1}])):
        reqs = [hand.request("a"), hand.request("b")]
        for r in reqs:
            r["prompt_tokens"] = prompt
        sim = simulate(hand.instance(reqs), all_server(2), SimConfig(hand.costs()), record=True)
        assert owners(sim)[: len(expected)] == expected
        assert [n for _, _, items in sim.timeline[:2] for _, _, n in items][: len(expected[0]) + len(expected[1])].count(prompt) == 2
        assert sim.preemptions == 0


def test_preemption_of_the_latest_arrived_and_its_recompute() -> None:
    """a (15-token prompt) and b (10) hold a block each; 1445 bytes leave 485 free. At decode step 2
    a's 17th token takes a second block, leaving 5 bytes: b, the latest arrived, finds no free
    block for its step and is preempted (its block freed), is not admitted again under the
    watermark until a ends, then recomputes its prompt and its 2 generated tokens (12) in one
    prefill, which yields its third token, and decodes its last."""
    a, b = hand.request("a", arrival=0.0), hand.request("b", arrival=0.01)
    a["prompt_tokens"] = 15
    inst = hand.instance([a, b])
    sim = simulate(inst, all_server(2), SimConfig(hand.costs(), kv_capacity_bytes=3 * BLOCK + 5), arrivals=np.array([0.0, 0.01]),
                   record=True)
    items = [sorted((r, n) for r, _, n in its) for _, _, its in sim.timeline]
    assert items == [[(0, 15)], [(1, 10)], [(0, 1), (1, 1)], [(0, 1)], [(0, 1)], [(1, 12)], [(1, 1)]]
    assert sim.preemptions == 1 and sim.peak_kv_bytes == 2 * BLOCK
    assert sim.ttft[1] == pytest.approx(sim.timeline[1][1] - 0.01 + float(inst.arrays.first_token_down[1]))  # its first token stays
    assert sim.e2e[1] == pytest.approx(sim.timeline[-1][1] - 0.01 + float(inst.arrays.token_down_decode[1]))
    assert sim.served.all() and sim.tokens == 15 + 10 + 2 + 1 + 1 + 12 + 1


def test_a_request_preempts_itself_when_it_is_the_latest() -> None:
    """Both prompts of 10 tokens, output 10, 3 blocks: at step 7 a takes the last block; b, the latest,
    finds none and preempts itself; it recomputes 17 tokens (2 blocks) after a ends."""
    inst = hand.instance([hand.request("a", output=10), hand.request("b", output=10)])
    sim = simulate(inst, all_server(2), SimConfig(hand.costs(), kv_capacity_bytes=3 * BLOCK), record=True)
    items = [sorted((r, n) for r, _, n in its) for _, _, its in sim.timeline]
    assert items[:8] == [[(0, 10), (1, 10)]] + [[(0, 1), (1, 1)]] * 6 + [[(0, 1)]]
    assert items[8:] == [[(0, 1)]] * 2 + [[(1, 17)], [(1, 1)], [(1, 1)]]
    assert sim.preemptions == 1


@contextmanager
def bounded(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a simulation that loops for ever)."""
    def stop(*_: object) -> None:
        raise TimeoutError(f"the simulation ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


SHAPES = ("SSSSS", "SSCCC", "CSSSC", "CCSCC", "CCCCC")


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from(SHAPES), st.floats(0.0, 0.3)), min_size=1, max_size=5),
       blocks=st.floats(1.0, 6.0))
def test_every_request_is_served_or_dropped_as_it_alone_would_be(requests: list[tuple[int, int, str, float]], blocks: float) -> None:
    """Random small workloads near a full cache (preemptions, re-admissions, a preempted request
    admitted and preempted again): the simulation ends; a request is dropped exactly when it could
    not finish alone (its largest recompute under the watermark, a block free beside what it holds
    before its last step); every other request is served; the cache never overflows."""
    reqs = []
    for k, (prompt, output, _, arrival) in enumerate(requests):
        r = hand.request(f"r{k}", output=output)
        r["prompt_tokens"] = prompt
        reqs.append(r)
    inst = hand.instance(reqs)
    x = np.array([hand.placement(shape) for _, _, shape, _ in requests])
    cap = blocks * BLOCK
    with bounded(20):
        sim = simulate(inst, x, SimConfig(hand.costs(), kv_capacity_bytes=cap), arrivals=np.array([a for *_, a in requests]))
    for k, (prompt, output, shape, _) in enumerate(requests):
        block = 16 * 10 * shape[1:4].count("S")
        never = block > 0 and least_capacity(prompt, output, block) > cap
        assert sim.dropped[k] == never and sim.served[k] != never, (k, prompt, output, shape)
    assert sim.peak_kv_bytes <= cap


def test_a_split_request_has_smaller_blocks() -> None:
    """b caches only its one server layer: in 1130 bytes a's 480-byte block and b's 160 leave 490,
    a block free for a's decode steps, so both are admitted together and b is never preempted; an
    all-server b (480) is admitted too (170 B left, above the 11 B watermark) but leaves a no free
    block for its step, so a preempts it."""
    inst = hand.instance([hand.request("a"), hand.request("b")])
    split = np.array([hand.placement("SSSSS"), hand.placement("SSCCC")])
    sim = simulate(inst, split, SimConfig(hand.costs(), kv_capacity_bytes=1130.0), record=True)
    assert sim.peak_kv_bytes == BLOCK + 160 and {0, 1} in owners(sim) and sim.preemptions == 0  # they share iterations
    alone = simulate(inst, all_server(2), SimConfig(hand.costs(), kv_capacity_bytes=1130.0), record=True)
    assert alone.preemptions > 0 and alone.served.all()


def test_a_preempted_split_request_recomputes_its_whole_prefill_phase() -> None:
    """b = S S C C C (one server layer, 160-byte blocks) arrives after a (all server, 10 + 89 tokens).
    In 3900 bytes a's seventh block (at its 97th token) leaves 380 beside b's, less than a's block,
    at a's last step: b, on its client in decode step 3, is preempted; after a ends it re-runs its
    prefill phase: its server item over its prompt and 3 generated tokens (13), then the prefill's
    client part again (its route's delays, as priced for the prompt), which yields its 4th token;
    then steps 4 to 19."""
    a, b = hand.request("a", output=89), hand.request("b", output=20)
    inst = hand.instance([a, b])
    x = np.array([hand.placement("SSSSS"), hand.placement("SSCCC")])
    sim = simulate(inst, x, SimConfig(hand.costs(), kv_capacity_bytes=3900.0), arrivals=np.array([0.0, 0.01]), record=True)
    b_runs = [(k, n) for k, (_, _, its) in enumerate(sim.timeline) for r, _, n in its if r == 1]
    assert [n for _, n in b_runs] == [hand.P, 1, 1, 1, hand.P + 3] + [1] * 16
    assert sim.preemptions == 1 and sim.served.all()
    k, k_next = b_runs[4][0], b_runs[5][0]
    assert k > max(j for j, (_, _, its) in enumerate(sim.timeline) if any(r == 0 for r, _, _ in its))  # after a's end
    route = build_route(inst.arrays, 1, x[1])
    assert sim.timeline[k_next][0] - sim.timeline[k][1] == pytest.approx(route.prefill[1] + route.decode[0])
