"""The fluid capacity model and the policies built on it: ``plan`` and ``cut:``."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from splitllm.batched import server_costs
from splitllm.cli import main
from splitllm.errors import InputError
from splitllm.evaluator import request_metrics
from splitllm.formulations.batch_candidates import candidates
from splitllm.instance import Instance, example_path, load_instance, parse_instance
from splitllm.instances.generate import GIB, ClientClass, generate_instance
from splitllm.serving.capacity import capacity
from splitllm.serving.fluid import classes, cut_figures, fluid_plan
from splitllm.serving.planned import FixedMix, PlanOnline, class_of, cut_index, fixed_cuts, planned
from splitllm.serving.policies import place, run_policy
from splitllm.serving.simulator import SimConfig, server_kv_capacity, simulate
from splitllm.serving.workload import trace_workload

EXAMPLE = str(example_path("llama2-7b"))


@pytest.fixture(scope="module")
def strong() -> Instance:
    """RTX-4090 clients that hold the whole model, on a LAN: splits can only help the server."""
    data = generate_instance(clients=(ClientClass("desk", "rtx-4090", 64 * GIB, 1.25e8, 1.25e8, 0.001, 1.0),), requests=20)
    inst, _ = trace_workload(parse_instance(data), "azure-conv", n=200)
    return inst


def _kv(inst: Instance) -> float:
    costs = server_costs(inst, "vllm")
    return server_kv_capacity(inst, costs, "vllm")


def test_classes_partition_the_requests(strong: Instance) -> None:
    groups = classes(strong)
    members = np.sort(np.concatenate(groups.members))
    assert members.tolist() == list(range(strong.n_requests))
    assert groups.share.sum() == pytest.approx(1.0)
    assert class_of(groups, strong.n_requests)[groups.members[-1]].tolist() == [len(groups.names) - 1] * len(groups.members[-1])


def test_cut_figures_follow_the_cost_model(strong: Instance) -> None:
    groups = classes(strong)
    fig = cut_figures(strong, server_costs(strong, "vllm"), groups)
    all_server, all_client = 0, 1
    assert np.all(fig.prefill_s[:, all_client] == 0) and np.all(fig.kv_steps[:, all_client] == 0)
    assert np.all(fig.prefill_s[:, all_server] > 0) and fig.factor[all_server] == 1 and fig.factor[all_client] == 0
    # the TTFT room of all-server is the 10th percentile of limit - batch-1 TTFT, by the evaluator's formulas
    idx = groups.members[0]
    metrics = request_metrics(strong.arrays, idx, np.ones((len(idx), strong.n_blocks), bool))
    assert fig.ttft_room[0, all_server] == pytest.approx(np.quantile(strong.arrays.ttft_limit[idx] - metrics.ttft, 0.1))
    # KV held over a request's decode: the mean of each request's (o - 1) x KV at mid context,
    # not the product of the class's means (long outputs hold more KV for longer)
    a = strong.arrays
    p, o = a.prompt_tokens[idx].astype(float), a.output_tokens[idx].astype(float)
    own = a.kv[idx].sum(axis=1) * (p + o / 2) / (p + o) * (o - 1)
    assert fig.kv_steps[0, all_server] == pytest.approx(own.mean())
    assert fig.kv_client_s[0, all_server] == 0.0
    # more server blocks, more server prefill (prefixes)
    prefixes = [cut_index(fig.cuts, f"p{n}") for n in range(2, strong.n_blocks, 4)]
    assert np.all(np.diff(fig.prefill_s[0, prefixes]) >= 0)


def test_fluid_plan_is_a_mix_and_beats_all_server_with_strong_clients(strong: Instance) -> None:
    plan, all_server = planned(strong, server_costs(strong, "vllm"), _kv(strong))
    assert plan.share.sum(axis=1) == pytest.approx(np.ones(len(plan.groups.names)))
    assert plan.rate >= all_server > 0
    assert plan.rate > 1.05 * all_server  # whole-model clients take work off the server
    only = np.zeros(plan.share.shape, bool)
    only[:, 1] = True  # all-client alone needs no server at all: the model puts no server limit on it
    assert fluid_plan(strong, server_costs(strong, "vllm"), _kv(strong), groups=plan.groups, allowed=only).rate == np.inf


def test_fixed_mix_follows_its_shares(strong: Instance) -> None:
    data = copy.deepcopy(strong.source)
    for request in data["requests"]:
        request["slo"] = {"ttft_s": 1e3}  # every cut meets the request's own limits
    many = parse_instance(data)
    cuts = candidates(many.n_blocks)
    share = np.zeros((1, len(cuts)))
    share[0, 0], share[0, cut_index(cuts, "p20")] = 0.25, 0.75
    mix = FixedMix(many, cuts, share, np.zeros(many.n_requests, dtype=np.int64))
    x = np.ones((many.n_requests, many.n_blocks), bool)
    mix.place(0.0, list(range(40)), [], x)
    assert int(x[:40].all(axis=1).sum()) == 10 and int((x[:40].sum(axis=1) == 20).sum()) == 30


def test_cut_spec_is_checked() -> None:
    inst = load_instance(EXAMPLE)
    mix = fixed_cuts(inst, "*=p10")
    assert (mix.share.argmax(axis=1) == cut_index(mix.cuts, "p10")).all()
    for bad in ("nobody=p3", "laptop-m1=q3", "laptop-m1=p0", f"laptop-m1=p{inst.n_blocks}", "laptop-m1"):
        with pytest.raises(InputError):
            fixed_cuts(inst, bad)


def test_cut_policy_places_what_it_names_and_plan_runs(strong: Instance) -> None:
    costs = server_costs(strong, "vllm")
    cfg = SimConfig(costs, "vllm", None, _kv(strong), False)
    arrivals = np.linspace(0.0, 20.0, strong.n_requests)
    sim, placed = run_policy(strong, place(strong, "cut:*=p12", kv_capacity_bytes=cfg.kv_capacity_bytes), cfg, arrivals)
    assert (placed.placements.sum(axis=1) == 12).all() and placed.placements[:, :12].all()
    sim, placed = run_policy(strong, place(strong, "plan", kv_capacity_bytes=cfg.kv_capacity_bytes), cfg, arrivals)
    assert np.isfinite(sim.e2e).all()


def _planned_cut(strong: Instance, word: str) -> tuple[PlanOnline, float]:
    """A ``plan`` placer whose mix sends every class to one cut, with all-server's estimate."""
    plan, all_server = planned(strong, server_costs(strong, "vllm"), _kv(strong))
    share = np.zeros(plan.share.shape)
    share[:, cut_index(plan.figures.cuts, word)] = 1.0
    return PlanOnline(strong, dataclasses.replace(plan, share=share, rate=10 * all_server), all_server, _kv(strong)), all_server


def test_plan_splits_only_under_load(strong: Instance) -> None:
    placer, all_server = _planned_cut(strong, "p20")
    x = np.ones((strong.n_requests, strong.n_blocks), bool)
    for r in range(20):  # one arrival a minute, nothing in flight
        placer.place(60.0 * r, [r], [], x)
    assert x[:20].all()
    for r in range(20, 120):  # far above all-server's estimate
        placer.place(60.0 * 20 + (r - 20) / (10 * all_server), [r], list(range(20, r)), x)
    assert (x[100:120].sum(axis=1) == 20).all()


def test_plan_keeps_a_class_planned_off_the_server_off_it_at_any_load(strong: Instance) -> None:
    placer, _ = _planned_cut(strong, "client")
    x = np.ones((strong.n_requests, strong.n_blocks), bool)
    for r in range(20):  # idle: the all-client requests take nothing from the server
        placer.place(60.0 * r, [r], [], x)
    assert not x[:20].any()


def test_plan_places_only_what_meets_the_requests_own_limits(strong: Instance) -> None:
    data = copy.deepcopy(strong.source)
    for request in data["requests"]:
        request["slo"] = {"tpot_s": 1e-6}  # no placement meets it, not even batch-1 all-client
    tight = parse_instance(data)
    plan, all_server = planned(strong, server_costs(strong, "vllm"), _kv(strong))
    share = np.zeros(plan.share.shape)
    share[:, cut_index(plan.figures.cuts, "client")] = 1.0
    placer = PlanOnline(tight, dataclasses.replace(plan, share=share, rate=10 * all_server), all_server, _kv(tight))
    x = np.zeros((tight.n_requests, tight.n_blocks), bool)
    placer.place(0.0, list(range(10)), [], x)
    assert x[:10].all()  # all on the server, the fallback


def test_plan_never_loses_to_all_server_on_the_example() -> None:
    inst, times = trace_workload(load_instance(EXAMPLE), "azure-conv", n=150, slo={"ttft_s": "0.5"})
    costs = server_costs(inst, "vllm")
    cfg = SimConfig(costs, "vllm", None, _kv(inst), False)
    rates = {p: capacity(inst, place(inst, p, kv_capacity_bytes=cfg.kv_capacity_bytes), cfg, times)["capacity_rps"]
             for p in ("all-server", "plan")}
    assert rates["plan"] >= rates["all-server"] * 0.98


def test_policies_lists_plan_and_cut() -> None:
    out = CliRunner().invoke(main, ["policies"]).output
    assert "plan" in out and "cut:CLIENT=CUT" in out


@pytest.mark.parametrize("same_client", [True, False])
def test_shared_clients_queue_the_work_of_one_device(same_client: bool) -> None:
    inst = load_instance(EXAMPLE)
    data = copy.deepcopy(inst.source)
    clients = sorted(data["clients"])
    data["requests"] = [dict(data["requests"][0], id="a", client=clients[0]),
                        dict(data["requests"][0], id="b", client=clients[0] if same_client else clients[1])]
    two = parse_instance(data)
    costs = server_costs(two, "vllm")
    x = np.zeros((2, two.n_blocks), bool)  # all on the client: nothing but each client's own work
    alone = simulate(two, x, SimConfig(costs, "vllm", None, _kv(two), False)).e2e
    shared = simulate(two, x, SimConfig(costs, "vllm", None, _kv(two), False, shared_clients=True)).e2e
    if same_client:  # one device does both requests' work, one stretch at a time
        assert alone[0] == pytest.approx(alone[1]) and max(shared) == pytest.approx(alone[0] + alone[1], rel=1e-9)
    else:
        assert shared.tolist() == alone.tolist()
