"""The online batch-aware policy ``batch-online``: each arrival placed given the current batch."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from splitllm.batched.evaluator import evaluate_batch
from splitllm.batched import server_costs
from splitllm.evaluator import exceeds, request_metrics
from splitllm.cli import main
from splitllm.instance import Instance, example_path, load_instance, parse_instance
from splitllm.formulations.batch_data import BatchState
from splitllm.serving.online import BatchOnline
from splitllm.formulations.batch_candidates import best_candidate, fit
from splitllm.serving.simulator import SimConfig, simulate
from splitllm.serving.workload import trace_workload


@pytest.fixture(scope="module")
def workload() -> Instance:
    inst, _ = trace_workload(load_instance(example_path("llama2-7b")), "azure-conv", n=120)
    return inst


def _kv(inst: Instance) -> float:
    costs = server_costs(inst, "vllm")
    return 0.9 * (costs.memory_bytes - costs.weight_bytes)


def _feed(inst: Instance, placer: BatchOnline, window: int) -> np.ndarray:
    """Arrivals one at a time; the ``window`` previous requests are in flight."""
    x = np.ones((inst.n_requests, inst.n_blocks), bool)
    for r in range(inst.n_requests):
        assert placer.place(float(r), [r], list(range(max(0, r - window), r)), x).tolist() == [True]
    return x


def test_t_with_is_f5_iteration_time(workload: Instance) -> None:
    placer = BatchOnline(workload, server_costs(workload, "vllm"), _kv(workload))
    rng = np.random.default_rng(1)
    for _ in range(5):
        rows = rng.choice(workload.n_requests, size=20, replace=False)
        x = rng.random((20, workload.n_blocks)) < 0.7
        r = int(np.setdiff1d(np.arange(workload.n_requests), rows)[0])
        got = BatchState(placer.data, x, rows).t_with(r, placer.cand)
        for k, cand in enumerate(placer.cand):
            full = np.zeros((workload.n_requests, workload.n_blocks), bool)
            full[rows], full[r] = x, cand
            adm = np.zeros(workload.n_requests, bool)
            adm[rows], adm[r] = True, True
            assert got[k] == pytest.approx(placer.data.iteration_time(full, adm), rel=1e-12)


@pytest.mark.parametrize("window", [5, 20, 60])
def test_promises_hold_over_the_batch(workload: Instance, window: int) -> None:
    """Among the requests in flight together, every promised one meets its TPOT at F5's T
    over the promised ones (the evaluator's figure), its batch-1 TTFT and its memory."""
    costs = server_costs(workload, "vllm")
    placer = BatchOnline(workload, costs, _kv(workload))
    x = _feed(workload, placer, window)
    promised = placer.promised
    assert promised.any() and (~x[promised]).any(), "the placer should split some requests"
    a = workload.arrays
    metrics = request_metrics(a, np.arange(workload.n_requests), x)
    assert not exceeds(metrics.ttft[promised], a.ttft_limit[promised]).any()
    assert not exceeds(metrics.client_mem, a.client_mem_limit).any()
    for end in range(1, workload.n_requests + 1):  # each arrival's batch, at that arrival
        batch = np.zeros(workload.n_requests, bool)
        batch[max(0, end - 1 - window) : end] = True
        if (batch & ~promised).any():
            continue  # a request sent without a promise may lengthen T past the others'
        ev = evaluate_batch(workload, costs, x, batch)
        assert not [v for v in ev.violations if "tpot" in v], ev.violations


def test_deterministic_and_one_token_requests_stay_on_the_server(workload: Instance) -> None:
    costs, kv = server_costs(workload, "vllm"), _kv(workload)
    first = _feed(workload, BatchOnline(workload, costs, kv), 10)
    assert np.array_equal(first, _feed(workload, BatchOnline(workload, costs, kv), 10))
    single = workload.arrays.output_tokens < 2
    assert first[single].all()


def test_impossible_tpot_goes_all_server_without_promise(workload: Instance) -> None:
    data = dict(workload.source)
    data["requests"] = [dict(r, slo={**r["slo"], "tpot_s": 1e-6}) for r in workload.source["requests"][:3]]
    inst = parse_instance(data)
    placer = BatchOnline(inst, server_costs(inst, "vllm"), _kv(inst))
    x = _feed(inst, placer, 2)
    assert x.all() and not placer.promised.any()


def test_arrivals_of_one_instant_are_placed_in_turn(workload: Instance) -> None:
    """Newcomers of one instant are placed one after another (heaviest first, then in
    request order), each seeing the ones placed before it; the wall time is counted."""
    costs, kv = server_costs(workload, "vllm"), _kv(workload)
    together = BatchOnline(workload, costs, kv)
    x = np.ones((workload.n_requests, workload.n_blocks), bool)
    order = [7, 3, 9, 0, 5, 1, 8, 2, 6, 4]
    assert together.place(0.0, order, [], x).all() and together.wall_s > 0
    weight = workload.arrays.weight
    one_by_one = BatchOnline(workload, costs, kv)
    y = np.ones_like(x)
    placed: list[int] = []
    for r in sorted(order, key=lambda i: (-weight[i], i)):
        one_by_one.place(0.0, [r], placed, y)
        placed.append(r)
    assert np.array_equal(x, y)


def test_simulate_places_online_and_reports_it(tmp_path: Path) -> None:
    """Through the CLI: the written placements are the placer's, its wall time is reported,
    and the same run again gives the same requests.csv."""
    args = [str(example_path("llama2-7b")), "--trace", "azure-conv", "--requests", "40", "--policy", "batch-online"]
    for run in ("a", "b"):
        result = CliRunner().invoke(main, ["-q", "simulate", *args, "--out", str(tmp_path / run)])
        assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "a" / "requests.csv").open()))
    assert len(rows) == 40 and any("C" in r["placement"] for r in rows)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["policy_wall_s"] > 0
    assert (tmp_path / "a" / "requests.csv").read_text() == (tmp_path / "b" / "requests.csv").read_text()


def test_online_placer_sees_the_simulated_batch(workload: Instance) -> None:
    """Driven by the simulator, each arrival's in-flight list is what the server holds: the
    placements written equal a replay of the placer on the in-flight lists it was given."""
    costs = server_costs(workload, "vllm")
    cfg = SimConfig(costs, kv_capacity_bytes=_kv(workload))
    arrivals = np.arange(workload.n_requests) * 0.05
    seen: list[tuple[list[int], list[int]]] = []

    class Recording(BatchOnline):
        def place(self, now, arriving, in_flight, placements):
            seen.append((list(arriving), list(in_flight)))
            return super().place(now, arriving, in_flight, placements)

    x = np.ones((workload.n_requests, workload.n_blocks), bool)
    sim = simulate(workload, x, cfg, arrivals=arrivals, placer=Recording(workload, costs, _kv(workload)))
    assert sim.served.all() and len(seen) == workload.n_requests
    assert max(len(f) for _, f in seen) > 1, "requests should overlap at 20 req/s"
    replay = BatchOnline(workload, costs, _kv(workload))
    y = np.ones_like(x)
    for arriving, in_flight in seen:
        assert set(in_flight) <= set(range(arriving[0]))
        replay.place(0.0, arriving, in_flight, y)
    assert np.array_equal(sim.placements, y)


def test_capacity_runs_the_online_policy(tmp_path: Path) -> None:
    args = [str(example_path("llama2-7b")), "--trace", "azure-conv", "--requests", "30", "--capacity"]
    result = CliRunner().invoke(main, ["-q", "simulate", *args, "--policy", "all-server", "--policy", "batch-online", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads((tmp_path / "capacity.json").read_text())["policies"]}
    assert rows["batch-online"]["policy_wall_s"] > 0 and rows["batch-online"]["tried"]


@pytest.mark.slow
def test_placement_latency_charges_the_placer(workload: Instance) -> None:
    """With the placer charged, each request starts as late as its placing took."""
    import time

    costs = server_costs(workload, "vllm")
    cfg = SimConfig(costs, kv_capacity_bytes=_kv(workload))

    class Slow(BatchOnline):
        def place(self, now, arriving, in_flight, placements):
            time.sleep(0.02)
            return super().place(now, arriving, in_flight, placements)

    arrivals = np.arange(workload.n_requests) * 100.0  # alone on the server: no queueing
    x = np.ones((workload.n_requests, workload.n_blocks), bool)
    free = simulate(workload, x, cfg, arrivals=arrivals, placer=Slow(workload, costs, _kv(workload)))
    charged = simulate(workload, x, cfg, arrivals=arrivals, placer=Slow(workload, costs, _kv(workload)), charge_placer=True)
    assert np.array_equal(free.placements, charged.placements)
    late = charged.ttft - free.ttft
    assert np.all(late >= 0.02) and np.all(late < 1.0)


def test_a_batch_past_its_promises_and_kv_still_takes_what_adds_nothing(workload: Instance) -> None:
    data = copy.deepcopy(workload.source)
    for client in data["clients"].values():
        client["memory_bytes"] = 1e12  # the whole model fits every client
    for request in data["requests"]:
        request["slo"] = {"ttft_s": 1e3, "tpot_s": 10.0}
    inst = parse_instance(data)
    placer = BatchOnline(inst, server_costs(inst, "vllm"), _kv(inst))
    rows = np.arange(1, 60)
    x = np.ones((len(rows), inst.n_blocks), bool)
    t_now = BatchState(placer.data, x, rows).t()
    batch = BatchState(placer.data, x, rows, np.full(len(rows), t_now / 2))  # every promise already broken
    batch.kv = 2 * placer.data.kv_capacity  # and more KV reserved than the server has
    rows_fit = fit(batch, 0, placer.cand)
    all_client = int(np.flatnonzero(~placer.cand.any(axis=1))[0])
    all_server = int(np.flatnonzero(placer.cand.all(axis=1))[0])
    assert rows_fit.t[all_client] == t_now > batch.t_cap
    assert rows_fit.acceptable[all_client] and not rows_fit.acceptable[all_server]
    assert best_candidate(batch, 0, placer.cand) == (all_client, np.inf)
