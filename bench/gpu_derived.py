"""Server-GPU profiles of GPT-2 and BERT-base, derived from the same GPU's measured Llama-2-7B ops.

No public table measures GPT-2 or BERT on a server GPU. vidur measured every op of a
Llama-2-7B layer on the A100 (``mlp.csv``); from it we take

* the GPU's achieved GEMM efficiency: the roofline ``F`` (FLOP/s), ``B`` (bytes/s) and
  per-kernel floor that :func:`splitllm.instances.vidur.fit_roofline` fits to the
  measured GEMMs; each GEMM group of the target model costs ``floor + max(FLOPs / F,
  bytes / B)``, attention, the LM head (last token only) and sampling likewise
  (:mod:`splitllm.instances.roofline`);
* the measured non-GEMM ops of the layer (norms, rotary embedding, activation, residual
  adds) and the embedding lookup: at one token these are launch-bound and kept as
  measured; above that their growth is scaled by ``hidden / 4096`` (they are
  element-wise over ``tokens x hidden``).

The result is marked ``"source": "derived"`` with this method in its provenance. GPT-2
has no rotary embedding and a GELU instead of a gated SiLU, so the borrowed element-wise
ops are an approximation of the same order; fused or graph-captured serving would be
faster still at small token counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from splitllm.instances.models import ModelShape, get_shape
from splitllm.instances.roofline import Roofline, attention_decode_s, attention_prefill_s, lm_head_s, sampling_s, sig
from splitllm.instances.vidur import CREDIT, GPUS, MODELS, OpTable, csv_path, fit_roofline
from splitllm.profiles import Curve, KindCosts, Profile

REFERENCE = "llama-2-7b"
FP16 = 2
NON_GEMM = {"input_layernorm": 1, "attn_rope": 1, "post_attention_layernorm": 1, "mlp_act": 1, "add": 2}
PREFILL_GRID = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024)
DECODE_GRID = (1, 128, 256, 512, 1024)


def _scaled(table: OpTable, op: str, n: float, ratio: float) -> float:
    """Seconds of a measured element-wise op at ``n`` tokens, its growth scaled by ``ratio``."""
    one = table.ms(op, 1)
    return (one + (table.ms(op, n) - one) * ratio) * 1e-3


def _curve(xs: tuple[int, ...], f: Callable[[int], float], limit: int) -> Curve:
    return Curve.from_points([[x, sig(f(x))] for x in xs if x <= limit])


def derived_kinds(shape: ModelShape, table: OpTable, roof: Roofline) -> dict[str, KindCosts]:
    """Curves of ``embed``, ``layer`` and ``head`` of ``shape`` (see the module docstring)."""
    ratio = shape.hidden / get_shape(REFERENCE).hidden
    gemm_flops, layer_bytes = 2.0 * shape.layer_gemm_params(), shape.layer_params() * FP16

    def elementwise(n: int) -> float:
        return sum(count * _scaled(table, op, n, ratio) for op, count in NON_GEMM.items())

    def layer_prefill(n: int) -> float:
        return roof.time(n * gemm_flops, layer_bytes) + attention_prefill_s(shape, n, FP16, roof) + elementwise(n)

    def layer_decode(c: int) -> float:
        return roof.time(gemm_flops, layer_bytes) + attention_decode_s(shape, c, FP16, roof) + elementwise(1)

    def embed(n: int) -> float:
        return _scaled(table, "emb", n, ratio)

    def head(n: int) -> float:
        return _scaled(table, "input_layernorm", n, ratio) + lm_head_s(shape, FP16, roof) + sampling_s(shape, roof)

    top = shape.max_context
    return {
        "embed": KindCosts(_curve(PREFILL_GRID, embed, top), _curve((1,), embed, top)),
        "layer": KindCosts(_curve(PREFILL_GRID, layer_prefill, top), _curve(DECODE_GRID, layer_decode, top)),
        "head": KindCosts(_curve(PREFILL_GRID, head, top), _curve((1,), head, top)),
    }


def derived_gpu_profile(vidur_root: str | Path, model: str, gpu: str = "a100") -> Profile:
    """The derived profile of ``model`` (``gpt2``, ``bert-base``) on vidur's ``gpu``."""
    table = OpTable.read(csv_path(Path(vidur_root), gpu, REFERENCE))
    roof = fit_roofline(table, get_shape(REFERENCE))
    shape = get_shape(model)
    device, description = GPUS[gpu]
    provenance = (
        f"{description}, {shape.name} shape ({shape.hf_id}), FP16, batch 1. Derived, not measured: no public table "
        f"measures {shape.name} on this GPU. From vidur's measured ops of one {REFERENCE} layer on the same GPU: "
        f"(1) the roofline fitted to its measured GEMMs ({roof.describe()}) prices every GEMM group of {shape.name} "
        "as floor + max(FLOPs / F, bytes / B), and attention (from FLOPs and KV/QKV bytes), the head's GEMM "
        "(last token only) and sampling likewise; (2) its measured element-wise ops (2 norms, rotary, activation, "
        f"2 residual adds; embedding lookup; final norm) are kept at their 1-token (launch-bound) time and their "
        f"growth with tokens is scaled by hidden {shape.hidden} / 4096. Written by splitllm.bench.gpu_derived "
        f"for the SplitLLM paper experiment (bench/README.md). " + CREDIT.format(gpu=gpu, hf=MODELS[REFERENCE])
    )
    return Profile(device, shape.name, "float16", 1, "derived", provenance, derived_kinds(shape, table, roof))


def main(argv: list[str] | None = None) -> int:
    """``python -m splitllm.bench.gpu_derived VIDUR_ROOT OUT_DIR``: write the GPT-2 and BERT profiles."""
    import sys

    from splitllm.jsonio import write_json

    root, out = argv if argv is not None else sys.argv[1:]
    for model in ("gpt2", "bert-base"):
        profile = derived_gpu_profile(root, model)
        write_json(Path(out) / f"{profile.device}_{model}.json", profile.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
