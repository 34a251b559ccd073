"""Prefill (time to first token) of the kernel tables against measured whole-model prefill.

Measured: splitwise-sim's ``data/perf_model.csv`` (Patel et al., "Splitwise: Efficient
Generative LLM Inference Using Phase Splitting", ISCA 2024; github.com/Mutinifni/splitwise-sim,
MIT): ``prompt_time`` (ms, the whole prefill of the batch) of Llama-2-70B on DGX-A100 and
DGX-H100 at tensor parallel 2, 4 and 8: one prompt of 128..8192 tokens (batch 1) and 2..64
prompts of 512 tokens prefilled in one iteration (batched), the median of the repeated runs
of each configuration. It is the only measured whole-model prefill time in the data at hand
(LLM-Inference-Bench's rows give end-to-end latency only). A row that takes less than half
the time of a row of the same hardware and TP degree with half its total tokens is a broken
measurement (doubling the work cannot halve the time) and is left out: TP 2's batch-64 rows.

Predicted from vidur's measured kernel tables (Agrawal et al., MLSys 2024, MIT) as the
batched model prices an iteration of ``b`` prompts of ``n`` tokens (``N = b n`` tokens):
per layer, ``mlp.csv``'s ops at ``N`` tokens at the same tensor-parallel degree (one GPU's
shard; beyond its 4096 tokens in proportion to ``N``) plus each prompt's causal attention by
the roofline fitted to the TP-1 GEMMs (its heads split over the GPUs): ``kernels``; and two
all-reduces of the ``N x hidden`` FP16 activations (a message of ``S = 2 N hidden`` bytes),
vidur's measured NCCL ``all_reduce.csv`` (DGX, all GPUs in one node); times 80 layers.
Embedding and LM head are left out (under 1%).

The model, ``ttft_s``, per GPU ``g`` and TP degree ``p``::

    ttft = max(floor[g, p], scale[g] x kernels + all_reduce)
    all_reduce = 160 x reduce_scale[g] x table(S)            if S <= L2[g]
               = 160 x S x 2 (p - 1) / p / bus_bandwidth[g]  beyond

a CPU-bound launch floor per (GPU, TP), a kernel scale per GPU, and the all-reduce: up to a
message of the GPU's L2 cache (40 MiB A100, 50 MiB H100) the table's time times a factor
per GPU (the engine's all-reduce also waits for the slowest rank), beyond it bound by one
bus bandwidth per GPU (ring traffic ``2 (p - 1) / p`` of the message). The six parameters
per GPU are fitted by least squares on the relative error of the batch-1 rows of
:data:`FIT_PROMPTS` tokens (the 128-token rows place the floors); every other row, batched
ones included, is held out. ``ttft_additive_s`` is the model this one replaced, kept for
comparison: ``scale[g] x (kernels + table all-reduces) + overhead[g, p]`` fitted on the
batch-1 rows of :data:`ADDITIVE_FIT_PROMPTS` tokens. Run: ``python -m splitllm.bench.ttft
--splitwise perf_model.csv --vidur VIDUR_DATA --out DIR``, or ``splitllm fidelity ...
--splitwise perf_model.csv``, which writes the same ``ttft.csv`` and ``ttft.md`` beside its
own figures.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from splitllm.csvfile import dict_rows
from splitllm.errors import InputError, SplitLLMError, positive_number, whole_number
from splitllm.instances.models import get_shape
from splitllm.instances.roofline import Roofline
from splitllm.instances.vidur import OpTable, csv_path, fit_roofline
from splitllm.jsonio import write_atomic
from splitllm.outputs import check_output_dir

MIB = 2.0**20
#: Our hardware name -> (vidur's GPU folder, vidur's network folder, L2 cache bytes).
HARDWARE = {"a100-80gb": ("a100", "a100_dgx", 40 * MIB), "h100-80gb": ("h100", "h100_dgx", 50 * MIB)}
MODEL = "llama-2-70b"
#: Batch-1 prompt lengths whose rows fit :func:`fit_floor_model`; every other row is held out.
FIT_PROMPTS = (128, 512, 2048, 8192)
#: Batch-1 prompt lengths whose rows fit the replaced additive model (:func:`fit`).
ADDITIVE_FIT_PROMPTS = (512, 2048)
METRICS = ("ttft_kernels_s", "ttft_additive_s", "ttft_s")
MEASURED_COLUMNS = ("model", "hardware", "batch_size", "tensor_parallel", "prompt_size", "prompt_time")
COLUMNS = ("hardware", "tensor_parallel", "batch_size", "prompt_tokens", "runs", "metric", "measured", "predicted", "ratio", "held_out")

#: (hardware, TP degree, batch size, prompt tokens)
Key = tuple[str, int, int, int]


def measured_prefill(path: Path) -> dict[Key, list[float]]:
    """Llama-2-70B prefill times (s) by (hardware, TP, batch size, prompt tokens).

    A missing column, a row cut short or a figure that is not a finite positive number is
    refused in one line naming the file and line; a file without such rows too.
    """
    runs: dict[Key, list[float]] = defaultdict(list)
    for where, row in dict_rows(path, MEASURED_COLUMNS, "splitwise-sim's data/perf_model.csv"):
        if row["model"] == "llama2-70b" and row["hardware"] in HARDWARE:
            tp, batch, prompt = (whole_number(f"{where}: {c}", row[c]) for c in ("tensor_parallel", "batch_size", "prompt_size"))
            seconds = positive_number(f"{where}: prompt_time", row["prompt_time"], "ms") * 1e-3
            runs[(row["hardware"], tp, batch, prompt)].append(seconds)
    if not runs:
        raise InputError(str(path), "no llama2-70b rows on a100-80gb or h100-80gb")
    return runs


def broken_rows(seconds: dict[Key, float]) -> set[Key]:
    """Rows under half the time of a row of the same hardware and TP with half their total tokens
    (doubling the work cannot halve the time: a broken measurement, not noise)."""
    by_tokens: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    for (hw, tp, b, n), t in seconds.items():
        by_tokens[(hw, tp, b * n)].append(t)
    return {k for k, t in seconds.items() if any(t < h / 2 for h in by_tokens.get((k[0], k[1], k[2] * k[3] // 2), []))}


def all_reduce_s(path: Path, workers: int, size: float) -> float:
    """vidur's median all-reduce of ``size`` bytes over ``workers`` GPUs of one node (linear in size)."""
    xs, ys = _all_reduce_table(path, workers)
    if size > xs[-1]:  # beyond the table (64 MiB): the largest message's bandwidth
        return float(ys[-1] * size / xs[-1]) * 1e-3
    return float(np.interp(size, xs, ys)) * 1e-3


@lru_cache(maxsize=None)
def _all_reduce_table(path: Path, workers: int) -> tuple[np.ndarray, np.ndarray]:
    sizes, ms = [], []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["num_workers"]) == workers and int(row["devices_per_node"]) == workers:
                sizes.append(float(row["size"]))
                ms.append(float(row["time_stats.all_reduce.median"]))
    order = np.argsort(sizes)
    return np.asarray(sizes)[order], np.asarray(ms)[order]


@lru_cache(maxsize=None)
def _tables(vidur: Path, gpu: str, tp: int) -> tuple[OpTable, Roofline]:
    """The TP-``tp`` op table and the roofline of the TP-1 GEMMs of ``gpu``."""
    roof = fit_roofline(OpTable.read(csv_path(vidur, gpu, MODEL)), get_shape(MODEL))
    return OpTable.read(csv_path(vidur, gpu, MODEL), tp), roof


@dataclass(frozen=True)
class Parts:
    """One prefill iteration's priced parts (seconds, bytes), summed over the layers."""

    kernels_s: float  # scaled by the kernel scale
    reduce_table_s: float  # vidur's all-reduce time for every message (extrapolated beyond 64 MiB)
    within_l2: bool  # the message fits the L2 cache: the table (times a factor) prices it
    bus_bytes: float  # ring traffic of every all-reduce, 2 (p - 1) / p of the messages

    def features(self) -> tuple[float, float, float]:
        """The terms that :func:`fit_floor_model`'s scale, reduce factor and 1 / bandwidth multiply."""
        return self.kernels_s, self.reduce_table_s if self.within_l2 else 0.0, 0.0 if self.within_l2 else self.bus_bytes


def prefill_parts(vidur: Path, hardware: str, tp: int, batch: int, n: int) -> Parts:
    """The parts of one iteration of ``batch`` prompts of ``n`` tokens of Llama-2-70B at TP ``tp``."""
    gpu, node, l2 = HARDWARE[hardware]
    shape = get_shape(MODEL)
    table, roof = _tables(vidur, gpu, tp)
    tokens = batch * n
    n_max = float(table.tokens[-1])  # beyond vidur's 4096 tokens: proportional to the tokens
    layer = table.layer_ms(min(tokens, n_max)) * max(1.0, tokens / n_max) * 1e-3
    attention = batch * roof.time(shape.attention_flops(n) / tp, 0.0)
    message = tokens * shape.hidden * 2.0
    reduces = 2 * shape.n_layers if tp > 1 else 0
    table_s = reduces * all_reduce_s(vidur / "profiling" / "network" / node / "all_reduce.csv", tp, message) if tp > 1 else 0.0
    return Parts(shape.n_layers * (layer + attention), table_s, message <= l2, reduces * message * 2 * (tp - 1) / tp)


def _relative_lstsq(a: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Coefficients ``c`` minimising the relative error of ``a @ c`` against ``measured``."""
    rel = a / measured[:, None]
    norm = np.linalg.norm(rel, axis=0)  # columns of unit length: 1 / bandwidth is ~1e-11
    coef, *_ = np.linalg.lstsq(rel / norm, np.ones(len(measured)), rcond=None)
    return coef / norm


def fit(rows: list[tuple[int, float, float]]) -> tuple[float, dict[int, float]]:
    """(scale, overhead by TP) minimising the relative error of ``measured ~ scale x predicted
    + overhead[tp]`` over ``rows`` of (tp, predicted, measured): the replaced additive model."""
    tps = sorted({tp for tp, _, _ in rows})
    a = np.array([[p] + [float(tp == t) for t in tps] for tp, p, _ in rows])
    coef = _relative_lstsq(a, np.array([m for _, _, m in rows]))
    return float(coef[0]), {t: float(c) for t, c in zip(tps, coef[1:])}


@dataclass(frozen=True)
class FloorFit:
    """``max(floor[tp], coef . features)``: ``coef`` = (kernel scale, reduce factor, 1 / bus bandwidth)."""

    coef: tuple[float, ...]
    floor_s: dict[int, float]

    def predict(self, tp: int, features: tuple[float, ...]) -> float:
        return max(self.floor_s.get(tp, 0.0), float(np.dot(self.coef, features)))


def fit_floor_model(rows: list[tuple[int, tuple[float, ...], float]]) -> FloorFit:
    """The :class:`FloorFit` of least relative error over ``rows`` of (tp, features, measured).

    Within a TP degree the rows are taken in the order given (growing work): the floor binds a
    first few of them. Every such split is solved by linear least squares (a TP degree whose
    rows the floor never binds gets none) and the best split whose coefficients are all >= 0 is
    kept (on a tie, the one that floors fewer rows).
    """
    tps = sorted({tp for tp, _, _ in rows})
    order = {t: [i for i, r in enumerate(rows) if r[0] == t] for t in tps}
    measured = np.array([m for _, _, m in rows])
    width = len(rows[0][1])
    best: tuple[float, FloorFit] | None = None
    for cuts in itertools.product(*(range(len(order[t]) + 1) for t in tps)):
        floored = {i: t for t, k in zip(tps, cuts) for i in order[t][:k]}
        a = np.zeros((len(rows), width + len(tps)))
        for i, (tp, x, _) in enumerate(rows):
            if i in floored:
                a[i, width + tps.index(tp)] = 1.0
            else:
                a[i, :width] = x
        used = np.abs(a).sum(axis=0) > 0
        coef = np.zeros(a.shape[1])
        coef[used] = _relative_lstsq(a[:, used], measured)
        if (coef < 0).any():
            continue
        model = FloorFit(tuple(map(float, coef[:width])), {t: float(coef[width + j]) for j, t in enumerate(tps) if used[width + j]})
        error = sum((model.predict(tp, x) / m - 1) ** 2 for tp, x, m in rows)
        if best is None or error < best[0] - 1e-12:  # a tie keeps the split with fewer floored rows
            best = (error, model)
    if best is None:
        raise ValueError("no fit with non-negative parameters")
    return best[1]


@dataclass(frozen=True)
class HardwareFit:
    """Both fits of one hardware: the floor model and the replaced additive one (scale, overhead by TP)."""

    model: FloorFit
    fit_rows: int
    additive: tuple[float, dict[int, float]]
    additive_rows: int
    excluded: tuple[Key, ...] = ()

    def predictions(self, p: Parts, tp: int) -> tuple[float, float, float]:
        """(kernel tables alone, the additive model, the floor model) for one row, as :data:`METRICS`."""
        scale, overhead = self.additive
        table = p.kernels_s + p.reduce_table_s
        # a TP degree without rows to fit gets no overhead (its rows then show what that costs)
        return table, scale * table + overhead.get(tp, 0.0), self.model.predict(tp, p.features())


@dataclass(frozen=True)
class TtftComparison:
    """Every compared figure (dicts with :data:`COLUMNS`) and the fits per hardware."""

    records: list[dict[str, object]]
    fits: dict[str, HardwareFit]

    def worst_held_out(self) -> float:
        """The largest held-out relative error of ``ttft_s``."""
        return max((abs(float(r["ratio"]) - 1) for r in self.records if r["metric"] == "ttft_s" and r["held_out"]), default=0.0)  # type: ignore[arg-type]


def _is_fit_row(key: Key, prompts: tuple[int, ...]) -> bool:
    return key[2] == 1 and key[3] in prompts


def fit_hardware(hardware: str, parts: dict[Key, Parts], seconds: dict[Key, float], excluded: tuple[Key, ...] = ()) -> HardwareFit:
    """Both fits of one hardware on its fit rows (the held-out rows never enter)."""
    keys = sorted(parts, key=lambda k: (k[1], k[2] * k[3], k[2]))
    new = [k for k in keys if _is_fit_row(k, FIT_PROMPTS)]
    old = [k for k in keys if _is_fit_row(k, ADDITIVE_FIT_PROMPTS)]
    if not new or not old:
        raise InputError(hardware, f"no batch-1 rows of {', '.join(map(str, FIT_PROMPTS))} prompt tokens to fit on")
    floor = fit_floor_model([(k[1], parts[k].features(), seconds[k]) for k in new])
    scale, overhead = fit([(k[1], parts[k].kernels_s + parts[k].reduce_table_s, seconds[k]) for k in old])
    return HardwareFit(floor, len(new), (scale, overhead), len(old), excluded)


def compare_ttft(splitwise: Path, vidur: Path) -> TtftComparison:
    """Measured against predicted prefill for every configuration (see the module docstring)."""
    runs = measured_prefill(splitwise)
    seconds = {k: float(np.median(v)) for k, v in runs.items()}
    broken = broken_rows(seconds)
    records: list[dict[str, object]] = []
    fits: dict[str, HardwareFit] = {}
    for hardware in HARDWARE:
        keys = sorted(k for k in seconds if k[0] == hardware and k not in broken)
        if not keys:
            continue
        parts = {k: prefill_parts(vidur, *k) for k in keys}
        fits[hardware] = f = fit_hardware(hardware, parts, seconds, tuple(sorted(k for k in broken if k[0] == hardware)))
        for k in keys:
            m = seconds[k]
            for metric, value in zip(METRICS, f.predictions(parts[k], k[1])):
                fitted = _is_fit_row(k, ADDITIVE_FIT_PROMPTS if metric == "ttft_additive_s" else FIT_PROMPTS)  # the tables fit nothing
                records.append({"hardware": hardware, "tensor_parallel": k[1], "batch_size": k[2], "prompt_tokens": k[3],
                                "runs": len(runs[k]), "metric": metric, "measured": f"{m:.6g}", "predicted": f"{value:.6g}",
                                "ratio": f"{value / m:.4g}", "held_out": metric == "ttft_kernels_s" or not fitted})
    return TtftComparison(records, fits)


def _fit_lines(fits: dict[str, HardwareFit]) -> list[str]:
    """The fitted parameters of both models, as Markdown tables."""
    lines = ["`ttft_s` (the model above):", "",
             "| hardware | kernel scale | all-reduce within L2: x table | bus bandwidth beyond L2 (GB/s) | floor by TP (ms) | fit rows |",
             "|---|---|---|---|---|---|"]
    for h, f in fits.items():
        m = f.model
        bandwidth = f"{1e-9 / m.coef[2]:.0f}" if m.coef[2] > 0 else "-"
        floors = ", ".join(f"TP {t}: {s * 1e3:.1f}" for t, s in m.floor_s.items()) or "-"
        lines.append(f"| {h} | {m.coef[0]:.3f} | {m.coef[1]:.2f} | {bandwidth} | {floors} | {f.fit_rows} |")
    lines += ["", "`ttft_additive_s` (the replaced model):", "", "| hardware | scale | overhead by TP (ms) | fit rows |", "|---|---|---|---|"]
    for h, f in fits.items():
        scale, overhead = f.additive
        lines.append(f"| {h} | {scale:.3f} | {', '.join(f'TP {t}: {o * 1e3:.1f}' for t, o in overhead.items())} | {f.additive_rows} |")
    excluded = [f"{h} TP {k[1]} batch {k[2]} x {k[3]} tokens" for h, f in fits.items() for k in f.excluded]
    return lines + ["", f"Excluded as broken: {'; '.join(excluded) or 'none'}."]


def _summary_lines(records: list[dict[str, object]], hardware: list[str]) -> list[str]:
    """Rows, rows within 10% and ratio ranges per hardware and metric."""
    table = ["| hardware | metric | rows | within 10% | batch 1 within 10% | batched within 10% | held-out within 10% "
             "| held-out ratios (min..max) | fitted ratios (min..max) |", "|---|---|---|---|---|---|---|---|---|"]
    for h in hardware:
        for metric in METRICS:
            rows = [r for r in records if r["hardware"] == h and r["metric"] == metric]
            single = [r for r in rows if r["batch_size"] == 1]
            batched = [r for r in rows if r["batch_size"] != 1]
            held = [r for r in rows if r["held_out"]]
            table.append(f"| {h} | {metric} | {len(rows)} | {_within(rows)} | {_of(single)} | {_of(batched)} | {_of(held)} "
                         f"| {_range(rows, True)} | {_range(rows, False)} |")
    return table


def _within(rows: list[dict[str, object]]) -> int:
    return sum(abs(float(r["ratio"]) - 1) <= 0.10 for r in rows)  # type: ignore[arg-type]


def _of(rows: list[dict[str, object]]) -> str:
    return f"{_within(rows)} of {len(rows)}"


def write_ttft(out: Path, comparison: TtftComparison) -> list[str]:
    """Write ``ttft.csv`` and ``ttft.md`` under ``out``; returns the summary table's lines."""
    records, fits = comparison.records, comparison.fits
    out.mkdir(parents=True, exist_ok=True)
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in records]
    write_atomic(out / "ttft.csv", "\n".join(lines) + "\n")
    table = _summary_lines(records, list(fits))
    summary = ["# Prefill (TTFT) vs splitwise-sim's measured Llama-2-70B prefill", "", __doc__.split("\n\n", 1)[1].strip(), "",
               "`ttft_kernels_s`: the kernel tables alone (no fitted parameter: every row counts as held out).", "",
               *_fit_lines(fits), "", *table]
    write_atomic(out / "ttft.md", "\n".join(summary) + "\n")
    return table


def _range(rows: list[dict[str, object]], held_out: bool) -> str:
    ratios = [float(r["ratio"]) for r in rows if r["held_out"] is held_out]  # type: ignore[arg-type]
    return f"{min(ratios):.3f}..{max(ratios):.3f}" if ratios else "-"


def main(argv: list[str] | None = None) -> int:
    """Compare, write both files, print the summary; bad input: one line on stderr, exit 2."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splitwise", type=Path, required=True, help="splitwise-sim's data/perf_model.csv")
    ap.add_argument("--vidur", type=Path, required=True, help="the vidur data folder (profiling/compute/ and profiling/network/ under it)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        check_output_dir(args.out)
        table = write_ttft(args.out, compare_ttft(args.splitwise, args.vidur))
    except SplitLLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
