"""Fidelity of the batched iteration model against measured whole-model serving.

The measurements are LLM-Inference-Bench (Chitty-Venkata et al., "LLM-Inference-Bench:
Inference Benchmarking of Large Language Models on AI Accelerators", SC'24 workshops;
github.com/argonne-lcf/LLM-Inference-Bench, ``Plots/All_results.csv``, BSD-3-Clause): one
GPU serving ``B`` requests of ``L`` input and ``L`` output tokens, end-to-end latency
(s) and throughput ``B * (input + output) / latency`` (tokens/s).

Each row is predicted with every block on the server (:func:`splitllm.batched.iteration_time`),
on vidur's tables rescaled to the bench's memory bandwidth (A100 40 GB SXM4: 1555 / 2039),
iteration by iteration as the engine schedules them (:func:`row_schedule`: the serving
simulator's schedule, by the engine's row of :data:`splitllm.batched.engines.ENGINES`, its
KV capacity by that row's formula on the bench's GPU):

* vLLM: continuous batching with its defaults; prompts are admitted while KV blocks are
  free, a request that needs a block when none is free preempts the latest-arrived one,
  which recomputes later;
* TensorRT-LLM: ``GUARANTEED_NO_EVICT`` reserves input + output tokens per request at
  admission, so identical requests run in waves; its KV pool is what the engine's
  activation buffers (sized for ``B * L`` tokens) leave.

Latency = ``kernel_scale * sum(iteration times) + overhead_s * iterations + overhead_per_seq_s
* scheduled sequences``; the three parameters are fitted per (hardware, engine) by
non-negative least squares on the relative latency error of the batch 1 and 64 rows; the
batch 16 and 32 rows are held out.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from splitllm.batched import BatchedCosts, all_blocks, iteration_time
# The engines' defaults (vLLM 0.4-era engine arguments, unchanged by the bench's scripts): the simulator's rows.
from splitllm.batched.engines import ENGINES, Engine, ServerMemory, activation_bytes_per_token, by_label
from splitllm.errors import InputError, positive_number
from splitllm.instance import Instance, example_path, parse_instance
from splitllm.instances.models import get_shape
from splitllm.jsonio import atomic_path, write_atomic
from splitllm.serving.simulator import SimConfig, simulate

#: The bench's hardware names -> vidur's GPU folders.
HARDWARE = {"Nvidia A100 GPU": "a100", "Nvidia H100 GPU": "h100"}
FRAMEWORKS = tuple(engine.label for engine in ENGINES.values())
MODEL = "meta-llama/Llama-2-7b-hf"
BATCHES = (1, 16, 32, 64)
LENGTHS = (128, 256, 512, 1024, 2048)
FIT_BATCHES = (1, 64)
N_LAYERS = 32
GIB = 2**30
#: Memory of the bench's GPUs as CUDA reports it (bytes): the A100s are the 40 GB SXM4 parts of
#: ALCF Polaris (39.59 GiB visible), the H100 an 80 GB part (79.11 GiB visible).
BENCH_MEMORY = {"a100": 39.59 * GIB, "h100": 79.11 * GIB}
#: Peak memory bandwidth (GB/s): (vidur's measured GPU, the bench's GPU). vidur's A100 is the
#: 80 GB SXM4 (HBM2e, 2039 GB/s), Polaris' the 40 GB SXM4 (HBM2, 1555 GB/s); both H100s 80 GB SXM5.
BANDWIDTH = {"a100": (2039.0, 1555.0), "h100": (3350.0, 3350.0)}
VLLM, TRT = ENGINES["vllm"], ENGINES["tensorrt-llm"]
COLUMNS = (
    "source_line", "hardware", "framework", "batch_size", "input_tokens", "output_tokens",
    "metric", "measured", "predicted", "ratio", "held_out",
)  # fmt: skip
SOURCE = (
    "LLM-Inference-Bench (Chitty-Venkata et al., SC'24 workshops), github.com/argonne-lcf/LLM-Inference-Bench, "
    "Plots/All_results.csv, BSD-3-Clause"
)


@dataclass(frozen=True)
class BenchRow:
    """One measured row of ``All_results.csv`` (``line``: its line in the file, header = 1)."""

    line: int
    hardware: str
    framework: str
    batch: int
    length: int
    latency_s: float
    throughput: float


def read_bench(path: Path) -> list[BenchRow]:
    """The rows for Llama-2-7B on one A100 or H100, vLLM or TensorRT-LLM, the bench's batches and lengths."""
    if not path.is_file():
        raise InputError(str(path), "no such file (expected LLM-Inference-Bench's All_results.csv)")
    try:
        rows = _bench_rows(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"not a readable CSV file ({exc})") from None
    if not rows:
        raise InputError(str(path), f"no rows for {MODEL} on one A100/H100 with vLLM or TensorRT-LLM")
    return rows


def _bench_rows(path: Path) -> list[BenchRow]:
    """The wanted rows of the bench's CSV; a row cut short or a figure that is not a finite
    positive number is refused, naming its line (a NaN would pass every comparison)."""
    rows: list[BenchRow] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        need = ["Hardware", "Num of Hardware", "Framework", "Model", "Input Output Length", "Batch Size", "Latency", "Throughput"]
        missing = [c for c in need if c not in header]
        if missing:
            raise InputError(str(path), f"missing column(s) {', '.join(missing)}")
        col = {c: header.index(c) for c in need}
        for record in reader:
            line = reader.line_num
            if len(record) < len(header):
                raise InputError(f"{path}: line {line}", f"has {len(record)} fields, the header {len(header)} (a truncated file?)")
            get = lambda c: record[col[c]].strip()  # noqa: E731
            try:
                ok = (
                    get("Hardware") in HARDWARE and get("Num of Hardware") == "1" and get("Framework") in FRAMEWORKS
                    and get("Model") == MODEL and int(get("Batch Size")) in BATCHES and int(get("Input Output Length")) in LENGTHS
                )  # fmt: skip
            except ValueError:
                continue  # another model's or setup's row, written differently
            if ok:
                figures = [positive_number(f"{path}: line {line}: {c}", get(c)) for c in ("Latency", "Throughput")]
                rows.append(BenchRow(line, get("Hardware"), get("Framework"), int(get("Batch Size")), int(get("Input Output Length")), *figures))
    return rows


def activation_bytes(tokens: int) -> float:
    """Activation memory of a forward pass over ``tokens`` tokens: the widest live tensors of a
    Llama layer (the residual stream plus the MLP's gate, up and product, ``hidden + 3 * ffn``
    FP16 values per token), which both engines size for their largest token batch."""
    shape = get_shape("llama-2-7b")
    return float(tokens) * activation_bytes_per_token(shape.hidden, shape.ffn)


def server_memory(costs: BatchedCosts, gpu: str, batch: int, length: int) -> ServerMemory:
    """The bench's ``gpu`` for an engine's KV capacity formula: its memory, the model's weights and
    KV bytes, the activations per token (:func:`activation_bytes`), the row's batch and length (the
    bench builds one TensorRT-LLM engine per row, ``--max_batch_size B --max_input_len L``)."""
    return ServerMemory(BENCH_MEMORY[gpu], costs.weight_bytes, costs.kv_bytes_per_token, activation_bytes(1), batch, length)


def kv_capacity(costs: BatchedCosts, gpu: str, framework: str, batch: int, length: int) -> float:
    """KV bytes the engine called ``framework`` gives itself on the bench's ``gpu`` (its capacity formula)."""
    return by_label(framework).kv_capacity_bytes(server_memory(costs, gpu, batch, length))


def fixed_batch_instance(batch: int, length: int) -> Instance:
    """``batch`` identical requests of ``length`` in and out on the Llama-2-7B example, links without cost."""
    data = json.loads(Path(example_path("llama2-7b")).read_text())
    client = data["requests"][0]["client"]
    data["requests"] = [{"id": i, "client": client, "prompt_tokens": length, "output_tokens": length} for i in range(batch)]
    for c in data["clients"].values():
        c.update(uplink_bytes_per_s=1e15, downlink_bytes_per_s=1e15, rtt_s=0.0)
    return parse_instance(data)


Iteration = tuple[np.ndarray, np.ndarray]  # (q, context) of the items one iteration schedules


def engine_schedule(costs: BatchedCosts, engine: str | Engine, batch: int, length: int, kv_capacity_bytes: float) -> list[Iteration]:
    """The iterations ``engine`` runs for ``batch`` identical requests of ``length`` in and out.

    The serving simulator's schedule (:func:`splitllm.serving.simulate`, every block on the
    server, no network, KV capacity ``kv_capacity_bytes``): the engine's rules have one model.
    Each iteration lists its items' (new tokens, cached tokens) in request order.

    Examples
    --------
    >>> costs = bench_costs("a100", "TensorRT-LLM")
    >>> its = engine_schedule(costs, "tensorrt-llm", 5, 2, 9 * costs.kv_bytes_per_token)  # 2 requests of 4 tokens fit in 9
    >>> [len(q) for q, _ in its]  # 3 waves of a prefill and a decode iteration
    [2, 2, 2, 2, 1, 1]
    """
    inst = fixed_batch_instance(batch, length)
    cfg = SimConfig(costs, engine, kv_capacity_bytes=kv_capacity_bytes)
    sim = simulate(inst, np.ones((batch, inst.n_blocks), dtype=bool), cfg, record=True)
    out: list[Iteration] = []
    for (_, _, items), priced in zip(sim.timeline, sim.priced):
        order = sorted(range(len(items)), key=lambda i: items[i][0])
        out.append((np.array([float(priced[i][2]) for i in order]), np.array([float(priced[i][3]) for i in order])))
    return out


@dataclass(frozen=True)
class Timing:
    """A schedule's seconds without overhead, its iterations and scheduled items, its prefill seconds."""

    base_s: float
    iterations: int
    items: int
    prefill_s: float
    peak_width: int


def schedule_timing(costs: BatchedCosts, schedule: list[Iteration]) -> Timing:
    """Time every iteration of ``schedule`` with every block on the server, overheads at zero."""
    kinds = all_blocks(N_LAYERS)
    zero = replace(costs, overhead_s=0.0, overhead_per_seq_s=0.0)
    groups: dict[tuple[int, bool], list[Iteration]] = {}
    for q, c in schedule:
        groups.setdefault((len(q), bool(np.any(q > 1))), []).append((q, c))
    base = prefill = 0.0
    for (m, is_prefill), its in groups.items():
        qs = np.stack([q for q, _ in its])
        cs = np.stack([c for _, c in its])
        t = float(np.sum(iteration_time(zero, kinds, np.ones((m, len(kinds)), dtype=bool), qs, cs)))
        base += t
        prefill += t if is_prefill else 0.0
    return Timing(base, len(schedule), int(sum(len(q) for q, _ in schedule)), prefill, max((len(q) for q, _ in schedule), default=0))


def row_schedule(costs: BatchedCosts, gpu: str, engine: str, batch: int, length: int) -> list[Iteration]:
    """The iterations ``engine`` (the bench's name) runs for ``batch`` requests of ``length`` in and out on the bench's ``gpu``."""
    return engine_schedule(costs, by_label(engine), batch, length, kv_capacity(costs, gpu, engine, batch, length))


#: The shipped profiles of vidur's GPUs (their batched tables at vidur's bandwidth, each engine's fit).
PROFILES = {"a100": "a100-80gb", "h100": "h100-80gb"}
#: The bench's engine names -> :data:`splitllm.batched.engines.ENGINES`.
ENGINE_KEYS = {engine.label: name for name, engine in ENGINES.items()}


def bench_costs(gpu: str, engine: str) -> BatchedCosts:
    """The batched costs of the bench's ``gpu`` (``a100``, ``h100``) under ``engine`` (``vLLM``,
    ``TensorRT-LLM``), from the shipped profile alone: its tables rescaled to the bench's memory
    bandwidth (:data:`BANDWIDTH`) exactly as :func:`run_fidelity` builds them from vidur's data,
    with the engine's fitted overheads and kernel scale, and the bench's memory (:data:`BENCH_MEMORY`).

    >>> costs = bench_costs("a100", "vLLM")
    >>> costs.memory_bytes == BENCH_MEMORY["a100"], round(costs.attention.bytes_per_s / 1e9)
    (True, 1325)
    """
    from splitllm.batched import costs_from_tables
    from splitllm.instances.batched_vidur import rescale_tables
    from splitllm.instances.bundled import bundled_profile

    if gpu not in PROFILES or engine not in ENGINE_KEYS:
        raise InputError("gpu", f"no bench costs for {gpu!r}, {engine!r}; have {', '.join(PROFILES)} x {', '.join(ENGINE_KEYS)}")
    profile = bundled_profile(PROFILES[gpu], "llama-2-7b")
    assert profile.batched is not None
    tables = rescale_tables(profile.batched, "llama-2-7b", BANDWIDTH[gpu][1] / BANDWIDTH[gpu][0])
    costs = costs_from_tables(tables, ENGINE_KEYS[engine], profile.device, profile.model)
    return replace(costs, memory_bytes=BENCH_MEMORY[gpu])


def fit_engine(
    measured: np.ndarray, base: np.ndarray, iterations: np.ndarray, items: np.ndarray
) -> tuple[float, float, float]:
    """``(kernel_scale, per_iteration, per_item)``, all >= 0, minimising the squared relative error
    ``sum(((kernel_scale * base + per_iteration * n + per_item * k) / measured - 1)^2)``.

    Exact non-negative least squares (``scipy.optimize.nnls``) on the rows divided by
    ``measured``.

    Examples
    --------
    >>> import numpy as np
    >>> n, k, b = np.array([10.0, 10.0, 40.0, 5.0]), np.array([10.0, 640.0, 40.0, 300.0]), np.array([1.0, 2.0, 3.0, 0.5])
    >>> [round(v, 6) for v in fit_engine(0.9 * b + 0.01 * n + 0.001 * k, b, n, k)]
    [0.9, 0.01, 0.001]
    """
    x = np.stack([base / measured, iterations / measured, items / measured], axis=1)
    coef, _ = nnls(x, np.ones_like(measured))
    return float(coef[0]), float(coef[1]), float(coef[2])


@dataclass(frozen=True)
class Fidelity:
    """Every compared figure (dicts with :data:`COLUMNS`), the fitted overheads, per-row notes."""

    records: list[dict[str, object]]
    overheads: dict[tuple[str, str], tuple[float, float, float]]
    prefill_share: dict[int, float]
    n_waves: dict[int, int]  # the widest iteration of the row (requests decoding at once)
    fit_rows: dict[tuple[str, str], int]


def compare(rows: Iterable[BenchRow], costs: dict[str, BatchedCosts]) -> Fidelity:
    """Predict every row with ``costs`` (by vidur GPU name), fitting the overheads per (hardware, engine)."""
    rows = list(rows)
    cache: dict[tuple[str, str, int, int], Timing] = {}
    for r in rows:
        gpu = HARDWARE[r.hardware]
        key = (gpu, r.framework, r.batch, r.length)
        if key not in cache:
            cache[key] = schedule_timing(costs[gpu], row_schedule(costs[gpu], gpu, r.framework, r.batch, r.length))
    timing = {r.line: cache[(HARDWARE[r.hardware], r.framework, r.batch, r.length)] for r in rows}
    overheads: dict[tuple[str, str], tuple[float, float, float]] = {}
    fit_rows: dict[tuple[str, str], int] = {}
    for group in sorted({(r.hardware, r.framework) for r in rows}):
        fit = [r for r in rows if (r.hardware, r.framework) == group and r.batch in FIT_BATCHES]
        fit_rows[group] = len(fit)
        if not fit:
            overheads[group] = (1.0, 0.0, 0.0)
            continue
        ts = [timing[r.line] for r in fit]
        overheads[group] = fit_engine(
            np.array([r.latency_s for r in fit]), np.array([t.base_s for t in ts]),
            np.array([float(t.iterations) for t in ts]), np.array([float(t.items) for t in ts]),
        )  # fmt: skip
    records: list[dict[str, object]] = []
    share: dict[int, float] = {}
    width: dict[int, int] = {}
    for r in rows:
        t = timing[r.line]
        k, o, p = overheads[(r.hardware, r.framework)]
        latency = k * t.base_s + o * t.iterations + p * t.items
        share[r.line] = t.prefill_s / latency
        width[r.line] = t.peak_width
        throughput = r.batch * 2 * r.length / latency
        for metric, measured, predicted in (("latency_s", r.latency_s, latency), ("throughput_tok_s", r.throughput, throughput)):
            records.append({
                "source_line": r.line, "hardware": r.hardware, "framework": r.framework, "batch_size": r.batch,
                "input_tokens": r.length, "output_tokens": r.length, "metric": metric, "measured": measured,
                "predicted": predicted, "ratio": predicted / measured, "held_out": r.batch not in FIT_BATCHES,
            })  # fmt: skip
    return Fidelity(records, overheads, share, width, fit_rows)


def write_csv(path: Path, records: list[dict[str, object]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        w = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        w.writeheader()
        for rec in records:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in rec.items()})


def summary_markdown(fid: Fidelity, command: str) -> str:
    """The report: summary per (hardware, engine), the fitted overheads, the worst rows, every row."""
    recs = fid.records
    lines = [
        "# Batched model vs LLM-Inference-Bench: Llama-2-7B, one GPU",
        "",
        f"Measured: {SOURCE}. Predicted: the batched iteration model on vidur's per-op kernel tables "
        "(Agrawal et al., MLSys 2024, github.com/microsoft/vidur, MIT licence). Written by `" + command + "`.",
        "",
        "## Model per row",
        "",
        "* GPUs: the bench's A100 is the 40 GB SXM4 of ALCF Polaris (39.59 GiB visible, HBM2 1555 GB/s); vidur "
        "measured an A100 80 GB SXM4 (2039 GB/s), so the A100 tables are rescaled to 1555/2039 of the bandwidth "
        "(memory-bound kernels slow down, compute-bound ones do not). H100: 80 GB (79.11 GiB visible), the same "
        "part as vidur's. Weights 13.5 GB; CUDA context 0.5 GB; activations `hidden + 3 ffn` FP16 values per token "
        "of the engine's largest token batch.",
        f"* vLLM (defaults: gpu_memory_utilization {VLLM.memory_fraction}, block {VLLM.block}, max_num_batched_tokens "
        f"{VLLM.max_batched_tokens}, watermark {VLLM.watermark}): each iteration admits waiting prompts that fit (a "
        "prefill-only iteration) or decodes every running request; a request that needs a KV block when none is "
        "free preempts the latest-arrived one, which later recomputes its prompt and generated tokens.",
        f"* TensorRT-LLM (default GUARANTEED_NO_EVICT, kv_cache_free_gpu_mem_fraction {TRT.memory_fraction}): a request "
        "is admitted only when input + output tokens can be reserved; the KV pool is what remains after the engine's "
        "activation buffers, sized for max_num_tokens = B x L (the bench builds one engine per row with "
        "--max_batch_size B --max_input_len L). Identical requests so run in waves.",
        "* Every iteration is timed by the batched model with all blocks on the server. Latency = "
        "kernel_scale x (sum of iteration times) + overhead x iterations + per_seq x scheduled sequences. "
        f"The three parameters (all >= 0) are fitted per (hardware, engine) on the batch "
        f"{' and '.join(map(str, FIT_BATCHES))} rows (least squares on relative latency error); batch 16 and 32 "
        "rows are held out. No parameter is tuned per row.",
        "",
        "## Fitted parameters (also in fit.json)",
        "",
        "| hardware | engine | kernel_scale | overhead (ms / iteration) | per_seq (us / sequence / iteration) | fit rows |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {h} | {e} | {k:.3f} | {o * 1e3:.3f} | {p * 1e6:.2f} | {fid.fit_rows[(h, e)]} |"
              for (h, e), (k, o, p) in sorted(fid.overheads.items())]  # fmt: skip
    lines += ["", "## Summary (ratio = predicted / measured)", "",
              "| hardware | engine | metric | rows | within 10% | worst held-out ratio | worst fitted ratio |", "|---|---|---|---|---|---|---|"]  # fmt: skip

    def worst(rs: list[dict[str, object]]) -> str:
        if not rs:
            return "-"
        r = max(rs, key=lambda x: abs(math.log(float(x["ratio"]))))  # type: ignore[arg-type]
        return f"{float(r['ratio']):.3f} (B={r['batch_size']}, L={r['input_tokens']})"  # type: ignore[arg-type]

    for h, e in sorted(fid.overheads):
        for metric in ("latency_s", "throughput_tok_s"):
            rs = [r for r in recs if r["hardware"] == h and r["framework"] == e and r["metric"] == metric]
            ok = sum(abs(float(r["ratio"]) - 1) <= 0.10 for r in rs)  # type: ignore[arg-type]
            lines.append(f"| {h} | {e} | {metric} | {len(rs)} | {ok} | {worst([r for r in rs if r['held_out']])} | "
                         f"{worst([r for r in rs if not r['held_out']])} |")  # fmt: skip
    lat = sorted((r for r in recs if r["metric"] == "latency_s"), key=lambda x: -abs(math.log(float(x["ratio"]))))  # type: ignore[arg-type]
    lines += ["", "## Worst latency rows", "", "| line | hardware | engine | B | L | measured s | predicted s | ratio | held out | prefill share | peak concurrent |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in lat[:12]:
        lines.append(
            f"| {r['source_line']} | {r['hardware']} | {r['framework']} | {r['batch_size']} | {r['input_tokens']} | "
            f"{float(r['measured']):.4g} | {float(r['predicted']):.4g} | {float(r['ratio']):.3f} | {r['held_out']} | "  # type: ignore[arg-type]
            f"{fid.prefill_share[int(r['source_line'])]:.2f} | {fid.n_waves[int(r['source_line'])]} |"  # type: ignore[call-overload]
        )
    bad = [r for r in lat if abs(float(r["ratio"]) - 1) > 0.10]  # type: ignore[arg-type]
    lines += ["", "## Rows outside 10%", ""]
    if bad:
        lines.append(f"{len(bad)} of {len(lat)} latency rows: " + ", ".join(
            f"line {r['source_line']} ({r['hardware']}, {r['framework']}, B={r['batch_size']}, L={r['input_tokens']}, "
            f"ratio {float(r['ratio']):.3f})" for r in bad) + ".")  # type: ignore[arg-type]  # fmt: skip
    else:
        lines.append(f"None: all {len(lat)} latency rows (and so all throughput rows) are within 10%.")
    lines += [
        "",
        "kernel_scale < 1 says the engines' kernels run faster than vidur's measured PyTorch kernels (rescaled "
        "for the bench's GPU): TensorRT-LLM fuses norms, residual adds and RoPE into its GEMM and attention "
        "kernels, and both engines capture decode iterations in CUDA graphs. The per-sequence term is what "
        "grows with the batch in vLLM's Python-side scheduling and sampling.",
    ]
    return "\n".join(lines) + "\n"


def plot(path: Path, records: list[dict[str, object]]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5))
    axes = fig.subplots(1, 2)
    for ax, metric, unit in zip(axes, ("latency_s", "throughput_tok_s"), ("s", "tokens/s")):
        for held, marker, label in ((False, "o", "fitted subset"), (True, "^", "held out")):
            rs = [r for r in records if r["metric"] == metric and r["held_out"] == held]
            ax.scatter([float(r["measured"]) for r in rs], [float(r["predicted"]) for r in rs],  # type: ignore[arg-type]
                       marker=marker, label=label, alpha=0.7)  # fmt: skip
        vals = [float(r["measured"]) for r in records if r["metric"] == metric]  # type: ignore[arg-type]
        if vals:
            lo, hi = min(vals) / 1.5, max(vals) * 1.5
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.2, label="+-10%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {metric} ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.legend(fontsize=8)
    fig.suptitle("Llama-2-7B, A100 and H100, vLLM and TensorRT-LLM")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)


def fit_json(fid: Fidelity) -> dict[str, object]:
    """The fitted parameters as ``{vidur GPU: {engine: {overhead_s, overhead_per_seq_s, kernel_scale, ...}}}``.

    ``overhead_s`` and ``overhead_per_seq_s`` are :class:`~splitllm.batched.BatchedCosts`
    fields; ``kernel_scale`` multiplies the rest of an iteration's time; ``bandwidth_scale``
    is the stated (not fitted) rescaling of vidur's tables to the bench's GPU.
    """
    out: dict[str, dict[str, object]] = {}
    for (hardware, engine), (k, o, p) in sorted(fid.overheads.items()):
        gpu = HARDWARE[hardware]
        out.setdefault(gpu, {})[engine] = {
            "overhead_s": round(o, 9), "overhead_per_seq_s": round(p, 9), "kernel_scale": round(k, 6),
            "bandwidth_scale": round(BANDWIDTH[gpu][1] / BANDWIDTH[gpu][0], 6), "memory_bytes": BENCH_MEMORY[gpu],
            "fitted_on": f"batch {' and '.join(map(str, FIT_BATCHES))} rows of {hardware}, {engine} ({fid.fit_rows[(hardware, engine)]} rows)",
        }  # fmt: skip
    return {"source": SOURCE, "model": MODEL, "fit": out}


def run_fidelity(data: Path, vidur_root: Path, out: Path, command: str = "splitllm fidelity") -> Fidelity:
    """Compare, then write ``fidelity.csv``, ``fidelity.md``, ``fidelity.png`` and ``fit.json`` under ``out``."""
    import json

    from splitllm.instances.batched_vidur import vidur_batched

    rows = read_bench(data)
    gpus = sorted({HARDWARE[r.hardware] for r in rows})
    costs = {gpu: vidur_batched(vidur_root, gpu, bandwidth_scale=BANDWIDTH[gpu][1] / BANDWIDTH[gpu][0]) for gpu in gpus}
    fid = compare(rows, costs)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "fidelity.csv", fid.records)
    write_atomic(out / "fidelity.md", summary_markdown(fid, command))
    write_atomic(out / "fit.json", json.dumps(fit_json(fid), indent=2) + "\n")
    plot(out / "fidelity.png", fid.records)
    return fid
