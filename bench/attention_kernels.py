"""The batched model's attention roofline against measured attention kernels.

Measured: a sample of vidur's ``attention.csv`` (Agrawal et al., "Vidur: A Large-Scale
Simulation Framework for LLM Inference", MLSys 2024; github.com/microsoft/vidur, MIT):
FlashAttention kernel times of Llama-2-7B on one A100 at tensor parallel 1, the median of
vidur's repeated runs, for decode (``batch_size`` sequences of one new token each over
``kv_cache_size`` cached tokens) and prefill (one prompt chunk of ``prefill_chunk_size``
tokens over ``kv_cache_size`` cached tokens). The sample, its provenance and the rule it
was drawn by are in ``bench/data/README.md``.

Predicted: the roofline that the bundled A100 Llama-2-7B profile carries
(``instances/profiles/a100-80gb_llama-2-7b.json``, ``batched.attention``), raw: no
engine's ``kernel_scale`` applied. One layer's attention of a batch is priced as the
batched model prices it (:mod:`splitllm.batched.iteration`): one ``floor_s`` for the
layer plus ``item_s(q, c)`` for each item, so::

    decode:  floor_s + batch x item_s(1, kv)
    prefill: floor_s + batch x item_s(chunk, kv)

The ratio is measured / model: above 1 the roofline is too fast (it under-prices the
kernel), below 1 too slow. An engine's costs scale every kernel time by its
``kernel_scale`` (vLLM's 0.876), which divides each ratio by that factor.

Run: ``python -m splitllm.bench.attention_kernels --out bench/results/attention``
(``--sample`` another file of the same columns); writes ``attention.csv`` and ``attention.md``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitllm.batched.iteration import AttentionModel
from splitllm.csvfile import dict_rows
from splitllm.errors import InputError, SplitLLMError, positive_number, whole_number
from splitllm.instances.bundled import bundled_profile
from splitllm.jsonio import write_atomic
from splitllm.outputs import check_output_dir

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "vidur_attention_a100_llama2_7b_sample.csv"
DEVICE, MODEL = "a100-80gb", "llama-2-7b"
SHAPE = {"n_embd": "4096", "n_q_head": "32", "n_kv_head": "32", "num_tensor_parallel_workers": "1"}
NEEDED = ("is_prefill", "batch_size", "prefill_chunk_size", "kv_cache_size",
          "time_stats.attn_decode.median", "time_stats.attn_prefill.median", *SHAPE)
COLUMNS = ("kind", "batch", "chunk", "kv", "measured_ms", "model_ms", "ratio")
#: Upper bounds of the ranges the summary groups rows by (inclusive).
BATCH_EDGES = (1, 8, 32, 128)
TOKEN_EDGES = (512, 2048, 4096)


@dataclass(frozen=True)
class Row:
    """One measured kernel and its model time (milliseconds)."""

    kind: str  # "decode" or "prefill"
    batch: int
    chunk: int  # new tokens per item: 1 for decode
    kv: int
    measured_ms: float
    model_ms: float

    @property
    def ratio(self) -> float:
        """Measured over model (above 1: the roofline is too fast)."""
        return self.measured_ms / self.model_ms


def bundled_attention() -> AttentionModel:
    """The raw attention roofline of the bundled A100 Llama-2-7B profile (no kernel scale)."""
    tables = bundled_profile(DEVICE, MODEL).batched
    if tables is None:
        raise InputError(f"{DEVICE}_{MODEL}", "the bundled profile has no batched section")
    return AttentionModel(**tables.attention)  # type: ignore[arg-type]


def model_ms(att: AttentionModel, batch: int, chunk: int, kv: int) -> float:
    """One layer's attention of ``batch`` items of ``chunk`` new tokens over ``kv`` cached
    ones, as the batched model prices it: the layer's floor plus each item's roofline."""
    return 1e3 * (att.floor_s + batch * float(att.item_s(chunk, kv)))


@dataclass(frozen=True)
class Kernel:
    """One sampled kernel: ``chunk`` new tokens per item (1 for decode), milliseconds measured."""

    kind: str
    batch: int
    chunk: int
    kv: int
    measured_ms: float


def read_sample(path: Path) -> list[Kernel]:
    """The sample's Llama-2-7B TP-1 kernels; a missing file or column, a row cut short or a
    figure out of range is refused in one line naming the file and line."""
    kernels = [_kernel(row, where) for where, row in dict_rows(path, NEEDED, "a sample of vidur's attention.csv")
               if all(row[k] == v for k, v in SHAPE.items())]
    if not kernels:
        raise InputError(str(path), "no Llama-2-7B tensor-parallel-1 rows")
    return kernels


def _kernel(row: dict[str, str], where: str) -> Kernel:
    prefill = row["is_prefill"].strip().lower() == "true"
    batch, kv = whole_number(f"{where}: batch_size", row["batch_size"]), whole_number(f"{where}: kv_cache_size", row["kv_cache_size"], 0)
    chunk = whole_number(f"{where}: prefill_chunk_size", row["prefill_chunk_size"]) if prefill else 1
    column = "time_stats.attn_prefill.median" if prefill else "time_stats.attn_decode.median"
    return Kernel("prefill" if prefill else "decode", batch, chunk, kv, positive_number(f"{where}: {column}", row[column], "ms"))


def compare(kernels: list[Kernel], att: AttentionModel) -> list[Row]:
    """Each sampled kernel against the model."""
    return [Row(k.kind, k.batch, k.chunk, k.kv, k.measured_ms, model_ms(att, k.batch, k.chunk, k.kv)) for k in kernels]


def _bucket(value: int, edges: tuple[int, ...], lo: int = 1) -> str:
    for hi in edges:
        if value <= hi:
            return f"{lo}" if lo == hi else f"{lo}-{hi}"
        lo = hi + 1
    return f">{edges[-1]}"


def group_of(row: Row) -> str:
    """The summary range of a row: batch and KV for decode, chunk and KV for prefill."""
    if row.kind == "decode":
        return f"batch {_bucket(row.batch, BATCH_EDGES)}, kv {_bucket(row.kv, TOKEN_EDGES, 0)}"
    return f"chunk {_bucket(row.chunk, TOKEN_EDGES)}, kv {_bucket(row.kv, TOKEN_EDGES, 0)}"


def _group_rank(row: Row) -> tuple[int, int]:
    """Where a row's range sorts: its first and its KV range's positions among the edges."""
    first = int(np.searchsorted(BATCH_EDGES if row.kind == "decode" else TOKEN_EDGES, row.batch if row.kind == "decode" else row.chunk))
    return first, int(np.searchsorted(TOKEN_EDGES, row.kv))


def stats(rows: list[Row]) -> dict[str, float]:
    """Rows, median and 10th/90th percentile ratios, shares within 10% and 25%."""
    r = np.asarray([row.ratio for row in rows])
    off = np.abs(r - 1.0)
    return {"rows": float(r.size), "median": float(np.median(r)), "p10": float(np.percentile(r, 10)),
            "p90": float(np.percentile(r, 90)), "within10": float(np.mean(off <= 0.10)),
            "within25": float(np.mean(off <= 0.25))}


def summary_table(rows: list[Row]) -> list[str]:
    """Markdown lines: one row per kind, then one per kind and range."""
    lines = ["| kind | range | n | median ratio | p10-p90 | within 10% | within 25% |", "|---|---|---|---|---|---|---|"]
    for kind in ("decode", "prefill"):
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        lines.append(_table_line(kind, "all", stats(mine)))
        for _, group in sorted({(_group_rank(r), group_of(r)) for r in mine}):
            lines.append(_table_line(kind, group, stats([r for r in mine if group_of(r) == group])))
    return lines


def _table_line(kind: str, group: str, s: dict[str, float]) -> str:
    return (f"| {kind} | {group} | {int(s['rows'])} | {s['median']:.2f} | {s['p10']:.2f}-{s['p90']:.2f} | "
            f"{s['within10']:.0%} | {s['within25']:.0%} |")


def to_csv(rows: list[Row]) -> str:
    """``attention.csv``'s text: one line per sampled kernel."""
    lines = [",".join(COLUMNS)]
    lines += [f"{r.kind},{r.batch},{r.chunk},{r.kv},{r.measured_ms:.6g},{r.model_ms:.6g},{r.ratio:.4f}" for r in rows]
    return "\n".join(lines) + "\n"


def to_markdown(rows: list[Row], att: AttentionModel, sample: Path) -> str:
    """``attention.md``'s text: method, provenance and the summary table."""
    doc = (__doc__ or "").split("\n\n")
    head = [
        "# Attention: the roofline against measured kernels", "",
        "\n\n".join(doc[1:4]), "",
        f"Sample: `{sample.name}` ({len(rows)} rows; provenance and sampling rule in "
        "`bench/data/README.md`). Roofline (raw, as the profile carries it): "
        f"{att.flops_per_s / 1e12:.1f} TFLOP/s, {att.bytes_per_s / 1e9:.0f} GB/s, floor {att.floor_s * 1e6:.0f} us.", "",
    ]
    return "\n".join(head + summary_table(rows) + ["", *findings(rows, att)]) + "\n"


def findings(rows: list[Row], att: AttentionModel) -> list[str]:
    """Where the roofline is fast or slow, and by how much, in words (one paragraph)."""
    def med(pick: list[Row]) -> float:
        return float(np.median([r.ratio for r in pick])) if pick else float("nan")

    dec = [r for r in rows if r.kind == "decode"]
    long_big = [r for r in dec if r.batch > 32 and r.kv > 512]
    short = [r for r in dec if r.kv <= 512]
    mid = [r for r in dec if 8 < r.batch <= 32 and r.kv > 512]
    pre = [r for r in rows if r.kind == "prefill"]
    least_us = 1e3 * min((r.measured_ms for r in dec), default=float("nan"))
    spread = f"{min(r.ratio for r in pre):.1f}-{max(r.ratio for r in pre):.1f}x" if pre else "-"
    return [
        f"Reading: decode of 9 or more sequences over more than 512 cached tokens: batch 9-32 median "
        f"{med(mid):.2f}, batch 33-128 median {med(long_big):.2f} (the roofline predicting "
        f"{1 / med(long_big):.2f}x the measured time: FlashAttention's decode streams the KV cache faster "
        f"than the {att.bytes_per_s / 1e12:.2f} TB/s fitted to the GEMMs). Decode over short contexts (at "
        f"most 512 tokens, median {med(short):.2f}) costs more than the roofline and its "
        f"{att.floor_s * 1e6:.0f} us floor: the least measured kernel takes {least_us:.0f} us. Prefill "
        f"chunks are {spread} slower than the roofline (median {med(pre):.2f}): the attention FLOPs run far "
        f"below the GEMMs' {att.flops_per_s / 1e12:.0f} TFLOP/s. The ratios are against the raw roofline; an "
        f"engine's `kernel_scale` multiplies every model time, which divides each ratio by that factor.",
    ]


def write_outputs(out: Path, rows: list[Row], att: AttentionModel, sample: Path) -> list[Path]:
    """Write ``attention.csv`` and ``attention.md`` under ``out`` (atomically)."""
    paths = [out / "attention.csv", out / "attention.md"]
    write_atomic(paths[0], to_csv(rows))
    write_atomic(paths[1], to_markdown(rows, att, sample))
    return paths


def main(argv: list[str] | None = None) -> int:
    """Compare, write both files, print the summary; bad input: one line on stderr, exit 2."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sample", type=Path, default=SAMPLE, help="the attention sample (default: the bundled one)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        check_output_dir(args.out)
        att = bundled_attention()
        rows = compare(read_sample(args.sample), att)
        write_outputs(args.out, rows, att, args.sample)
    except SplitLLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
