"""The windowed batch-aware policies of ``splitllm simulate`` (``batch``, ``batch-greedy``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from batch_cases import batch_data, toy_costs
from click.testing import CliRunner

from splitllm.batched import costs as batch_costs
from splitllm.cli import main
from splitllm.errors import InputError
from splitllm.instance import example_path, parse_instance
from splitllm.serving.policies import WINDOW, WINDOW_BUDGET_S, place, windowed, windows
from splitllm.serving.workload import retime


@pytest.fixture
def toy_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_costs, "batched_costs", lambda instance, engine="vllm": toy_costs())


def _instance(n: int, seed: int = 3, **changes: dict) -> object:
    data = batch_data(seed, n, 5, False)
    for i, request in enumerate(data["requests"]):
        request["arrival_s"] = float(n - i)  # arrival order is the reverse of instance order
        request.update(changes.get(str(i), {}))
    return parse_instance(data)


def test_window_option() -> None:
    assert windowed("batch") == ("batch", WINDOW, WINDOW_BUDGET_S)
    assert windowed("batch-greedy:5") == ("batch-greedy", 5, WINDOW_BUDGET_S)
    assert windowed("batch:7:0.5") == ("batch", 7, 0.5)
    assert windowed("greedy") is None and windowed("batched") is None
    for bad in ("batch:", "batch:0", "batch:-3", "batch:2.5", "batch:x", "batch:4:0", "batch:4:nan", "batch:4:inf", "batch:1:2:3"):
        with pytest.raises(InputError, match="--policy"):
            windowed(bad)


def test_windows_follow_arrival_order_and_not_the_rate() -> None:
    times = np.array([0.0, 3.0, 1.0, 1.0, 7.0, 2.0, 9.0])
    got = [w.tolist() for w in windows(times, 3)]
    assert got == [[0, 2, 3], [5, 1, 4], [6]]
    for rate in (0.1, 5.0, 300.0):
        assert [w.tolist() for w in windows(retime(times, rate, False, np.random.default_rng(0)), 3)] == got


@pytest.mark.parametrize(("policy", "n_windows"), [("batch:2", 3), ("batch-greedy:2", 3), ("batch:3:5", 2)])
def test_places_every_request_deterministically(policy: str, n_windows: int, toy_tables: None) -> None:
    inst = _instance(5)
    first, again = place(inst, policy), place(inst, policy)
    assert first.placements.shape == (5, 5) and first.sent.all()
    assert first.windows == n_windows and sum(first.statuses.values()) == n_windows
    assert np.array_equal(first.placements, again.placements) and first.fallback == again.fallback
    assert first.wall_s >= 0 and (first.latency_s >= 0).all()


def test_rejected_and_single_token_requests_go_all_server(toy_tables: None) -> None:
    # request 1 cannot meet a 1 ns TPOT anywhere: the solver rejects it; request 2 makes one token.
    inst = _instance(4, **{"1": {"slo": {"tpot_s": 1e-9}}, "2": {"output_tokens": 1}})
    for policy in ("batch", "batch-greedy"):
        p = place(inst, policy)
        assert p.sent.all() and p.fallback == 1 and p.windows == 1
        assert p.placements[1].all() and p.placements[2].all()


def test_a_window_of_single_token_requests_is_not_solved(toy_tables: None) -> None:
    inst = _instance(3, **{str(i): {"output_tokens": 1} for i in range(3)})
    p = place(inst, "batch:2")
    assert p.placements.all() and p.sent.all() and p.statuses == {} and p.wall_s == 0.0 and p.windows == 2


def test_simulate_cli_places_every_request(tmp_path: Path) -> None:
    args = [str(example_path("llama2-7b")), "--trace", "azure-conv", "--requests", "6"]
    result = CliRunner().invoke(main, ["-q", "simulate", *args, "--policy", "batch-greedy:4:5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "requests.csv").open()))
    assert len(rows) == 6 and all(len(r["placement"]) == 34 and set(r["placement"]) <= {"C", "S"} for r in rows)


@pytest.mark.parametrize("policy", ["batch:0", "batch:4:x", "batch-greedy:1:2:3"])
def test_bad_window_option_is_one_line_exit_2(policy: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["-q", "simulate", str(example_path("llama2-7b")), "--policy", policy, "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--policy" in lines[0] and policy in lines[0]


def test_every_throughput_solver_is_windowed_and_unknown_policies_list_the_choices() -> None:
    assert windowed("batch-milp:4:1") == ("batch-milp", 4, 1.0) and windowed("batch-cpsat") is not None
    inst = _instance(3)
    for bad in ("batch-online:3", "nope", "batch-milps"):
        with pytest.raises(InputError, match="unknown policy") as info:
            place(inst, bad)
        assert "batch-online" in str(info.value) and "solution:FILE" in str(info.value) and "dp" in str(info.value)


def test_a_windowed_milp_places_like_the_exact_method(toy_tables: None) -> None:
    inst = _instance(4)
    milp, exact = place(inst, "batch-milp:4:20"), place(inst, "batch:4:20")
    assert milp.sent.all() and milp.windows == 1 and milp.statuses and exact.statuses
    assert milp.fallback == exact.fallback
