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
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitllm.batched.iteration import AttentionModel
from splitllm.errors import InputError, SplitLLMError
from splitllm.instances.bundled import bundled_profile
from splitllm.jsonio import write_atomic

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


def read_sample(path: Path) -> list[dict[str, str]]:
    """The sample's Llama-2-7B TP-1 rows; a missing file, column or field is refused in one line."""
    if not path.is_file():
        raise InputError(str(path), "no such file (expected a sample of vidur's attention.csv)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in NEEDED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(str(path), f"missing column(s) {', '.join(missing)}")
        rows = [row for row in reader if all(row[k] == v for k, v in SHAPE.items())]
    if not rows:
        raise InputError(str(path), "no Llama-2-7B tensor-parallel-1 rows")
    return rows


def compare(rows: list[dict[str, str]], att: AttentionModel) -> list[Row]:
    """Each sampled kernel against the model."""
    return [_compare_one(row, att) for row in rows]


def _compare_one(row: dict[str, str], att: AttentionModel) -> Row:
    prefill = row["is_prefill"].strip().lower() == "true"
    batch, kv = int(row["batch_size"]), int(row["kv_cache_size"])
    chunk = int(row["prefill_chunk_size"]) if prefill else 1
    measured = float(row["time_stats.attn_prefill.median" if prefill else "time_stats.attn_decode.median"])
    kind = "prefill" if prefill else "decode"
    return Row(kind, batch, chunk, kv, measured, model_ms(att, batch, chunk, kv))


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
        for group in sorted({group_of(r) for r in mine}, key=_group_order):
            lines.append(_table_line(kind, group, stats([r for r in mine if group_of(r) == group])))
    return lines


def _group_order(group: str) -> tuple[int, ...]:
    return tuple(int(part.split("-")[0].lstrip(">")) for part in group.replace(",", "").split()[1::2])


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
    return "\n".join(head + summary_table(rows) + ["", *findings(rows)]) + "\n"


def findings(rows: list[Row]) -> list[str]:
    """Where the roofline is fast or slow, and by how much, in words (one paragraph)."""
    def med(pick: list[Row]) -> str:
        return f"{np.median([r.ratio for r in pick]):.2f}" if pick else "-"

    dec = [r for r in rows if r.kind == "decode"]
    long_big = [r for r in dec if r.batch > 32 and r.kv > 512]
    short = [r for r in dec if r.kv <= 512]
    mid = [r for r in dec if 8 < r.batch <= 32 and r.kv > 512]
    pre = [r for r in rows if r.kind == "prefill"]
    return [
        f"Reading: decode of 9 or more sequences over more than 512 cached tokens is priced to within 25% "
        f"(batch 9-32: median {med(mid)}; batch 33-128: median {med(long_big)}, the roofline predicting about "
        f"1.2x the measured time: FlashAttention's "
        f"decode streams the KV cache faster than the 1.5 TB/s fitted to the GEMMs). Decode over short "
        f"contexts (at most 512 tokens, median {med(short)}) costs more than the roofline and its floor: a "
        f"kernel takes at least 9 us however little it reads. Prefill chunks are 2-7x slower than the "
        f"roofline (median {med(pre)}): the attention FLOPs run far below the GEMMs' 217 TFLOP/s, most "
        f"at short contexts. The ratios are against the raw roofline; vLLM's and TensorRT-LLM's "
        f"`kernel_scale` (0.876, 0.867) multiply every model time, which divides each ratio by that factor.",
    ]


def write_outputs(out: Path, rows: list[Row], att: AttentionModel, sample: Path) -> list[Path]:
    """Write ``attention.csv`` and ``attention.md`` under ``out`` (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
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
