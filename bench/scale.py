"""Scale benchmark for coupled instances: not a test.

Instances: ``generate_instance`` (Llama-2-7B, 34 blocks, A100 server, the default client
mix and trace) draws ``--distinct`` requests; they are repeated to 10 .. 100,000 requests
(identical requests are common in practice, and ``decomp`` aggregates them). Capacities
bind: under ``max_admitted`` work and KV capacities are ``--share`` of the least-work
placements' totals; under ``min_server_work`` (where every request must fit) the KV
capacity is exactly the least possible total KV and the work capacity the least total work.

Run: ``python -m splitllm.bench.scale --out bench/README-scale.md`` (a few minutes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from typing import Any

from splitllm.solvers.columns import dp_columns
from splitllm.instance import Instance, parse_instance
from splitllm.instances.generate import generate_instance
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
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
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
