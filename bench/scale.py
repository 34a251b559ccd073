"""Scale benchmark for coupled instances: not a test.

Instances: ``generate_instance`` (Llama-2-7B, 34 blocks, A100 server, the default client
mix and trace) draws ``--distinct`` requests; they are repeated to 10 .. 100,000 requests
(identical requests are common in practice, and ``decomp`` aggregates them). Capacities
bind: under ``max_admitted`` work and KV capacities are ``--share`` of the least-work
placements' totals; under ``min_server_work`` (where every request must fit) the KV
capacity is exactly the least possible total KV and the work capacity the least total work.

Run: ``python -m splitllm.bench.scale --out bench/README-scale.md`` (a few minutes).

``--all-distinct`` times instead ``decomp`` on instances where no two requests are alike
(:func:`all_distinct_instance`): ``splitllm generate --seed SEED --requests N
--work-capacity 60% --kv-capacity 60% --objective max_admitted`` with every request's
prompt and output lengths redrawn, reporting the time to load the file apart from the
time to solve it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.solvers.columns import dp_columns
from splitllm.instance import Instance, load_instance, parse_instance
from splitllm.instances.models import get_shape
from splitllm.instances.generate import DEFAULT_SLO, _apply_capacity, apply_slo, draw_lengths, generate_instance, write_instance
from splitllm.registry import solve

SIZES = (10, 100, 1_000, 10_000, 100_000)
#: (solver, options, largest size it is run on): the compact models are not built past it.
SOLVERS = (
    ("decomp", {}, 100_000),
    ("colmilp", {}, 1_000),
    ("milp", {"backend": "highs"}, 100),
    ("milp", {"backend": "cbc"}, 100),
    ("cpsat", {}, 100),
    ("cpsat", {"formulation": "column"}, 100_000),
)


def solver_label(name: str, options: dict[str, Any]) -> str:
    """``milp (highs)``, ``cpsat (column)``: the solver and its one distinguishing option."""
    return name + "".join(f" ({options[k]})" for k in ("backend", "formulation") if k in options)


def scale_instance(n: int, objective: str, distinct: int, share: float, seed: int) -> Instance:
    base = generate_instance(requests=distinct, seed=seed, objective=objective, kv_capacity=1.0)
    template = base["requests"]
    base["requests"] = [dict(template[i % distinct], id=f"q{i}") for i in range(n)]
    inst = parse_instance(base)
    columns = dp_columns(inst)
    assert columns is not None
    counts = columns.counts
    work = sum(c.least_work * k for c, k in zip(columns.per_type, counts) if c.work.size)
    kv_hi = sum(c.kv[0] * k for c, k in zip(columns.per_type, counts) if c.work.size)
    kv_lo = sum(c.least_kv * k for c, k in zip(columns.per_type, counts) if c.work.size)
    if objective == "max_admitted":
        base["server"].update(work_capacity_s=share * work, kv_capacity_bytes=share * kv_hi)
    else:
        base["server"].update(work_capacity_s=work * (1 + 1e-9), kv_capacity_bytes=kv_lo * (1 + 1e-9))
    return parse_instance(base)


def all_distinct_instance(n: int, seed: int, share: float = 0.6) -> dict[str, Any]:
    """``splitllm generate --seed SEED --requests N --work-capacity 60% --kv-capacity 60%
    --objective max_admitted`` (``share`` = 0.6), then every request's prompt and output
    lengths redrawn independently (prompt from one draw of the trace, output from
    another) until no two requests have the same client and lengths, so that no two are
    identical; SLOs (the default policy) and capacities are then recomputed for the new
    lengths. Reproducible from ``seed``."""
    data = generate_instance(requests=n, seed=seed, objective="max_admitted")
    requests = data["requests"]
    rng = np.random.default_rng([seed, n])
    model = data["model"]["name"]
    clients = sorted({r["client"] for r in requests})
    client = np.array([clients.index(r["client"]) for r in requests])
    prompt, output = np.zeros(n, np.int64), np.zeros(n, np.int64)
    redraw = np.arange(n)
    while redraw.size:
        prompt[redraw] = draw_lengths(rng, "azure-conv", redraw.size, model)[:, 0]
        output[redraw] = draw_lengths(rng, "azure-conv", redraw.size, model)[:, 1]
        prompt = np.minimum(prompt, get_shape(model).max_context - output)
        key = (client * 10**6 + prompt) * 10**6 + output
        _, first = np.unique(key, return_index=True)
        repeated = np.ones(n, bool)
        repeated[first] = False
        redraw = np.flatnonzero(repeated)
    for r, p, o in zip(requests, prompt, output):
        r.update(prompt_tokens=int(p), output_tokens=int(o))
        r.pop("slo", None)
    data["name"] = f"{data['name']}-all-distinct"
    apply_slo(data, dict(DEFAULT_SLO))
    _apply_capacity(data, f"{share:%}", f"{share:%}")
    return data


#: Runs shorter than this are repeated (``--repeats``) and their median reported.
REPEAT_BELOW_S = 10.0


def timed_solve(inst: Instance, name: str, time_limit: float, options: dict[str, Any], repeats: int) -> tuple[Any, float]:
    """The result of one solve and the median wall time over up to ``repeats`` runs (a run
    over :data:`REPEAT_BELOW_S` is not repeated: these machines are shared and noisy)."""
    times: list[float] = []
    while True:
        start = time.perf_counter()
        result = solve(inst, name, time_limit=time_limit, **options)
        times.append(time.perf_counter() - start)
        if len(times) >= repeats or times[-1] > REPEAT_BELOW_S:
            return result, statistics.median(times)


def run(
    sizes: tuple[int, ...],
    time_limit: float,
    distinct: int,
    share: float,
    seed: int,
    only: tuple[str, ...] = (),
    objectives: tuple[str, ...] = ("min_server_work", "max_admitted"),
    repeats: int = 1,
) -> list[dict[str, Any]]:
    rows = []
    for objective in objectives:
        for n in sizes:
            inst = scale_instance(n, objective, distinct, share, seed)
            for name, options, largest in SOLVERS:
                label = solver_label(name, options)
                if n > largest or (only and label not in only):
                    continue
                _progress(f"{objective}, {n} requests, {label}: solving (limit {time_limit:g} s)")
                result, seconds = timed_solve(inst, name, time_limit, options, repeats)
                rows.append(
                    {
                        "objective": objective,
                        "requests": n,
                        "solver": label,
                        "status": result.status.value,
                        "time_s": seconds,
                        "objective_value": result.objective,
                        "gap": result.gap,
                    }
                )
                _progress(f"{objective}, {n} requests, {label}: {result.status.value} in {seconds:.3f} s")
    return rows


def run_all_distinct(sizes: tuple[int, ...], time_limit: float, share: float, seed: int, repeats: int = 1) -> list[dict[str, Any]]:
    """``decomp`` on :func:`all_distinct_instance` per size: load and solve timed apart
    (medians over ``repeats`` runs; the instance file is written once, outside the timing).
    ``solve_cpu_s`` is this process's CPU time in the solve (a child process, such as a
    HiGHS master, is not counted): on a shared machine it varies less than wall time."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="splitllm-scale-") as folder:
        for n in sizes:
            path = Path(folder) / f"all-distinct-{n}.json"
            write_instance(all_distinct_instance(n, seed, share), path)
            loads, solves, cpus = [], [], []
            for _ in range(repeats):
                start = time.perf_counter()
                inst = load_instance(path)
                loads.append(time.perf_counter() - start)
                _progress(f"all-distinct, {n} requests: loaded in {loads[-1]:.2f} s, solving (limit {time_limit:g} s)")
                start, cpu = time.perf_counter(), time.process_time()
                result = solve(inst, "decomp", time_limit=time_limit)
                solves.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
                _progress(f"all-distinct, {n} requests: {result.status.value} in {solves[-1]:.2f} s")
            load_s, solve_s = statistics.median(loads), statistics.median(solves)
            rows.append(
                {
                    "requests": n,
                    "distinct": result.info.get("distinct_requests"),
                    "columns": result.info.get("columns"),
                    "status": result.status.value,
                    "objective_value": result.objective,
                    "gap": result.gap,
                    "load_s": load_s,
                    "solve_s": solve_s,
                    "solve_cpu_s": statistics.median(cpus),
                }
            )
    return rows


def all_distinct_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| requests | distinct | columns | status | objective | gap | load s | solve s | solve CPU s | solve / load |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        value = "-" if r["objective_value"] is None else f"{r['objective_value']:.9g}"
        g = "-" if r["gap"] is None else f"{r['gap']:.2e}"
        lines.append(
            f"| {r['requests']} | {r['distinct']} | {r['columns']} | {r['status']} | {value} | {g} "
            f"| {r['load_s']:.2f} | {r['solve_s']:.2f} | {r['solve_cpu_s']:.2f} | {r['solve_s'] / r['load_s']:.1f} |"
        )
    return "\n".join(lines)


def _progress(line: str) -> None:
    """Progress on stderr, so that stdout holds only the table."""
    print(f"scale: {line}", file=sys.stderr, flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| objective | requests | solver | status | time s | objective | gap |", "|---|---:|---|---|---:|---:|---:|"]
    for r in rows:
        value = "-" if r["objective_value"] is None else f"{r['objective_value']:.9g}"
        g = "-" if r["gap"] is None else f"{r['gap']:.2e}"
        lines.append(f"| {r['objective']} | {r['requests']} | {r['solver']} | {r['status']} | {r['time_s']:.3f} | {value} | {g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--distinct", type=int, default=40, help="distinct requests drawn, then repeated")
    parser.add_argument("--share", type=float, default=0.6, help="capacity share under max_admitted")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    parser.add_argument("--solvers", default="", help='only these, comma-separated, e.g. "decomp,milp (highs)"')
    parser.add_argument("--objectives", default="min_server_work,max_admitted")
    parser.add_argument("--repeats", type=int, default=1, help=f"runs under {REPEAT_BELOW_S:g} s are repeated this often; the median is shown")
    parser.add_argument("--all-distinct", action="store_true", help="decomp on all-distinct max_admitted instances (load and solve timed apart)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.all_distinct:
        text = all_distinct_table(run_all_distinct(tuple(args.sizes), args.time_limit, args.share, args.seed, args.repeats))
        print(text)
        return
    only = tuple(name.strip() for name in args.solvers.split(",") if name.strip())
    objectives = tuple(args.objectives.split(","))
    rows = run(tuple(args.sizes), args.time_limit, args.distinct, args.share, args.seed, only, objectives, args.repeats)
    text = table(rows)
    print(text)
    if args.out:
        from splitllm.jsonio import write_atomic

        write_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()
