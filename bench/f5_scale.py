"""F5 throughput placement at growing batch sizes: every F5 solver, one table.

Llama-2-7B (34 blocks) on the bundled A100 profile's batched tables (vLLM overhead),
the generator's default client mix and Azure conversation lengths, every request with
the same tight TPOT SLO. ``batch`` (the exact method) runs at every size, the MILP and
CP-SAT models up to :data:`EXACT_UP_TO` requests. Each solver runs in this process with a time limit; the table
gives status, admitted weight, its bound, ``T`` and ``T``'s bound, and wall time.

Run: ``python -m splitllm.bench.f5_scale --out bench/results/f5_scale.md``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from splitllm.instance import parse_instance
from splitllm.instances.generate import generate_instance
from splitllm.registry import solve

SIZES = (8, 16, 32, 64, 128, 256)
EXACT_UP_TO = 64


def instance(n: int, tpot_s: float, seed: int):
    data = generate_instance(requests=n, slo={"tpot_s": tpot_s}, objective="max_admitted", seed=seed, name=f"f5-{n}")
    for q in data["requests"]:
        q["output_tokens"] = max(2, q["output_tokens"])
    return parse_instance(data)


def row(n: int, name: str, inst, time_limit: float, options: dict) -> str:
    start = time.perf_counter()
    r = solve(inst, name, time_limit=time_limit, **options)
    wall = time.perf_counter() - start
    t, tb = r.info.get("iteration_time_s"), r.info.get("iteration_time_bound_s")
    label = name + "".join(f" {k}={v}" for k, v in options.items())
    fmt = lambda v, s=1.0: "-" if v is None else f"{v * s:.4g}"  # noqa: E731
    return f"| {n} | {label} | {r.status.value} | {fmt(r.objective)} | {fmt(r.bound)} | {fmt(r.gap)} | {fmt(t, 1e3)} | {fmt(tb, 1e3)} | {wall:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tpot", type=float, default=0.06)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=str, default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    lines = [
        "# F5 throughput placement: scale",
        "",
        f"`python -m splitllm.bench.f5_scale --out {args.out} --tpot {args.tpot} --time-limit {args.time_limit:g} --seed {args.seed}`",
        "",
        f"Llama-2-7B (34 blocks), A100 80GB batched tables (vLLM overhead), default client mix, Azure conv lengths, TPOT SLO {args.tpot * 1e3:g} ms for every request, time limit {args.time_limit:g} s per solve, on a shared 2-core machine.",
        "",
        "| requests | solver | status | admitted weight | bound | gap | T (ms) | T bound (ms) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in (int(s) for s in args.sizes.split(",")):
        inst = instance(n, args.tpot, args.seed)
        runs = [("batch-greedy", {}), ("batch", {})]
        if n <= EXACT_UP_TO:
            runs += [("batch-milp", {"backend": "highs"}), ("batch-milp", {"backend": "cbc"}), ("batch-cpsat", {})]
        for name, options in runs:
            lines.append(row(n, name, inst, args.time_limit, options))
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
