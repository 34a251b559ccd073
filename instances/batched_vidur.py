"""Batched server tables (:class:`~splitllm.batched.BatchedCosts`) from vidur's measured kernel times.

vidur (Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference",
MLSys 2024; github.com/microsoft/vidur, MIT licence) publishes
``data/profiling/compute/<gpu>/<hf-model>/mlp.csv``: the median ms of every op of one
decoder layer except attention, for a batch of ``num_tokens`` tokens (1 to 4096), FP16.
From that table at tensor parallel 1, at every measured ``num_tokens``:

Above 4096 tokens each lin is the 4096-token value scaled in proportion to ``n``.

* ``embed`` lin = ``emb`` (measured);
* ``layer`` lin = ``input_layernorm + attn_pre_proj + attn_rope + attn_post_proj +
  post_attention_layernorm + mlp_up_proj + mlp_act + mlp_down_proj + 2 * add`` (measured);
* ``head`` lin = ``input_layernorm`` (measured, standing for the final norm) plus the LM-head
  GEMM and greedy sampling for ``n`` sampling tokens (**modelled**, roofline below);
* attention (**modelled**: vidur's ``attention.csv`` is not among the published tables we
  use) = ``max(FLOPs / F, bytes / B)`` per item, with F, B, and the per-kernel floor fitted
  to the measured GEMMs of the same table exactly as the batch-1 vidur importer does
  (B from the four GEMMs at one token, F the median over ``num_tokens >= 2048``).

Another memory bandwidth (``bandwidth_scale`` = target / measured peak bandwidth, e.g.
1555 / 2039 for an A100 40GB SXM4 against vidur's A100 80GB): the same SMs and clocks,
so compute-bound work is unchanged, but no kernel can beat its bytes over the new
bandwidth. A ``layer`` at ``n`` tokens becomes
``max(t(n), t(1) / s * (W + n a) / (W + a))`` with ``W`` its GEMM weight bytes and ``a``
the GEMMs' input and output bytes per token (at one token the measured layer is
weight-read bound); the LM head and attention use the roofline with ``B * s``.

Examples
--------
>>> import pathlib
>>> root = pathlib.Path("vidur")  # a checkout of vidur's data folder
>>> if root.exists():  # doctest: +SKIP
...     costs = vidur_batched(root, "a100", "llama-2-7b")
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from splitllm.batched import AttentionModel, BatchedCosts
from splitllm.errors import InputError
from splitllm.instances.models import ModelShape, get_shape
from splitllm.instances.roofline import Roofline
from splitllm.instances.vidur import CREDIT, FP16, GPUS, LAYER_OPS, MODELS, OpTable, csv_path, fit_roofline
from splitllm.profiles import X_MAX, BatchedTables, Curve

#: Device memory in bytes of vidur's GPUs (vidur's device_sku_config: A100 80GB, H100 80GB, A40 48GB).
MEMORY = {"a100": 80e9, "h100": 80e9, "a40": 48e9}


def head_seconds(n: float, vocab: int, hidden: int, roof: Roofline) -> float:
    """LM-head GEMM for ``n`` sampling tokens plus greedy sampling over float32 logits (modelled)."""
    params = vocab * hidden
    gemm = roof.time(2.0 * n * params, params * FP16 + n * (hidden * FP16 + vocab * 4.0))
    return gemm + roof.time(n * vocab, 4.0 * n * vocab)


def proportional_tail(points: list[list[float]]) -> Curve:
    """The measured points, then proportional to ``n`` above the largest measured count.

    Token-parallel work is linear in ``n`` at large ``n``; the last measured segment is
    too short (and noisy: vidur's top counts are 32 tokens apart) to extend.
    """
    n_last, y_last = points[-1]
    return Curve.from_points(points + [[X_MAX, y_last * X_MAX / n_last]])


def layer_bytes(shape: ModelShape, n: float) -> float:
    """Bytes one layer's GEMMs move at ``n`` tokens: weights once, inputs and outputs per token (FP16)."""
    per_token = 4 * shape.hidden + (shape.hidden + 2 * shape.kv_dim) + 3 * shape.ffn
    return (shape.layer_gemm_params() + n * per_token) * FP16


def batched_from_table(table: OpTable, gpu: str, model: str, bandwidth_scale: float = 1.0) -> BatchedCosts:
    """The tables of ``model`` on ``gpu`` from one parsed ``mlp.csv`` (see the module docstring)."""
    if not bandwidth_scale > 0:
        raise InputError("bandwidth_scale", f"must be > 0, got {bandwidth_scale}")
    shape = get_shape(model)
    measured = fit_roofline(table, shape)
    roof = Roofline(measured.flops_per_s, measured.bytes_per_s * bandwidth_scale, measured.floor_s)
    ns = [float(n) for n in table.tokens]
    ms = 1e-3
    one = table.layer_ms(1.0) * ms

    def layer_s(n: float) -> float:
        if bandwidth_scale == 1.0:
            return table.layer_ms(n) * ms
        floor = one / bandwidth_scale * layer_bytes(shape, n) / layer_bytes(shape, 1.0)
        return max(table.layer_ms(n) * ms, floor)

    embed = proportional_tail([[n, table.ms("emb", n) * ms] for n in ns])
    layer = proportional_tail([[n, layer_s(n)] for n in ns])
    head = proportional_tail(
        [[n, table.ms("input_layernorm", n) * ms + head_seconds(n, shape.vocab, shape.hidden, roof)] for n in ns]
    )
    attention = AttentionModel(roof.flops_per_s, roof.bytes_per_s, roof.floor_s, shape.hidden, shape.kv_dim, FP16)
    ops = " + ".join(f"{c} x {op}" if c > 1 else op for op, c in LAYER_OPS.items())
    provenance = (
        f"{GPUS[gpu][1]}, {model}, FP16, tensor parallel 1"
        + (f", memory bandwidth scaled by {bandwidth_scale:.4g}" if bandwidth_scale != 1.0 else "")
        + f". Measured: embed = emb; layer = {ops}; head norm = "
        "input_layernorm, at each measured num_tokens. Modelled (roofline fitted to the same table's GEMMs: "
        f"{roof.describe()}): attention per item, the LM-head GEMM and sampling. " + CREDIT.format(gpu=gpu, hf=MODELS[model])
    )
    return shape_costs(GPUS[gpu][0], shape, {"embed": embed, "layer": layer, "head": head}, attention, provenance, MEMORY[gpu])


def shape_costs(
    device: str, shape: ModelShape, lin: dict[str, Curve], attention: AttentionModel, provenance: str, memory_bytes: float
) -> BatchedCosts:
    """Batched costs of an FP16 model ``shape`` on ``device``: weights and KV per token from
    the shape, no engine overhead (the engine fits are added per profile)."""
    return BatchedCosts(
        device=device,
        model=shape.name,
        lin=lin,
        attention=attention,
        overhead_s=0.0,
        provenance=provenance,
        memory_bytes=memory_bytes,
        weight_bytes=float(shape.total_params()) * FP16,
        kv_bytes_per_token=float(shape.kv_bytes_per_token(FP16) * shape.n_layers),
    )


def vidur_batched(root: Path, gpu: str, model: str = "llama-2-7b", bandwidth_scale: float = 1.0) -> BatchedCosts:
    """Batched tables of ``model`` on vidur's ``gpu`` (``a100``, ``h100``, ``a40``) from the data under ``root``."""
    if gpu not in GPUS:
        raise InputError("gpu", f"unknown vidur GPU {gpu!r}; known: {', '.join(GPUS)}")
    if model not in MODELS:
        raise InputError("model", f"vidur has no {model!r}; known: {', '.join(MODELS)}")
    return batched_from_table(OpTable.read(csv_path(root, gpu, model)), gpu, model, bandwidth_scale)


def rescale_tables(tables: BatchedTables, model: str, bandwidth_scale: float) -> BatchedTables:
    """A profile's batched tables (built by :func:`batched_from_table` at the measured
    bandwidth) at ``bandwidth_scale`` times that bandwidth, as :func:`batched_from_table`
    would build them from the same ``mlp.csv``: each ``layer`` point raised to its bytes
    over the new bandwidth, the head's modelled LM-head GEMM and sampling and the
    attention roofline at the new bandwidth, the tail above the last measured count kept
    proportional. ``embed`` (and the head's norm) are unchanged.
    """
    if not bandwidth_scale > 0:
        raise InputError("bandwidth_scale", f"must be > 0, got {bandwidth_scale}")
    if bandwidth_scale == 1.0:
        return tables
    shape = get_shape(model)
    att = tables.attention
    old = Roofline(float(att["flops_per_s"]), float(att["bytes_per_s"]), float(att["floor_s"]))
    new = Roofline(old.flops_per_s, old.bytes_per_s * bandwidth_scale, old.floor_s)

    def measured(curve: Curve) -> list[list[float]]:
        return [[float(x), float(y)] for x, y in zip(curve.xs[:-1], curve.ys[:-1])]  # the last point is the tail

    layer = tables.lin["layer"]
    one = float(layer.value(1.0))
    lin = dict(tables.lin)
    lin["layer"] = proportional_tail(
        [[n, max(y, one / bandwidth_scale * layer_bytes(shape, n) / layer_bytes(shape, 1.0))] for n, y in measured(layer)]
    )
    lin["head"] = proportional_tail(
        [[n, y - head_seconds(n, shape.vocab, shape.hidden, old) + head_seconds(n, shape.vocab, shape.hidden, new)]
         for n, y in measured(tables.lin["head"])]
    )  # fmt: skip
    attention = {**att, "bytes_per_s": new.bytes_per_s}
    provenance = tables.provenance + f" Memory bandwidth scaled by {bandwidth_scale:.4g}."
    return replace(tables, lin=lin, attention=attention, provenance=provenance)
