"""Server profiles from vidur's measured per-operation GPU kernel times.

vidur (Agrawal et al., MLSys 2024; github.com/microsoft/vidur, MIT licence) publishes
``data/profiling/compute/<gpu>/<hf-model>/mlp.csv``: the median time in ms of every
operation of one decoder layer except attention, for a batch of ``num_tokens`` tokens, in
FP16. This module turns one such table (tensor parallel degree 1) into a profile:

* ``layer`` = the measured ops (input norm, QKV GEMM, RoPE, output GEMM, post-attention
  norm, MLP GEMMs, activation, residual add counted twice) plus **modelled** attention,
* ``embed`` = the measured ``emb`` op,
* ``head`` = the measured norm (``input_layernorm``) plus a **modelled** LM-head GEMM for
  the last token and greedy sampling.

The model of what vidur does not measure is a :class:`~splitllm.instances.roofline.Roofline`
fitted to the measured GEMMs of the same table: bytes/s from the four GEMMs at one token
(memory-bound: their weights over their time), FLOP/s as the median over ``num_tokens >=
2048`` of their FLOPs over their time, and a floor of the fastest op measured at one token.

Examples
--------
>>> import pathlib
>>> root = pathlib.Path("vidur")  # a checkout of the public vidur repository's data folder
>>> if root.exists():  # doctest: +SKIP
...     profile = vidur_profile(root, "a100", "llama-2-7b")
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

from splitllm.csvfile import dict_rows
from splitllm.errors import InputError, positive_number, whole_number
from splitllm.instances.models import ModelShape, get_shape
from splitllm.instances.roofline import Roofline, attention_decode_s, attention_prefill_s, lm_head_s, sampling_s, sig
from splitllm.profiles import Curve, KindCosts, Profile

#: vidur's GPU folder -> our device name and description.
GPUS = {"a100": ("a100-80gb", "NVIDIA A100 80GB"), "h100": ("h100-80gb", "NVIDIA H100 80GB"), "a40": ("a40", "NVIDIA A40 48GB")}
#: Our model name -> vidur's Hugging Face folder.
MODELS = {"llama-2-7b": "meta-llama/Llama-2-7b-hf", "llama-2-70b": "meta-llama/Llama-2-70b-hf", "phi-2": "microsoft/phi-2"}
GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
#: Ops of one layer, with how many times each runs (two residual adds per layer).
LAYER_OPS = {
    "input_layernorm": 1, "attn_pre_proj": 1, "attn_rope": 1, "attn_post_proj": 1,
    "post_attention_layernorm": 1, "mlp_up_proj": 1, "mlp_act": 1, "mlp_down_proj": 1, "add": 2,
}  # fmt: skip
PREFILL_GRID = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 2560, 3072, 3584, 4096)
DECODE_GRID = (1, 128, 256, 512, 1024, 2048, 3072, 4096)
FP16 = 2
CREDIT = (
    "Data: vidur (Agrawal et al., 'Vidur: A Large-Scale Simulation Framework for LLM Inference', MLSys 2024), "
    "github.com/microsoft/vidur commit 7d47513363ec447a741ac5e47241580b47724fbf, "
    "data/profiling/compute/{gpu}/{hf}/mlp.csv, MIT licence, (c) Microsoft Corporation."
)


class OpTable:
    """Median ms of each op at each ``num_tokens`` of one ``mlp.csv`` (TP = 1 unless ``read`` is given another).

    Duplicate rows (vidur's file repeats 2048 and 4096 tokens) are averaged.
    """

    def __init__(self, tokens: np.ndarray, ops: dict[str, np.ndarray]) -> None:
        self.tokens = tokens
        self.ops = ops

    @classmethod
    def read(cls, path: Path, tensor_parallel: int = 1) -> OpTable:
        samples = _samples(path, tensor_parallel)
        missing = sorted(op for op in GEMMS if not any(name == op for name, _ in samples))  # others may be absent (phi-2)
        if missing:
            raise InputError(str(path), f"no time_stats.<op>.median for {', '.join(missing)} at {tensor_parallel} tensor-parallel worker(s)")
        tokens = np.array(sorted({n for _, n in samples}), dtype=float)
        names = sorted({op for op, _ in samples})
        ops = {op: np.array([np.mean(samples[(op, int(n))]) for n in tokens]) for op in names}
        return cls(tokens, ops)

    def ms(self, op: str, n: float) -> float:
        """Median ms of ``op`` at ``n`` tokens (linear between measured counts; 0 if absent)."""
        if op not in self.ops:
            return 0.0
        return float(np.interp(n, self.tokens, self.ops[op]))

    def layer_ms(self, n: float) -> float:
        """Measured part of one layer at ``n`` tokens."""
        return sum(count * self.ms(op, n) for op, count in LAYER_OPS.items())

    def gemm_ms(self, n: float) -> float:
        return sum(self.ms(op, n) for op in GEMMS)


def _samples(path: Path, tensor_parallel: int = 1) -> dict[tuple[str, int], list[float]]:
    """Every ``time_stats.<op>.median`` of the rows at ``tensor_parallel`` workers, by (op,
    tokens); a row cut short or a time that is not a finite number > 0 is refused, naming
    its line (a zero would divide, a NaN pass every comparison)."""
    samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    for where, row in dict_rows(path, ("num_tensor_parallel_workers", "num_tokens"), "vidur's mlp.csv"):
        if row["num_tensor_parallel_workers"] != str(tensor_parallel):
            continue
        n = whole_number(f"{where}: num_tokens", row["num_tokens"])
        for key, value in row.items():
            if key.startswith("time_stats.") and key.endswith(".median"):
                samples[(key.split(".")[1], n)].append(positive_number(f"{where}: {key}", value, "ms"))
    return samples


def fit_roofline(table: OpTable, shape: ModelShape) -> Roofline:
    """Achieved FLOP/s and bytes/s of the measured GEMMs; floor = fastest op at one token."""
    params = shape.layer_gemm_params()
    bytes_per_s = params * FP16 / (table.gemm_ms(1) * 1e-3)
    big = table.tokens[table.tokens >= 2048]
    flops_per_s = float(np.median([2.0 * n * params / (table.gemm_ms(n) * 1e-3) for n in big]))
    floor_s = min(table.ms(op, 1) for op in table.ops) * 1e-3
    return Roofline(flops_per_s, bytes_per_s, floor_s)


def vidur_kinds(table: OpTable, shape: ModelShape, roof: Roofline) -> dict[str, KindCosts]:
    """Curves of ``embed``, ``layer`` and ``head`` in seconds (see the module docstring)."""
    prefill = [n for n in PREFILL_GRID if n <= shape.max_context]
    decode = [c for c in DECODE_GRID if c <= shape.max_context]
    head_1 = lm_head_s(shape, FP16, roof) + sampling_s(shape, roof)

    def layer_prefill(n: int) -> float:
        return table.layer_ms(n) * 1e-3 + attention_prefill_s(shape, n, FP16, roof)

    def layer_decode(c: int) -> float:
        return table.layer_ms(1) * 1e-3 + attention_decode_s(shape, c, FP16, roof)

    def curve(xs: list[int], f) -> Curve:  # type: ignore[no-untyped-def]
        return Curve.from_points([[x, sig(f(x))] for x in xs])

    return {
        "embed": KindCosts(curve(prefill, lambda n: table.ms("emb", n) * 1e-3), curve([1], lambda c: table.ms("emb", 1) * 1e-3)),
        "layer": KindCosts(curve(prefill, layer_prefill), curve(decode, layer_decode)),
        "head": KindCosts(
            curve(prefill, lambda n: table.ms("input_layernorm", n) * 1e-3 + head_1),
            curve([1], lambda c: table.ms("input_layernorm", 1) * 1e-3 + head_1),
        ),
    }


def csv_path(root: Path, gpu: str, model: str) -> Path:
    """Where vidur keeps the table of ``gpu`` and ``model`` below ``root`` (its ``data`` or our copy)."""
    return Path(root) / "profiling" / "compute" / gpu / MODELS[model] / "mlp.csv"


def vidur_profile(root: Path, gpu: str, model: str) -> Profile:
    """The profile of ``model`` on vidur's ``gpu`` (``a100``, ``h100``, ``a40``) from the tables under ``root``."""
    if gpu not in GPUS:
        raise InputError("gpu", f"unknown vidur GPU {gpu!r}; known: {', '.join(GPUS)}")
    if model not in MODELS:
        raise InputError("model", f"vidur has no {model!r}; known: {', '.join(MODELS)}")
    shape = get_shape(model)
    table = OpTable.read(csv_path(root, gpu, model))
    roof = fit_roofline(table, shape)
    device, description = GPUS[gpu]
    provenance = (
        f"{description}, {model} ({shape.hf_id}), FP16, batch 1, tensor parallel 1 (one GPU; a profile gives time, "
        "not memory: Llama-2-70B needs several GPUs to hold its weights, and TP all-reduce is not included). "
        "Measured (vidur, CUDA kernel timings, median of 20 steps after 2 warm-up): every op of one decoder layer "
        "except attention, the token embedding, and the norm used for the head's final norm. "
        f"Modelled, not measured: attention (prefill: causal QK^T and PV FLOPs; decode: reading the KV cache) "
        "and the head's LM-head GEMM (last token only) plus greedy sampling, as floor + max(FLOPs / F, bytes / B) "
        f"with F, B fitted to the measured GEMMs of this table ({roof.describe()}). Prefill of n tokens = the ops at "
        "num_tokens = n; decode at any context = the ops at num_tokens = 1 plus modelled attention. "
        f"Imported by `splitllm profiles import vidur` on {date.today().isoformat()}. "
        + CREDIT.format(gpu=gpu, hf=MODELS[model])
    )
    return Profile(device, model, "float16", 1, "measured", provenance, vidur_kinds(table, shape, roof))


def import_vidur(root: Path) -> list[Profile]:
    """Every (GPU, model) profile whose table exists under ``root``; none found raises :class:`InputError`."""
    found = [(g, m) for g in GPUS for m in MODELS if csv_path(root, g, m).is_file()]
    if not found:
        raise InputError(str(root), "no vidur table found (expected profiling/compute/<gpu>/<org>/<model>/mlp.csv)")
    return [vidur_profile(root, g, m) for g, m in found]
