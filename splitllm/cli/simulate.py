"""``splitllm simulate``: a batched GPU server and its clients over requests arriving in time."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from splitllm import dask_client
from splitllm.batched import server_costs
from splitllm.batched.engines import DEFAULT_ENGINE, ENGINES, engine_help
from splitllm.cli.errors import input_errors_exit
from splitllm.outputs import check_output_dir
from splitllm.errors import InputError
from splitllm.instance import Instance, load_instance
from splitllm.instances.generate import check_seed
from splitllm.jsonio import atomic_path, write_json
from splitllm.log import progress_enabled
from splitllm.serving.capacity import capacity
from splitllm.serving.policies import Placement, place, run_policy
from splitllm.serving.registry import KINDS, get_policy
from splitllm.serving.registry import policies as registered_policies
from splitllm.serving.report import ATTAINMENT_TARGET, plot_cdfs, write_all
from splitllm.serving.simulator import SimConfig, SimResult, server_kv_capacity
from splitllm.serving.workload import check_rate, check_span, instance_arrivals, retime, trace_slo, trace_workload

TRACES = ("azure-conv", "azure-code", "mooncake")


def _slo(pairs: tuple[str, ...]) -> dict[str, str | float] | None:
    if not pairs:
        return None
    out: dict[str, str | float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError("--slo", f"expected KEY=VALUE (ttft_s=2, tpot_s=3x), got {pair!r}")
        out[key] = value
    return out


def _run_one(inst: Instance, placement: Placement, cfg: SimConfig, arrivals: np.ndarray, charge: bool) -> tuple[SimResult, Placement]:
    """One simulation; an online policy's placement comes back with what it placed and its wall time."""
    from tqdm import tqdm

    show = progress_enabled()
    with tqdm(total=inst.n_requests, desc=f"simulate {placement.policy}", unit="req", disable=not show, file=sys.stderr, leave=False) as bar:
        return run_policy(inst, placement, cfg, arrivals, charge=charge, progress=bar.update)


def _folder(policy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", policy)


@click.command("simulate")
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--policy", "policies", multiple=True, default=("all-server",), show_default=True,
              help="how each request is placed: all-server, batch-online, plan, cut:CLIENT=CUT,..., solution:FILE, a throughput solver's windows "
                   "(batch-greedy[:N[:S]], ...) or a per-request solver (dp, greedy, ...); `splitllm policies` lists them; "
                   "repeat to compare")
@click.option("--engine", type=click.Choice(list(ENGINES)), default=DEFAULT_ENGINE, show_default=True, help=engine_help())
@click.option("--trace", type=click.Choice(TRACES), default=None, help="requests from a real trace (its timestamps and lengths)")
@click.option("--requests", "n_requests", type=int, default=None, help="the first N requests of the trace")
@click.option("--rate", type=float, default=None, help="rescale arrivals to this mean rate (requests/s)")
@click.option("--poisson", is_flag=True, help="Poisson arrivals at --rate instead of the trace's own")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the client draw (and Poisson gaps)")
@click.option("--slo", "slo", multiple=True, help="SLO of trace requests, KEY=VALUE: seconds, a factor of the all-server figure like 3x, or none; each replaces its default (ttft_s=2, tpot_s=0.1), the others stay")
@click.option("--chunk", type=int, default=None, help="chunked prefill: at most this many tokens per iteration")
@click.option("--gpu-memory", type=float, default=None, help="GPU memory in bytes (default: the server profile's)")
@click.option("--warm", is_flag=True, help="start every request at its first decode step (prompt done, KV in place)")
@click.option("--shared-clients", is_flag=True,
              help="the requests of one client share its device and link (one queue); default: each request has its own")
@click.option("--placement-latency", is_flag=True, help="charge the policy's wall time in simulated time")
@click.option("--capacity", "find_capacity", is_flag=True, help=f"find each policy's highest rate with attainment >= {ATTAINMENT_TARGET:.0%}")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="parallel simulations in --capacity")
@click.option("--dask-scheduler", default=None, help="with --capacity: address of an existing Dask scheduler to run the simulations on")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="output folder")
@input_errors_exit
def simulate_command(instance: Path, policies: tuple[str, ...], engine: str, trace: str | None, n_requests: int | None,
                     rate: float | None, poisson: bool, seed: int, slo: tuple[str, ...], chunk: int | None,
                     gpu_memory: float | None, warm: bool, shared_clients: bool, placement_latency: bool, find_capacity: bool, jobs: int, dask_scheduler: str | None, out: Path) -> None:
    """Simulate one GPU server and its clients over requests arriving in time.

    Writes requests.csv, summary.json and latency_cdf.png (one folder per policy when
    several are given), or with --capacity capacity.json, capacity.md and capacity.png.
    """
    if jobs < 1:
        raise InputError("--jobs", f"must be >= 1, got {jobs}")
    for policy in policies:  # an unknown policy is refused before anything is loaded
        get_policy(policy)
    check_seed(seed)
    if dask_scheduler is not None and not find_capacity:
        raise InputError("--dask-scheduler", "applies only with --capacity")
    check_output_dir(out)
    dask_client.check_scheduler(dask_scheduler)
    check_rate(rate)
    if gpu_memory is not None and not (np.isfinite(gpu_memory) and gpu_memory > 0):
        raise InputError("--gpu-memory", f"must be a finite number of bytes > 0, got {gpu_memory}")
    inst = load_instance(instance)
    costs = server_costs(inst, engine)
    cfg = SimConfig(costs, engine, chunk, server_kv_capacity(inst, costs, engine, gpu_memory), warm, shared_clients)
    if trace is not None:
        inst, arrivals = trace_workload(inst, trace, n=n_requests, rate=rate, poisson=poisson, seed=seed, slo=_slo(slo))
    else:
        if n_requests is not None or slo:
            raise InputError("--requests" if n_requests is not None else "--slo", "applies only with --trace")
        arrivals = retime(instance_arrivals(inst), rate, poisson, np.random.default_rng(seed)) if rate or poisson else instance_arrivals(inst)
    check_span(arrivals, "--poisson" if poisson else "--rate")
    if find_capacity and not np.ptp(arrivals) > 0:
        raise InputError("--capacity", "a rate search needs requests arriving at different times: give them arrival_s, or use --trace, or --poisson --rate")
    folders = _folders(policies, find_capacity)
    _refuse_stale(out, set(CAPACITY_FILES) if find_capacity else set(RUN_FILES) if folders == [""] else {*folders, OVERLAY})
    placements = [place(inst, p, engine=engine, kv_capacity_bytes=cfg.kv_capacity_bytes) for p in policies]
    extra: dict[str, Any] = {"engine": engine, "overhead_s": costs.overhead_s, "kv_capacity_bytes": cfg.kv_capacity_bytes,
                             "chunk": chunk, "warm": warm, "shared_clients": shared_clients, "placement_latency": placement_latency, "trace": trace, "seed": seed,
                             "slo": trace_slo(_slo(slo)) if trace is not None else "each request's own"}
    if find_capacity:
        _capacity(out, inst, placements, cfg, arrivals, placement_latency, jobs, dask_scheduler, extra)
        return
    # Every simulation first, then the files: an interrupted run writes nothing.
    runs = [_run_one(inst, placement, cfg, arrivals, placement_latency) for placement in placements]
    curves: list[tuple[str, SimResult]] = []
    for (sim, placement), folder in zip(runs, folders):
        data = write_all(out / folder, inst, sim, placement, arrivals, extra)
        curves.append((f"{placement.policy} ({data['slo_attainment']:.1%})", sim))
        click.echo(_said(data, out / folder))
    if len(curves) > 1:  # every policy's CDFs on one figure, beside each policy's own
        plot_cdfs(out / OVERLAY, inst, curves, f"{inst.name}: every policy (SLO attainment)")


#: What a run writes in its folder (per policy), and with --capacity.
RUN_FILES = ("requests.csv", "summary.json", "latency_cdf.png")
CAPACITY_FILES = ("capacity.json", "capacity.md", "capacity.png")
#: Several policies: every policy's latency CDFs on one figure in --out itself.
OVERLAY = "latency_cdf.png"


def _folders(policies: tuple[str, ...], find_capacity: bool) -> list[str]:
    """The folder of each policy's files under --out ("" = --out itself); refuses two
    policies that would share one."""
    if find_capacity or len(policies) == 1:
        return ["" for _ in policies]
    seen: dict[str, str] = {}
    for policy in policies:
        folder = _folder(policy)
        if folder in seen:
            raise InputError("--policy", f"{seen[folder]!r} and {policy!r} would both write to {folder}/; give each policy once")
        seen[folder] = policy
    return list(seen)


def _refuse_stale(out: Path, ours: set[str]) -> None:
    """Refuse an --out folder holding another run's outputs that this run (writing
    ``ours``) would not replace: mixed with this run's, they would be read as its own."""
    if not out.is_dir():
        return
    theirs = {p.name for p in out.iterdir() if p.name in RUN_FILES + CAPACITY_FILES or (p / "summary.json").is_file()}
    stale = sorted(theirs - ours)
    if stale:
        raise InputError("--out", f"{out} holds outputs of another run ({', '.join(stale)}); remove them or choose another folder")


def _said(data: dict[str, Any], folder: Path) -> str:
    """The one-line summary of a simulation, saying which requests were not served and why."""
    lost = []
    if data["dropped_kv"]:
        lost.append(f"{data['dropped_kv']} dropped: their KV never fits the server")
    if data["requests"] > data["sent"]:
        lost.append(f"{data['requests'] - data['sent']} not sent by the policy")
    served = f"{data['served']} of {data['requests']} served" + (f" ({'; '.join(lost)})" if lost else "")
    return (f"{data['policy']}: {served}, SLO attainment {data['slo_attainment']:.1%}, goodput {data['goodput_rps']:.3g} req/s, "
            f"P99 TTFT {_num(data['ttft_s']['p99'], '.4g', '-')} s, P99 TPOT {_num(data['tpot_s']['p99'], '.4g', '-')} s, "
            f"{data['iterations']} iterations ({data['mean_tokens_per_iteration']:.1f} tokens each), "
            f"{data['preemptions']} preemptions, policy {data['policy_wall_s']:.3g} s -> {folder}")


def _capacity(out: Path, inst: Instance, placements: list[Placement], cfg: SimConfig, arrivals: np.ndarray,
              charge: bool, jobs: int, dask_scheduler: str | None, extra: dict[str, Any]) -> None:
    rows = [_capacity_of(inst, p, cfg, arrivals, charge, jobs, dask_scheduler) for p in placements]
    base = rows[0]["capacity_rps"]
    for row, p in zip(rows, placements):
        row["ratio_to_first"] = row["capacity_rps"] / base if base and row["capacity_rps"] is not None else None
        if p.windows:
            row.update(windows=p.windows, fallback_all_server=p.fallback, window_statuses=p.statuses)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "capacity.json", {"requests": inst.n_requests, **extra, "policies": rows})
    lines = ["| policy | capacity (req/s) | x " + placements[0].policy + " | policy wall (s) |", "|---|---|---|---|"]  # online: median per simulation
    lines += [f"| {r['policy']} | {_capacity_cell(r)} | {_num(r['ratio_to_first'], '.2f', '-')} | {r['policy_wall_s']:.3g} |"
              for r in rows]
    lines += [f"\n{r['policy']}: {r['note']}" for r in rows if "note" in r]
    curve = ["", "Attainment at each rate tried:", "", "| policy | rate (req/s) | SLO attainment |", "|---|---|---|"]
    curve += [f"| {r['policy']} | {rate:.4g} | {value:.1%} |" for r in rows for rate, value in r["tried"]]
    with atomic_path(out / "capacity.md") as tmp:
        tmp.write_text("\n".join(lines + curve) + "\n")
    _plot_capacity(out / "capacity.png", rows)
    click.echo("\n".join(lines))


def _capacity_of(inst: Instance, placement: Placement, cfg: SimConfig, arrivals: np.ndarray, charge: bool, jobs: int,
                 dask_scheduler: str | None) -> dict[str, Any]:
    """One policy's capacity search, each simulation shown on stderr as it ends (hidden by -q):
    how many so far, and the last rate tried with its attainment."""
    from tqdm import tqdm

    with tqdm(desc=f"capacity {placement.policy}", unit="sim", disable=not progress_enabled(), file=sys.stderr, leave=False) as bar:
        def shown(rate: float, attainment: float) -> None:
            bar.set_postfix_str(f"{rate:.3g} req/s: attainment {attainment:.1%}", refresh=False)
            bar.update()

        return capacity(inst, placement, cfg, arrivals, charge=charge, jobs=jobs, dask_scheduler=dask_scheduler, progress=shown)


def _capacity_cell(row: dict[str, Any]) -> str:
    if row["finding"] == "unreached":
        return f"not reached (best {row['best_attainment']:.1%})"
    return _num(row["capacity_rps"], ".3f", "unbounded")


def _num(value: float | None, fmt: str, missing: str) -> str:
    return missing if value is None else format(value, fmt)


def _plot_capacity(path: Path, rows: list[dict[str, Any]]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for row in rows:
        rates, values = zip(*row["tried"]) if row["tried"] else ((), ())
        ax.plot(rates, values, "o-", ms=3, label=f"{row['policy']}: {_capacity_cell(row)}" + (" req/s" if row["capacity_rps"] else ""))
    ax.axhline(ATTAINMENT_TARGET, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel("SLO attainment")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=110)


@click.command("policies")
def list_policies() -> None:
    """List the placement policies of `simulate --policy`, and the arguments (NAME:ARG:ARG) each takes."""
    for spec in sorted(registered_policies().values(), key=lambda s: (KINDS.index(s.kind), s.name)):
        click.echo(f"{spec.syntax:<22} {spec.kind:<11} {spec.help}")
        for option in spec.options:
            click.echo(f"{'':<22} {option.describe()}")


COMMANDS = [simulate_command, list_policies]
