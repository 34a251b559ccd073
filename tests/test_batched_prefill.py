"""Batch-1 and batched costs of one profile agree for a lone all-server request.

For every bundled profile with a batched section, the batched model's time to first token
(one prefill iteration over every block) and its decode step at the same context agree
with the same profile's batch-1 curves within :data:`TOLERANCE`, on the measured tables
(no engine fit), at several prompt lengths: batch-1 curves are kernel sums without an
engine's per-iteration overhead or fitted kernel scale (vLLM/TensorRT-LLM fits on the
vidur tables scale kernels by 0.83-1.0 and add their overhead on top).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from splitllm.batched import IterationPricer, costs_from_tables, iteration_time
from splitllm.batched.iteration import all_blocks
from splitllm.instances.bundled import bundled_profile, list_bundled
from splitllm.instances.models import get_shape
from splitllm.profiles import Curve

#: Largest relative gap allowed between batched and batch-1 figures of one profile.
TOLERANCE = 0.15
PROMPTS = (128, 512, 1024, 2000)

BATCHED = [(d, m) for d, m in list_bundled() if bundled_profile(d, m).batched is not None]


def lone_request(device: str, model: str, engine: str, prompt: int) -> tuple[float, float, float, float]:
    """(batched TTFT, batch-1 TTFT, batched decode step, batch-1 decode step) of one request."""
    profile = bundled_profile(device, model)
    assert profile.batched is not None
    # the measured tables, no engine fit: batch-1 curves are kernel sums without an engine's
    # per-iteration overhead or its fitted kernel_scale
    tables = dataclasses.replace(profile.batched, engines={engine: {"overhead_s": 0.0, "kernel_scale": 1.0}})
    costs = costs_from_tables(tables, engine)
    kinds = all_blocks(get_shape(model).n_layers)
    need = np.ones((1, len(kinds)), bool)
    ttft = float(iteration_time(costs, kinds, need, [prompt], [0]))
    tpot = float(iteration_time(costs, kinds, need, [1], [prompt]))
    assert ttft == pytest.approx(IterationPricer(costs, kinds)([(0, len(kinds), prompt, 0)]), rel=1e-9)
    ttft_1 = sum(float(profile.costs(k).prefill.value(prompt)) for k in kinds)
    tpot_1 = sum(float(profile.costs(k).decode.value(prompt)) for k in kinds)
    return ttft, ttft_1, tpot, tpot_1


def test_every_bundled_batched_profile_is_covered() -> None:
    assert len(BATCHED) >= 10  # vidur's A100/H100/A40 and Helix's 8


@pytest.mark.parametrize("device, model", BATCHED)
def test_lone_request_agrees_with_batch_1(device: str, model: str) -> None:
    profile = bundled_profile(device, model)
    assert profile.batched is not None
    for engine in profile.batched.engines:  # the same tables under each engine's name
        for prompt in PROMPTS:
            if prompt > get_shape(model).max_context:
                continue
            ttft, ttft_1, tpot, tpot_1 = lone_request(device, model, engine, prompt)
            assert abs(ttft / ttft_1 - 1) <= TOLERANCE, (engine, prompt, ttft, ttft_1)
            assert abs(tpot / tpot_1 - 1) <= TOLERANCE, (engine, prompt, tpot, tpot_1)


def test_a_mixed_block_costs_the_larger_of_its_two_tables() -> None:
    profile = bundled_profile("a100-40gb", "llama-2-70b")
    assert profile.batched is not None
    costs = costs_from_tables(profile.batched, "vllm")
    kinds = ("layer",)
    both = float(iteration_time(costs, kinds, np.ones((2, 1), bool), [500, 1], [0, 900]))
    decode = float(iteration_time(costs, kinds, np.ones((1, 1), bool), [1], [900]))
    prefill = float(iteration_time(costs, kinds, np.ones((1, 1), bool), [500], [0]))
    attn = float(costs.attention.item_s(1, 900))  # the decode item's attention, added on top
    assert both == pytest.approx(max(decode - attn, prefill) + attn, rel=1e-12)
    assert both < decode + prefill
    pricer = IterationPricer(costs, kinds)
    assert pricer([(0, 1, 500, 0), (0, 1, 1, 900)]) == pytest.approx(both, rel=1e-12)


def test_without_a_prefill_table_a_prompt_costs_as_many_decode_tokens() -> None:
    profile = bundled_profile("a100-40gb", "llama-2-70b")
    assert profile.batched is not None
    costs = costs_from_tables(dataclasses.replace(profile.batched, prefill_lin={}), "vllm")
    kinds = all_blocks(80)
    ttft, ttft_1 = float(iteration_time(costs, kinds, np.ones((1, 82), bool), [1000], [0])), 0.0
    ttft_1 = sum(float(profile.costs(k).prefill.value(1000)) for k in kinds)
    assert ttft / ttft_1 > 1.5  # the old rule: the decode table at batch 1,000


def test_a_file_without_prefill_lin_loads_and_round_trips() -> None:
    profile = bundled_profile("a100-80gb", "llama-2-7b")
    assert profile.batched is not None and not profile.batched.prefill_lin
    assert "prefill_lin" not in profile.batched.to_json()
    helix = bundled_profile("l4", "llama-1-30b")
    assert helix.batched is not None
    data = helix.batched.to_json()
    assert set(data["prefill_lin"]) == {"layer"}
    again = type(helix.batched).from_json(data, "batched")
    assert isinstance(again.prefill_lin["layer"], Curve)
    assert again.to_json() == data


@pytest.mark.parametrize("seed", range(5))
def test_pricer_agrees_with_iteration_time_on_random_mixed_iterations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    profile = bundled_profile("t4", "llama-1-30b")
    assert profile.batched is not None
    costs = costs_from_tables(profile.batched, "vllm")
    kinds = all_blocks(60)
    pricer = IterationPricer(costs, kinds)
    for _ in range(20):
        n = int(rng.integers(1, 8))
        lo = rng.integers(0, len(kinds), n)
        hi = np.minimum(lo + rng.integers(1, len(kinds) + 1, n), len(kinds))
        q = np.where(rng.random(n) < 0.4, rng.integers(2, 3000, n), 1)
        ctx = rng.integers(0, 4000, n)
        need = np.zeros((n, len(kinds)), bool)
        for i in range(n):
            need[i, lo[i]:hi[i]] = True
        expected = float(iteration_time(costs, kinds, need, q, ctx))
        items = [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(lo, hi, q, ctx)]
        assert pricer(items) == pytest.approx(expected, rel=1e-9)
