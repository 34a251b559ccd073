"""Batched server tables (profile format version 2) from Helix's per-batch-size layer times.

Helix (Mei et al., "Helix: Serving LLMs over Heterogeneous GPUs and Network via Max-Flow",
ASPLOS 2025; github.com/Thesys-lab/Helix-ASPLOS25, Apache-2.0) measured with vLLM, per
model and GPU, ``decode_bs2time.csv``: the ms of ONE whole decoder layer (GEMMs, norms and
attention together) for a decode batch of ``n`` sequences, each at Helix's profiled context
(prompts of 750 and outputs of 240 tokens: about :data:`~splitllm.instances.helix.PROFILED_CONTEXT`
= 870 cached tokens), at ``n`` = 2, 4, ... up to 500-800. From it:

* ``layer`` lin(n) = Helix's per-layer decode time at batch ``n`` (**measured**, made
  non-decreasing by isotonic least squares, because the rounded values sometimes fall:
  where they fall the adjacent points are replaced by their mean), with the attention of
  ``n`` items at the profiled context **folded in**. Below batch 2 (not measured) it is the
  batch-2 value; above the largest measured batch it is proportional to ``n``.
* attention per item (**modelled**): only the part that grows with context beyond the
  folded one (``folded_context`` = the profiled context): KV-cache reads of the cached
  tokens beyond it, and a prefill chunk's own causal attention, by the batch-1 Helix
  profile's roofline (bytes/s implied by one layer's weights over its one-token time,
  FLOP/s from the longest measured prompt). A shorter context is charged as the profiled
  one (lin cannot give time back). No per-block attention floor: lin holds the kernels.
* ``embed`` lin(n) (**modelled**: Helix has no embed table) = the batch-1 profile's embed
  formula (a roofline gather of ``n`` rows) at ``n`` tokens.
* ``head`` lin(n) (**modelled**: Helix has no head table) = the batch-1 profile's final
  norm for ``n`` tokens plus the LM-head GEMM and greedy sampling for ``n`` sampling
  tokens, by the same roofline.

* ``layer`` prefill_lin(n) (**measured**, fitted) = the batch-1 profile's layer prefill
  curve: Helix's ``prompt_bs2time.csv`` (one whole layer, a prompt of ``n`` tokens,
  its causal attention included) fitted by a non-negative quadratic, never below one
  decode step. Prefill tokens are priced on it, decode tokens on ``lin`` (a block holding
  both costs the larger), so one prompt costs what the batch-1 profile says, not ``n``
  decoding sequences.

The only engine is ``vllm``, with ``overhead_s`` 0 and ``kernel_scale`` 1: Helix's times
are vLLM measurements, so vLLM's per-iteration cost is already inside them. There is no
TensorRT-LLM figure.

Examples
--------
>>> isotonic([1.0, 3.0, 2.0, 4.0])
[1.0, 2.5, 2.5, 4.0]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy.optimize import isotonic_regression

from splitllm.batched import AttentionModel, BatchedCosts, tables_from_costs
from splitllm.errors import InputError
from splitllm.instances.batched_vidur import head_seconds, proportional_tail, shape_costs
from splitllm.instances.helix import (
    CREDIT, FP16, GPUS, MODELS, PROFILED_CONTEXT, helix_kinds, import_helix, read_xy,
)
from splitllm.instances.models import get_shape
from splitllm.instances.roofline import sig
from splitllm.profiles import Profile

#: Nominal device memory in bytes of Helix's GCP GPUs.
MEMORY = {"a100": 40e9, "v100": 16e9, "l4": 24e9, "t4": 16e9}
#: Token counts at which the modelled embed and head lins are tabulated.
MODELLED_GRID = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: The engines of a Helix batched section: vLLM, whose overhead is inside the measured times.
ENGINES = {"vllm": {"overhead_s": 0.0, "overhead_per_seq_s": 0.0, "kernel_scale": 1.0}}
ENGINE_NOTE = (
    " Engines: vllm only, overhead_s 0, overhead_per_seq_s 0, kernel_scale 1: Helix's per-layer times are vLLM "
    "measurements, so vLLM's per-iteration cost (scheduling, launches, sampling) is already inside them, spread "
    "over the layers; no TensorRT-LLM figure exists for these GPUs."
)


def isotonic(ys: list[float] | np.ndarray) -> list[float]:
    """The non-decreasing least-squares fit of ``ys`` (equal weights;
    ``scipy.optimize.isotonic_regression``, pool adjacent violators)."""
    return [float(y) for y in isotonic_regression(np.asarray(ys, dtype=float), increasing=True).x]


def helix_batched(root: Path, folder: str, gpu: str) -> BatchedCosts:
    """The batched tables of Helix's model ``folder`` on ``gpu`` (see the module docstring)."""
    if folder not in MODELS or gpu not in GPUS:
        raise InputError("helix", f"unknown model/GPU {folder}/{gpu}; known: {', '.join(MODELS)} x {', '.join(GPUS)}")
    shape = get_shape(MODELS[folder])
    base = Path(root) / folder / gpu
    prompt, decode = read_xy(base / "prompt_bs2time.csv"), read_xy(base / "decode_bs2time.csv")
    kinds, roof = helix_kinds(shape, prompt, decode)
    batch, step_ms = decode
    smooth_ms = isotonic(step_ms)
    layer = proportional_tail([[float(n), round(float(y) * 1e-3, 12)] for n, y in zip(batch, smooth_ms)])
    grid = [float(n) for n in MODELLED_GRID]
    embed = proportional_tail([[n, sig(roof.time(0.0, 2 * n * shape.hidden * FP16))] for n in grid])
    norm = lambda n: roof.time(8.0 * n * shape.hidden, 2 * n * shape.hidden * FP16)  # noqa: E731
    head = proportional_tail([[n, sig(norm(n) + head_seconds(n, shape.vocab, shape.hidden, roof))] for n in grid])
    attention = AttentionModel(roof.flops_per_s, roof.bytes_per_s, 0.0, shape.hidden, shape.kv_dim, FP16,
                               folded_context=float(PROFILED_CONTEXT))
    pooled = int(np.sum(np.abs(np.asarray(smooth_ms) - step_ms) > 1e-12))
    n_cmp = float(batch[-1])
    prompt_ms = float(np.interp(n_cmp, *prompt))
    lin_ms = float(layer.value(n_cmp)) * 1e3
    device, description = GPUS[gpu]
    provenance = (
        f"{description}, {shape.name} ({shape.hf_id}), FP16, batched iteration tables. Measured (Helix, vLLM "
        "per-layer profiling, values rounded): layer lin(n) = one whole decoder layer's decode time at batch n "
        f"(batch {int(batch[0])}..{int(batch[-1])}), attention of n items at Helix's profiled context of about "
        f"{PROFILED_CONTEXT} tokens folded in (attention.folded_context = {PROFILED_CONTEXT}); made non-decreasing "
        f"by isotonic least squares ({pooled} of {len(batch)} points replaced by the mean of a falling run); flat below "
        f"batch {int(batch[0])}, proportional to n above batch {int(batch[-1])}. Modelled: attention per item only "
        f"beyond the folded context, by the batch-1 profile's roofline ({roof.describe()}; no per-block floor: lin "
        "holds the kernels); embed lin = the batch-1 profile's embed (roofline gather); head lin = final norm + "
        "LM-head GEMM + greedy sampling for n sampling tokens, same roofline (Helix has no embed or head table). "
        "Prefill tokens are priced on prefill_lin.layer = the batch-1 profile's layer prefill curve (Helix's prompt "
        "table, one whole layer with the prompt's attention, fitted by a non-negative quadratic, never below one "
        f"decode step), decode tokens on lin: at {n_cmp:g} tokens Helix's prompt table gives {prompt_ms:.3g} ms per "
        f"layer (linear between its points), the decode lin {lin_ms:.3g} ms. Device memory nominal. "
        + CREDIT.format(folder=folder, gpu=gpu)
    )
    costs = shape_costs(device, shape, {"embed": embed, "layer": layer, "head": head}, attention, provenance, MEMORY[gpu])
    return dataclasses.replace(costs, prefill_lin={"layer": kinds["layer"].prefill})


def with_batched(profile: Profile, root: Path) -> Profile:
    """The batch-1 Helix ``profile`` with its batched section (engine: vllm, see above)."""
    folder = next(f for f, m in MODELS.items() if m == profile.model)
    gpu = next(g for g, (device, _) in GPUS.items() if device == profile.device)
    costs = helix_batched(root, folder, gpu)
    tables = tables_from_costs(dataclasses.replace(costs, provenance=costs.provenance + ENGINE_NOTE), ENGINES)
    return dataclasses.replace(profile, batched=tables)


def import_helix_batched(root: Path) -> list[Profile]:
    """Every Helix profile under ``root``, each with its batched section."""
    return [with_batched(p, root) for p in import_helix(root)]


def layer_points(root: Path, folder: str, gpu: str) -> tuple[np.ndarray, np.ndarray]:
    """Helix's measured decode points of one layer in seconds: (batch sizes, raw times)."""
    batch, ms = read_xy(Path(root) / folder / gpu / "decode_bs2time.csv")
    return batch, ms * 1e-3

