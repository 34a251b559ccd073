"""The serving simulator against measured fixed-batch serving (LLM-Inference-Bench, Llama-2-7B).

Run as ``python -m splitllm.bench.sim_fidelity --out bench/results/fidelity/simulator.md``.
Every measured row of ``bench/results/fidelity/fidelity.csv`` (one A100 40 GB or H100
80 GB, vLLM or TensorRT-LLM, ``B`` requests of ``L`` input and ``L`` output tokens, all
arriving at 0) is run through :func:`splitllm.serving.simulate` with every block on the
server and no network (links at 1e15 B/s, no RTT: the bench measures the engine alone):

* costs: :func:`splitllm.bench.fidelity.bench_costs` (the shipped profile's tables at the
  bench's memory bandwidth, with the engine's fitted overheads and kernel scale);
* engine ``vllm`` (paged KV, preemption) for vLLM rows, ``tensorrt-llm`` (reservation)
  for TensorRT-LLM rows;
* KV capacity as the fidelity comparison sizes it (:func:`~splitllm.bench.fidelity.kv_capacity`,
  the engine's capacity formula): whole blocks of 16 tokens for vLLM, tokens for
  TensorRT-LLM, on the bench's memory (:data:`~splitllm.bench.fidelity.BENCH_MEMORY`).

Latency = the simulated end of the last request; throughput = ``B * 2L / latency``.
The report gives, per (GPU, engine), the rows within 10% and the worst ratio, then every row.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from splitllm.batched import BatchedCosts
from splitllm.bench.fidelity import ENGINE_KEYS, HARDWARE, SOURCE, bench_costs, fixed_batch_instance, kv_capacity
from splitllm.jsonio import write_atomic
from splitllm.serving.simulator import SimConfig, SimResult, simulate

#: The shipped comparison of the fidelity model, whose ``measured`` column this bench reads.
FIDELITY_CSV = Path(__file__).resolve().parent / "results" / "fidelity" / "fidelity.csv"
TOLERANCE = 0.10


@lru_cache(maxsize=None)
def row_costs(gpu: str, framework: str) -> BatchedCosts:
    return bench_costs(gpu, framework)


def simulate_row(gpu: str, framework: str, batch: int, length: int, record: bool = False) -> SimResult:
    """One measured setting through the simulator (see the module docstring)."""
    costs = row_costs(gpu, framework)
    inst = fixed_batch_instance(batch, length)
    cfg = SimConfig(costs, ENGINE_KEYS[framework], kv_capacity_bytes=kv_capacity(costs, gpu, framework, batch, length))
    return simulate(inst, np.ones((batch, inst.n_blocks), bool), cfg, record=record)


def measured_rows(path: Path = FIDELITY_CSV) -> list[dict[str, object]]:
    """One dict per measured row: hardware, framework, batch, length, source_line, latency_s, throughput_tok_s."""
    rows: dict[str, dict[str, object]] = {}
    with path.open(newline="") as handle:
        for rec in csv.DictReader(handle):
            row = rows.setdefault(rec["source_line"], {
                "source_line": int(rec["source_line"]), "hardware": rec["hardware"], "framework": rec["framework"],
                "batch": int(rec["batch_size"]), "length": int(rec["input_tokens"]),
            })  # fmt: skip
            assert rec["input_tokens"] == rec["output_tokens"]
            row[rec["metric"]] = float(rec["measured"])
    return list(rows.values())


def compare(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Each row with the simulated latency and throughput, their ratios to the measured, preemptions, wall s."""
    out = []
    for row in rows:
        gpu = HARDWARE[str(row["hardware"])]
        b, n = int(row["batch"]), int(row["length"])  # type: ignore[call-overload]
        started = time.perf_counter()
        sim = simulate_row(gpu, str(row["framework"]), b, n)
        wall = time.perf_counter() - started
        latency = sim.makespan_s
        throughput = b * 2 * n / latency
        out.append({**row, "gpu": gpu, "sim_latency_s": latency, "sim_throughput_tok_s": throughput,
                    "latency_ratio": latency / float(row["latency_s"]),  # type: ignore[arg-type]
                    "throughput_ratio": throughput / float(row["throughput_tok_s"]),  # type: ignore[arg-type]
                    "iterations": sim.iterations, "preemptions": sim.preemptions, "wall_s": wall})  # fmt: skip
    return out


def report(results: list[dict[str, object]], command: str) -> str:
    def worst(rs: list[dict[str, object]], key: str) -> dict[str, object]:
        return max(rs, key=lambda r: abs(math.log(float(r[key]))))  # type: ignore[arg-type]

    lines = [
        "# Serving simulator vs LLM-Inference-Bench: Llama-2-7B, one GPU, fixed batches",
        "",
        f"Measured: {SOURCE} (the `measured` column of `bench/results/fidelity/fidelity.csv`). Simulated: "
        "`splitllm.serving.simulate`, every block on the server, `B` identical requests of `L` in and `L` out "
        "arriving at 0, no network; costs from the shipped A100 80GB / H100 80GB profiles at the bench's memory "
        "bandwidth (A100 40 GB: 1555/2039) with each engine's fitted overheads; vLLM rows with `--engine vllm` "
        "(paged KV in 16-token blocks, 1% watermark, 4096 prompt tokens and 256 sequences per iteration, "
        "preemption with recompute), TensorRT-LLM rows with `--engine tensorrt-llm` (KV reserved for prompt + "
        "output at admission); KV capacity as the fidelity schedules size it (vLLM: its blocks after weights, "
        "context and profiling activations at 0.9 of the memory; TensorRT-LLM: 0.9 of what the weights, context "
        "and the engine's B x L-token activation buffers leave). Latency = the end of the last request; "
        f"throughput = B x 2L / latency. Ratio = simulated / measured. Written by `{command}`.",
        "",
        "## Summary",
        "",
        "| GPU | engine | rows | latency within 10% | worst latency ratio | throughput within 10% | worst throughput ratio | preempting rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups = sorted({(str(r["hardware"]), str(r["framework"])) for r in results})
    for h, e in groups:
        rs = [r for r in results if (r["hardware"], r["framework"]) == (h, e)]
        cells = []
        for key in ("latency_ratio", "throughput_ratio"):
            ok = sum(abs(float(r[key]) - 1) <= TOLERANCE for r in rs)  # type: ignore[arg-type]
            w = worst(rs, key)
            cells += [str(ok), f"{float(w[key]):.3f} (B={w['batch']}, L={w['length']})"]  # type: ignore[arg-type]
        pre = sum(int(r["preemptions"]) > 0 for r in rs)  # type: ignore[call-overload]
        lines.append(f"| {h} | {e} | {len(rs)} | {' | '.join(cells)} | {pre} |")
    total = sum(abs(float(r[k]) - 1) <= TOLERANCE for r in results for k in ("latency_ratio", "throughput_ratio"))  # type: ignore[arg-type]
    lines += ["", f"{total} of {2 * len(results)} figures within 10%. Simulation wall time: "
              f"{sum(float(r['wall_s']) for r in results):.1f} s for {len(results)} rows "  # type: ignore[arg-type]
              f"(slowest {max(float(r['wall_s']) for r in results):.2f} s).", "",  # type: ignore[arg-type]
              "## Every row", "",
              "| line | GPU | engine | B | L | measured s | simulated s | latency ratio | measured tok/s | simulated tok/s | "
              "throughput ratio | iterations | preemptions |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(results, key=lambda r: (str(r["hardware"]), str(r["framework"]), r["batch"], r["length"], r["source_line"])):  # type: ignore[arg-type, return-value]
        lines.append(
            f"| {r['source_line']} | {r['gpu']} | {r['framework']} | {r['batch']} | {r['length']} | {float(r['latency_s']):.4g} | "  # type: ignore[arg-type]
            f"{float(r['sim_latency_s']):.4g} | {float(r['latency_ratio']):.3f} | {float(r['throughput_tok_s']):.5g} | "  # type: ignore[arg-type]
            f"{float(r['sim_throughput_tok_s']):.5g} | {float(r['throughput_ratio']):.3f} | {r['iterations']} | {r['preemptions']} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m splitllm.bench.sim_fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown report here (default: stdout)")
    ap.add_argument("--data", type=Path, default=FIDELITY_CSV, help="a fidelity.csv with the measured rows")
    args = ap.parse_args(argv)
    results = compare(measured_rows(args.data))
    text = report(results, "python -m splitllm.bench.sim_fidelity" + (f" --out {args.out}" if args.out else ""))
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text)
        print(f"sim_fidelity: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
