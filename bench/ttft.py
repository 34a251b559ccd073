"""Prefill (time to first token) of the kernel tables against measured whole-model prefill.

Measured: splitwise-sim's ``data/perf_model.csv`` (Patel et al., "Splitwise: Efficient
Generative LLM Inference Using Phase Splitting", ISCA 2024; github.com/Mutinifni/splitwise-sim,
MIT): ``prompt_time`` (ms, the whole prefill of the batch) of Llama-2-70B on DGX-A100 and
DGX-H100 at tensor parallel 2, 4 and 8; the batch-1 rows (one prompt of 128..8192 tokens),
the median of the repeated runs of each configuration. It is the only measured
whole-model prefill time in the data at hand (LLM-Inference-Bench's rows give end-to-end
latency only).

Predicted from vidur's measured kernel tables (Agrawal et al., MLSys 2024, MIT) as the
batched model prices a prompt: per layer, ``mlp.csv``'s ops at ``n`` tokens at the same
tensor-parallel degree (one GPU's shard), the prompt's causal attention by the roofline
fitted to the TP-1 GEMMs (its heads split over the GPUs), and two all-reduces of the
``n x hidden`` FP16 activations from vidur's measured NCCL ``all_reduce.csv`` (DGX, all
GPUs in one node); times 80 layers. Beyond the tables (4096 tokens, 64 MiB messages) the
GEMMs grow in proportion to ``n`` and an all-reduce at its largest message's bandwidth. Embedding and LM head are left out (under 1%).

One scale per GPU and one per-prefill overhead per (GPU, TP degree) (``measured = scale x
predicted + overhead_tp``: engine and communication setup the kernel sums lack) are fitted
by least squares on the relative error of the rows of :data:`FIT_PROMPTS` tokens; the other
prompt lengths are held out. Run: ``python -m splitllm.bench.ttft --splitwise perf_model.csv
--vidur VIDUR_DATA --out DIR``, or ``splitllm fidelity ... --splitwise perf_model.csv``,
which writes the same ``ttft.csv`` and ``ttft.md`` beside its own figures.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitllm.errors import InputError, positive_number
from splitllm.instances.models import get_shape
from splitllm.instances.vidur import OpTable, csv_path, fit_roofline
from splitllm.jsonio import write_atomic

HARDWARE = {"a100-80gb": ("a100", "a100_dgx"), "h100-80gb": ("h100", "h100_dgx")}
MODEL = "llama-2-70b"
#: Prompt lengths whose rows fit the scale and overheads; the others are held out.
FIT_PROMPTS = (512, 2048)
MEASURED_COLUMNS = ("model", "hardware", "batch_size", "tensor_parallel", "prompt_size", "prompt_time")
COLUMNS = ("hardware", "tensor_parallel", "prompt_tokens", "runs", "metric", "measured", "predicted", "ratio", "held_out")


def measured_prefill(path: Path) -> dict[tuple[str, int, int], list[float]]:
    """Batch-1 Llama-2-70B prefill times (s) by (hardware, TP, prompt tokens).

    A missing column, a row cut short or a figure that is not a finite positive number is
    refused in one line naming the file and line; a file without such rows too.
    """
    if not path.is_file():
        raise InputError(str(path), "no such file (expected splitwise-sim's data/perf_model.csv)")
    runs: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in MEASURED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(str(path), f"missing column(s) {', '.join(missing)}")
            for row in reader:
                where = f"{path}: line {reader.line_num}"
                if None in row.values():
                    raise InputError(where, "has fewer fields than the header (a truncated file?)")
                if row["model"] == "llama2-70b" and row["hardware"] in HARDWARE and row["batch_size"] == "1":
                    tp, prompt = (_whole(f"{where}: {c}", row[c]) for c in ("tensor_parallel", "prompt_size"))
                    seconds = positive_number(f"{where}: prompt_time", row["prompt_time"], "ms") * 1e-3
                    runs[(row["hardware"], tp, prompt)].append(seconds)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"not a readable CSV file ({exc})") from None
    if not runs:
        raise InputError(str(path), "no batch-1 llama2-70b rows on a100-80gb or h100-80gb")
    return runs


def _whole(where: str, text: str) -> int:
    value = positive_number(where, text)
    if value != int(value):
        raise InputError(where, f"must be a whole number > 0, got {text!r}")
    return int(value)


def all_reduce_s(path: Path, workers: int, size: float) -> float:
    """vidur's median all-reduce of ``size`` bytes over ``workers`` GPUs of one node (linear in size)."""
    sizes, ms = [], []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["num_workers"]) == workers and int(row["devices_per_node"]) == workers:
                sizes.append(float(row["size"]))
                ms.append(float(row["time_stats.all_reduce.median"]))
    order = np.argsort(sizes)
    xs, ys = np.asarray(sizes)[order], np.asarray(ms)[order]
    if size > xs[-1]:  # beyond the table (64 MiB): the largest message's bandwidth
        return float(ys[-1] * size / xs[-1]) * 1e-3
    return float(np.interp(size, xs, ys)) * 1e-3


def predicted_prefill(vidur: Path, hardware: str, tp: int, n: int) -> float:
    """Seconds of one ``n``-token prompt of Llama-2-70B at tensor parallel ``tp`` (see the module docstring)."""
    gpu, node = HARDWARE[hardware]
    shape = get_shape(MODEL)
    table = OpTable.read(csv_path(vidur, gpu, MODEL), tp)
    roof = fit_roofline(OpTable.read(csv_path(vidur, gpu, MODEL)), shape)
    attention = roof.time(shape.attention_flops(n) / tp, 0.0)
    reduce = 2 * all_reduce_s(vidur / "profiling" / "network" / node / "all_reduce.csv", tp, n * shape.hidden * 2.0) if tp > 1 else 0.0
    n_max = float(table.tokens[-1])  # beyond vidur's 4096 tokens: proportional to n
    layer = table.layer_ms(min(n, n_max)) * max(1.0, n / n_max) * 1e-3
    return shape.n_layers * (layer + attention + reduce)


def fit(rows: list[tuple[int, float, float]]) -> tuple[float, dict[int, float]]:
    """(scale, overhead by TP) minimising the relative error of ``measured ~ scale x predicted
    + overhead[tp]`` over ``rows`` of (tp, predicted, measured)."""
    tps = sorted({tp for tp, _, _ in rows})
    a = np.array([[p / m] + [float(tp == t) / m for t in tps] for tp, p, m in rows])
    coef, *_ = np.linalg.lstsq(a, np.ones(len(rows)), rcond=None)
    return float(coef[0]), {t: float(c) for t, c in zip(tps, coef[1:])}


@dataclass(frozen=True)
class TtftComparison:
    """Every compared figure (dicts with :data:`COLUMNS`) and the fit per hardware."""

    records: list[dict[str, object]]
    fits: dict[str, dict[str, object]]

    def worst_held_out(self) -> float:
        """The largest held-out relative error of ``ttft_s``."""
        return max((abs(float(r["ratio"]) - 1) for r in self.records if r["metric"] == "ttft_s" and r["held_out"]), default=0.0)  # type: ignore[arg-type]


def compare_ttft(splitwise: Path, vidur: Path) -> TtftComparison:
    """Measured against predicted prefill for every configuration (see the module docstring)."""
    runs = measured_prefill(splitwise)
    records: list[dict[str, object]] = []
    fits: dict[str, dict[str, object]] = {}
    for hardware in HARDWARE:
        keys = sorted(k for k in runs if k[0] == hardware)
        if not keys:
            continue
        pred = {k: predicted_prefill(vidur, *k) for k in keys}
        meas = {k: float(np.median(runs[k])) for k in keys}
        fitted = [k for k in keys if k[2] in FIT_PROMPTS]
        if not fitted:
            raise InputError(str(splitwise), f"no {hardware} rows of {' or '.join(map(str, FIT_PROMPTS))} prompt tokens to fit on")
        scale, overhead = fit([(k[1], pred[k], meas[k]) for k in fitted])
        fits[hardware] = {"scale": scale, "overhead_s": overhead, "fit_rows": len(fitted)}
        for k in keys:
            p, m = pred[k], meas[k]
            # a TP degree without rows to fit gets no overhead (its rows then show what that costs)
            for metric, value in (("ttft_kernels_s", p), ("ttft_s", scale * p + overhead.get(k[1], 0.0))):
                records.append({"hardware": hardware, "tensor_parallel": k[1], "prompt_tokens": k[2], "runs": len(runs[k]),
                                "metric": metric, "measured": f"{m:.6g}", "predicted": f"{value:.6g}",
                                "ratio": f"{value / m:.4g}", "held_out": k[2] not in FIT_PROMPTS})
    return TtftComparison(records, fits)


def write_ttft(out: Path, comparison: TtftComparison) -> list[str]:
    """Write ``ttft.csv`` and ``ttft.md`` under ``out``; returns the summary table's lines."""
    records, fits = comparison.records, comparison.fits
    out.mkdir(parents=True, exist_ok=True)
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in records]
    write_atomic(out / "ttft.csv", "\n".join(lines) + "\n")
    summary = ["# Prefill (TTFT) vs splitwise-sim's measured Llama-2-70B prefill", "", __doc__.split("\n\n", 1)[1].strip(), "",
               "`ttft_kernels_s`: the kernel tables alone (no fitted parameter); `ttft_s`: with the fit below.", "",
               "| hardware | scale | overhead by TP (ms) | fit rows |", "|---|---|---|---|"]
    summary += [f"| {h} | {f['scale']:.3f} | {', '.join(f'TP {t}: {o * 1e3:.1f}' for t, o in f['overhead_s'].items())} "  # type: ignore[attr-defined]
                f"| {f['fit_rows']} |" for h, f in fits.items()]
    table = ["| hardware | metric | rows | within 10% | held-out ratios (min..max) | fitted ratios (min..max) |", "|---|---|---|---|---|---|"]
    for hardware in fits:
        for metric in ("ttft_kernels_s", "ttft_s"):
            rows = [r for r in records if r["hardware"] == hardware and r["metric"] == metric]
            within = sum(abs(float(r["ratio"]) - 1) <= 0.10 for r in rows)  # type: ignore[arg-type]
            table.append(f"| {hardware} | {metric} | {len(rows)} | {within} | {_range(rows, True)} | {_range(rows, False)} |")
    write_atomic(out / "ttft.md", "\n".join([*summary, "", *table]) + "\n")
    return table


def _range(rows: list[dict[str, object]], held_out: bool) -> str:
    ratios = [float(r["ratio"]) for r in rows if r["held_out"] is held_out]  # type: ignore[arg-type]
    return f"{min(ratios):.3f}..{max(ratios):.3f}" if ratios else "-"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splitwise", type=Path, required=True, help="splitwise-sim's data/perf_model.csv")
    ap.add_argument("--vidur", type=Path, required=True, help="the vidur data folder (profiling/compute/ and profiling/network/ under it)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    print("\n".join(write_ttft(args.out, compare_ttft(args.splitwise, args.vidur))))


if __name__ == "__main__":
    main()
