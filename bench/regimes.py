"""The regime map: where collaborative inference raises a server's capacity, by how much, and why.

A benchmark, not a test: ``python -m splitllm.bench.regimes --out bench/results/regimes -j 2``
(``--dask-scheduler ADDRESS`` runs the regimes as tasks on a Dask cluster instead).
Each regime is a server, a client population, a trace and SLOs (and optionally chunked
prefill or another engine). For each regime it measures, on the serving simulator:

* the capacity (highest rate with >= 90% SLO attainment) of every policy given
  (``--policy``; default all-server, greedy, batch-greedy, batch-online, plan);
* the **frontier**: the best *fixed* policy found by searching uniform cuts per client
  (every cut that fits the client's memory: all-server, all-client, each server prefix
  and suffix of an even number of blocks). With one client class the search is
  exhaustive over them; with several it is a coordinate search over every fourth block
  count (each client's cuts in turn, the others held at their best, two rounds at most),
  then mixes of each client's two best cuts on a grid of 1/4.
  A cut is simulated in full only when it beats the best so far at that rate (attainment
  is assumed to fall as the rate grows, as the capacity search assumes);
* the **fluid estimate** of :mod:`splitllm.serving.fluid` (an estimate, not a bound);
* where the all-server run's server time goes near its capacity: the share of busy time
  in prefill iterations, the KV peak against the cache, preemptions.

Writes ``regimes.json``, ``regimes.md`` (the table) and ``regimes.png`` (capacity x
all-server as a heatmap).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import server_costs
from splitllm.dask_client import check_scheduler, dask_client
from splitllm.errors import SplitLLMError
from splitllm.instance import Instance, parse_instance
from splitllm.jsonio import atomic_path, write_json
from splitllm.outputs import check_output_dir
from splitllm.instances.generate import GIB, MBIT, ClientClass, generate_instance
from splitllm.serving.capacity import ATTAINMENT_TARGET, attainment, capacity
from splitllm.serving.fluid import classes, coarse
from splitllm.serving.planned import FixedMix, class_of, planned
from splitllm.serving.policies import Placement, place
from splitllm.serving.registry import get_policy
from splitllm.serving.simulator import SimConfig, server_kv_capacity, simulate
from splitllm.serving.workload import retime, trace_workload
from splitllm.formulations.batch_candidates import candidates

LAPTOPS = (ClientClass("laptop-m1-max", "apple-m1-max", 8 * GIB, 50 * MBIT, 200 * MBIT, 0.030, 0.6),
           ClientClass("laptop-m1", "apple-m1-q4", 4 * GIB, 50 * MBIT, 200 * MBIT, 0.030, 0.4))


def rtx4090(up_mbit: float, down_mbit: float, rtt_s: float) -> tuple[ClientClass, ...]:
    return (ClientClass("rtx-4090", "rtx-4090", 8 * GIB, up_mbit * MBIT, down_mbit * MBIT, rtt_s, 1.0),)


@dataclass(frozen=True)
class Regime:
    """One cell of the map; ``clients`` None is the generator's default mix."""

    name: str
    what: str
    clients: tuple[ClientClass, ...] | None = None
    server: str = "a100-80gb"
    slow_server: float = 1.0  # every server time x this, memory -> weak_memory (a synthetic weaker GPU)
    trace: str = "azure-conv"
    poisson: bool = False
    slo: dict[str, str] = field(default_factory=dict)
    chunk: int | None = None
    engine: str = "vllm"


LAN = rtx4090(1000, 1000, 0.001)
WAN = rtx4090(100, 500, 0.015)
REGIMES = (
    Regime("laptops", "Apple M1 laptops (8/4 GiB), Wi-Fi 50/200 Mbit/s, 30 ms", LAPTOPS),
    Regime("default-mix", "the generator's mix: laptops, RTX-4090 desktops (16 GiB), CPU boxes"),
    Regime("4090-wan", "RTX-4090 (8 GiB), 100/500 Mbit/s, 15 ms", WAN),
    Regime("4090-lan", "RTX-4090 (8 GiB), 1 Gbit/s, 1 ms", LAN),
    Regime("4090-poor-link", "RTX-4090 (8 GiB), 10/50 Mbit/s, 80 ms", rtx4090(10, 50, 0.080)),
    Regime("h100-4090-lan", "H100 server, RTX-4090 LAN clients", LAN, server="h100-80gb"),
    Regime("weak-4090-lan", "a synthetic server 4x slower than the A100 with 24 GB, RTX-4090 LAN", LAN, slow_server=4.0),
    Regime("code-default-mix", "Azure code trace (long prompts), default mix", trace="azure-code"),
    Regime("mooncake-4090-lan", "Mooncake lengths, Poisson arrivals, RTX-4090 LAN", LAN, trace="mooncake", poisson=True),
    Regime("tight-4090-lan", "TTFT 1 s, TPOT 0.05 s, RTX-4090 LAN", LAN, slo={"ttft_s": "1", "tpot_s": "0.05"}),
    Regime("loose-default-mix", "TTFT 10 s, TPOT 0.2 s, default mix", slo={"ttft_s": "10", "tpot_s": "0.2"}),
    Regime("chunked-4090-lan", "chunked prefill (512 tokens), RTX-4090 LAN", LAN, chunk=512),
    Regime("trt-default-mix", "TensorRT-LLM engine, default mix", engine="tensorrt-llm"),
)
POLICIES = ("all-server", "greedy", "batch-greedy", "batch-online", "plan")
WEAK_MEMORY = 24e9
#: The frontier tries every cut whose server block count is a multiple of this (and all-server,
#: all-client); twice this with several client classes.
FRONTIER_STEP = 2


def slowed(profile: dict[str, Any], factor: float) -> dict[str, Any]:
    """A server profile with every time ``factor`` times longer and :data:`WEAK_MEMORY` of memory."""
    out = json.loads(json.dumps(profile))
    scale = lambda points: [[x, y * factor] for x, y in points]  # noqa: E731
    for costs in out["kinds"].values():
        costs["prefill"], costs["decode"] = scale(costs["prefill"]), scale(costs["decode"])
    batched = out["batched"]
    batched["lin"] = {kind: scale(points) for kind, points in batched["lin"].items()}
    att = batched["attention"]
    att["flops_per_s"], att["bytes_per_s"], att["floor_s"] = att["flops_per_s"] / factor, att["bytes_per_s"] / factor, att["floor_s"] * factor
    for engine in batched["engines"].values():
        engine["overhead_s"] *= factor
        engine["overhead_per_seq_s"] = engine.get("overhead_per_seq_s", 0.0) * factor
    batched["memory_bytes"] = WEAK_MEMORY
    note = f" Synthetic for the regime map: every time x{factor:g}, memory {WEAK_MEMORY:g} bytes."
    out["provenance"] += note
    batched["provenance"] += note
    out["source"] = "derived"
    return out


@dataclass(frozen=True)
class Setting:
    """A regime's workload and simulated server."""

    inst: Instance
    times: NDArray[np.float64]
    cfg: SimConfig


def setting(regime: Regime, requests: int, seed: int = 0) -> Setting:
    data = generate_instance(clients=regime.clients, server=regime.server, requests=20, seed=seed)
    if regime.slow_server != 1.0:
        data["devices"][regime.server] = slowed(data["devices"][regime.server], regime.slow_server)
    base = parse_instance(data)
    rate = 1.0 if regime.poisson else None
    inst, times = trace_workload(base, regime.trace, n=requests, rate=rate, poisson=regime.poisson, seed=seed,
                                 slo=regime.slo or None)
    costs = server_costs(inst, regime.engine)
    cfg = SimConfig(costs, regime.engine, regime.chunk, server_kv_capacity(inst, costs, regime.engine), False)
    return Setting(inst, times, cfg)


def _mix_placement(s: Setting, name: str, share: NDArray[np.float64]) -> Placement:
    groups = classes(s.inst, bands=1)
    n, b = s.inst.n_requests, s.inst.n_blocks
    return Placement(name, np.ones((n, b), bool), np.ones(n, bool), 0.0, np.zeros(n),
                     online=partial(FixedMix, s.inst, candidates(b), share, class_of(groups, n)))


def memory_fits(s: Setting) -> NDArray[np.bool_]:
    """Per client class and cut: every request of the class keeps its client memory."""
    groups = classes(s.inst, bands=1)
    cuts = candidates(s.inst.n_blocks)
    a = s.inst.arrays
    fits = np.zeros((len(groups.names), len(cuts)), bool)
    for c, idx in enumerate(groups.members):
        need = np.where(cuts[None, :, :], 0.0, a.client_mem[idx][:, None, :]).sum(axis=2)
        fits[c] = (need <= a.client_mem_limit[idx][:, None] * (1 + 1e-9)).all(axis=0)
    return fits


def frontier(s: Setting, base: float, log: list[str]) -> dict[str, Any]:
    """The best fixed policy found (module docstring), starting from all-server's ``base``."""
    groups = classes(s.inst, bands=1)
    fits = memory_fits(s)
    n_cuts = fits.shape[1]
    choice = np.zeros(len(groups.names), dtype=np.int64)  # every client all-server (cut 0)
    best, sims = base, 0
    tried: dict[tuple[int, ...], float] = {}

    def share_of(choice_: NDArray[np.int64]) -> NDArray[np.float64]:
        share = np.zeros((len(groups.names), n_cuts))
        share[np.arange(len(groups.names)), choice_] = 1.0
        return share

    def evaluate(share: NDArray[np.float64]) -> float:
        nonlocal sims
        placement = _mix_placement(s, "fixed", share)
        sims += 1
        if attainment(s.inst, placement, s.cfg, s.times, best * 1.02) < ATTAINMENT_TARGET:
            return 0.0  # cannot beat the best by 2%
        row = capacity(s.inst, placement, s.cfg, s.times, start=best * 1.02)
        sims += len(row["tried"])
        return row["capacity_rps"] or 0.0

    step = FRONTIER_STEP if len(groups.names) == 1 else 2 * FRONTIER_STEP
    for _ in range(2):
        improved = False
        for c in range(len(groups.names)):
            for k in np.flatnonzero(fits[c] & coarse(candidates(s.inst.n_blocks), step)):
                if k == choice[c]:
                    continue
                trial = choice.copy()
                trial[c] = k
                if tuple(trial) in tried:
                    continue
                value = tried[tuple(trial)] = evaluate(share_of(trial))
                if value > best:
                    best, choice, improved = value, trial, True
        if not improved or len(groups.names) == 1:
            break
    share = share_of(choice)
    for c in range(len(groups.names)):  # mixes of each client's two best cuts
        ranked = sorted(((v, key[c]) for key, v in tried.items() if all(key[j] == choice[j] for j in range(len(choice)) if j != c)),
                        reverse=True)
        others = [k for _, k in ranked if k != choice[c]]
        if not others:
            continue
        for w in (0.25, 0.5, 0.75):
            trial_share = share.copy()
            trial_share[c] = 0.0
            trial_share[c, choice[c]], trial_share[c, others[0]] = 1.0 - w, w
            value = evaluate(trial_share)
            if value > best:
                best, share = value, trial_share
    cuts = candidates(s.inst.n_blocks)
    described = {name: {_cut_word(cuts[k]): round(float(share[c, k]), 2) for k in np.flatnonzero(share[c] > 0)}
                 for c, name in enumerate(groups.names)}
    log.append(f"frontier: {sims} simulations, {'exhaustive' if len(groups.names) == 1 else 'coordinate'} search")
    return {"capacity_rps": best, "mix": described, "simulations": sims,
            "search": "exhaustive over cuts" if len(groups.names) == 1 else "coordinate search + mixes"}


def _cut_word(x: NDArray[np.bool_]) -> str:
    n = int(x.sum())
    if n == len(x):
        return "server"
    if n == 0:
        return "client"
    return f"p{n}" if x[0] else f"s{n}"


def where_time_goes(s: Setting, rate: float) -> dict[str, float]:
    """All-server near ``rate``: share of busy time in prompt iterations, KV peak / capacity, preemptions."""
    inst, cfg = s.inst, s.cfg
    arrivals = retime(s.times, rate, False, np.random.default_rng(0))
    sim = simulate(inst, np.ones((inst.n_requests, inst.n_blocks), bool), cfg, arrivals=arrivals, record=True)
    prompt = sum(end - start for start, end, items in sim.timeline if any(n > 1 for _, _, n in items))
    return {"prefill_share": prompt / sim.busy_s if sim.busy_s else 0.0, "kv_peak_share": sim.peak_kv_bytes / cfg.kv_capacity_bytes,
            "preemptions": sim.preemptions, "busy_share": sim.busy_s / sim.makespan_s if sim.makespan_s else 0.0}


def run_regime(regime: Regime, requests: int, policies: tuple[str, ...]) -> dict[str, Any]:
    started = time.perf_counter()
    s = setting(regime, requests)
    log: list[str] = []
    rows: dict[str, Any] = {}
    for policy in policies:
        placement = place(s.inst, policy, engine=regime.engine, kv_capacity_bytes=s.cfg.kv_capacity_bytes)
        rows[policy] = capacity(s.inst, placement, s.cfg, s.times)
    base = rows["all-server"]["capacity_rps"] or 0.0
    plan, all_server_estimate = planned(s.inst, s.cfg.costs, s.cfg.kv_capacity_bytes, regime.engine)
    front = frontier(s, base, log) if base > 0 else {"capacity_rps": None}
    time_use = where_time_goes(s, base) if base > 0 else {}
    return {"regime": regime.name, "what": regime.what, "requests": requests, "engine": regime.engine, "chunk": regime.chunk,
            "trace": regime.trace, "poisson": regime.poisson, "slo": regime.slo,
            "capacity": {p: r["capacity_rps"] for p, r in rows.items()},
            "finding": {p: r["finding"] for p, r in rows.items()},
            "frontier": front, "fluid_estimate": {"plan": plan.rate, "all-server": all_server_estimate},
            "server_time": time_use, "wall_s": time.perf_counter() - started, "log": log}


def table(results: list[dict[str, Any]], policies: tuple[str, ...]) -> str:
    head = ["regime", "all-server req/s", *[f"{p} x" for p in policies[1:]], "frontier x", "plan / frontier",
            "fluid est. x (plan)", "prefill share", "KV peak", "frontier mix"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        base = r["capacity"]["all-server"] or float("nan")
        front = r["frontier"]["capacity_rps"] or float("nan")
        ratio = lambda v: "-" if v is None else f"{v / base:.2f}"  # noqa: E731
        plan = r["capacity"].get("plan")
        st = r["server_time"]
        mix = "; ".join(f"{c}: " + "+".join(f"{w}" if share == 1 else f"{share:g} {w}" for w, share in m.items())
                        for c, m in r["frontier"].get("mix", {}).items())
        lines.append("| " + " | ".join([
            r["regime"], f"{base:.3f}", *[ratio(r["capacity"][p]) for p in policies[1:]], ratio(front),
            "-" if plan is None else f"{plan / front:.2f}",
            f"{r['fluid_estimate']['plan'] / base:.2f}" if base == base else "-",
            f"{st.get('prefill_share', float('nan')):.0%}", f"{st.get('kv_peak_share', float('nan')):.0%}", mix]) + " |")
    return "\n".join(lines) + "\n"


def heatmap(results: list[dict[str, Any]], policies: tuple[str, ...], path: Path) -> None:
    from matplotlib.figure import Figure

    columns = [*policies, "frontier"]
    values = np.array([[(r["capacity"].get(p) if p != "frontier" else r["frontier"]["capacity_rps"]) or 0.0 for p in columns]
                       for r in results]) / np.array([[r["capacity"]["all-server"] or np.nan] for r in results])
    fig = Figure(figsize=(1.1 * len(columns) + 2.5, 0.45 * len(results) + 1.5))
    ax = fig.subplots()
    im = ax.imshow(values, cmap="RdYlGn", vmin=0.0, vmax=max(2.0, float(np.nanmax(values))))
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(range(len(results)), [r["regime"] for r in results])
    for i, j in np.ndindex(values.shape):
        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="capacity x all-server")
    fig.tight_layout()
    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=110)


def run_all(job: Callable[[Regime], dict[str, Any]], regimes: list[Regime], jobs: int,
            dask_scheduler: str | None = None) -> list[dict[str, Any]]:
    """``job`` over ``regimes`` in order: on a Dask scheduler when given, else in ``jobs`` processes."""
    if dask_scheduler is not None:
        with dask_client(dask_scheduler) as client:
            return list(client.gather(client.map(job, regimes, pure=False)))
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(job, regimes))
    return [job(r) for r in regimes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--regime", action="append", help="only these regimes (repeat); default all")
    parser.add_argument("--policy", action="append", help="policies besides all-server (repeat); default " + ", ".join(POLICIES[1:]))
    parser.add_argument("-j", "--jobs", type=int, default=1, help="regimes run in parallel processes")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS", help="run the regimes as tasks on this Dask scheduler instead")
    args = parser.parse_args(argv)
    chosen = [r for r in REGIMES if not args.regime or r.name in args.regime]
    unknown = set(args.regime or []) - {r.name for r in REGIMES}
    if unknown:
        parser.error(f"unknown regime(s) {', '.join(sorted(unknown))}; known: {', '.join(r.name for r in REGIMES)}")
    policies = ("all-server", *(args.policy or POLICIES[1:]))
    if args.requests < 1 or args.jobs < 1:
        parser.error("--requests and --jobs must be at least 1")
    try:
        for policy in policies:
            get_policy(policy)
        check_scheduler(args.dask_scheduler)  # before anything is written
        check_output_dir(args.out)
        job = partial(run_regime, requests=args.requests, policies=policies)
        started = time.perf_counter()
        results = run_all(job, chosen, args.jobs, args.dask_scheduler)
    except SplitLLMError as exc:
        parser.exit(2, f"error: {exc}\n")
    for r in results:
        print(f"{r['regime']}: {r['wall_s']:.0f} s", file=sys.stderr)
    write_json(args.out / "regimes.json", {"requests": args.requests, "wall_s": time.perf_counter() - started, "regimes": results})
    with atomic_path(args.out / "regimes.md") as tmp:
        tmp.write_text(table(results, policies))
    heatmap(results, policies, args.out / "regimes.png")
    print(table(results, policies))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
