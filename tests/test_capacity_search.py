"""The capacity search says what it found: a rate, no upper bound, or a target no rate reaches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from splitllm.batched import server_costs
from splitllm.cli import main
from splitllm.instance import example_path, load_instance
from splitllm.serving.capacity import MAX_HALVINGS, capacity, least_gap, search
from splitllm.serving.policies import place
from splitllm.serving.simulator import SimConfig, server_kv_capacity
from splitllm.serving.workload import trace_workload

EXAMPLE = str(example_path("llama2-7b"))


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(1e-3, 1e3), start=st.floats(1e-2, 1e2))
def test_search_brackets_a_monotone_threshold(threshold: float, start: float) -> None:
    rate, tried = search(lambda r: 1.0 if r <= threshold else 0.5, start=start, rtol=0.01)
    assert threshold * 0.99 <= rate <= threshold
    assert all((value >= 0.9) == (r <= threshold) for r, value in tried)


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.0, 0.899), start=st.floats(1e-2, 1e2), floor=st.floats(1e-4, 1e2))
def test_halving_stops_where_lower_rates_cannot_change_attainment(level: float, start: float, floor: float) -> None:
    rate, tried = search(lambda r: level, start=start, settled=lambda r: r < floor)
    rates = [r for r, _ in tried]
    assert rate == 0.0 and len(tried) <= 1 + MAX_HALVINGS
    assert all(r >= floor for r in rates[:-1]) and (rates[-1] < floor or len(tried) == 1 + MAX_HALVINGS)


def test_halving_is_bounded_when_attainment_keeps_rising_below_the_target() -> None:
    rate, tried = search(lambda r: 0.89 - r * 1e-3, start=1.0)
    assert rate == 0.0 and len(tried) == 1 + MAX_HALVINGS


def test_least_gap_follows_the_rescaling() -> None:
    times = np.array([0.0, 0.0, 2.0, 2.0, 3.0, 10.0])  # 6 arrivals over 10 s: 0.5 req/s
    assert least_gap(times, 0.5) == 1.0 and least_gap(times, 1.0) == 0.5 and least_gap(np.zeros(3), 1.0) == np.inf


def test_bursts_that_no_rate_removes_are_reported_not_a_capacity_of_zero() -> None:
    inst = load_instance(EXAMPLE)
    made, _ = trace_workload(inst, "azure-conv", n=40, slo={"ttft_s": "1.2x"})
    times = np.repeat([0.0, 100.0], 20)  # two bursts of 20: rescaling the rate keeps them
    costs = server_costs(made, "vllm")
    cfg = SimConfig(costs, "vllm", None, server_kv_capacity(made, costs, "vllm"), False)
    row = capacity(made, place(made, "all-server", engine="vllm", kv_capacity_bytes=cfg.kv_capacity_bytes), cfg, times)
    assert row["finding"] == "unreached" and row["capacity_rps"] is None
    assert row["best_attainment"] < 0.9 and len(row["tried"]) <= 3  # the bursts were apart from the start
    assert "2 instants (up to 20 at once)" in row["note"] and "--poisson" in row["note"]


def test_a_partial_slo_override_keeps_the_other_defaults() -> None:
    inst = load_instance(EXAMPLE)
    made, _ = trace_workload(inst, "azure-conv", n=30, slo={"ttft_s": "10"})
    decoding = [r for r in made.requests if r.output_tokens > 1]
    assert decoding and all(set(r.slo) == {"ttft_s", "tpot_s"} for r in decoding)
    assert all(r.slo["ttft_s"] >= 10 for r in made.requests)
    dropped, _ = trace_workload(inst, "azure-conv", n=30, slo={"tpot_s": "none"})
    assert all(set(r.slo) == {"ttft_s"} for r in dropped.requests)


def test_capacity_json_records_the_slos_used(tmp_path: Path) -> None:
    args = ["-q", "simulate", EXAMPLE, "--trace", "azure-conv", "--requests", "60", "--slo", "ttft_s=0.5",
            "--capacity", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert data["slo"] == {"ttft_s": "0.5", "tpot_s": "0.1"}
    assert data["policies"][0]["finding"] == "capacity" and data["policies"][0]["capacity_rps"] > 0
    assert "Attainment at each rate tried" in (tmp_path / "capacity.md").read_text()
