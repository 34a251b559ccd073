"""Client profiles derived from published whole-model speeds (``"source": "derived"``).

No public source has per-layer costs of client devices, so these profiles are scaled from
whole-model figures: llama.cpp tokens/s of Llama-3-8B (32 layers) on laptop and desktop
GPUs and Apple Silicon, from the README of github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference
(commit aa72e0ec86c356c41f8281c9733e9a13c3675800, May 2024; numbers quoted, no file copied).

Derivation, per device and weight format (F16, or Q4_K_M at about 4.8 bits per weight):

* bytes/s ``B``: a generation step reads every weight once plus the KV cache (F16, as
  llama.cpp keeps it); generating 1024 tokens from an empty prompt averages a context of
  512.5, so ``B = (weights + 32 * 512.5 * KV per token and layer) * generation tokens/s``;
* FLOP/s ``F``: a 1024-token prompt costs ``32 * (2 * 1024 * GEMM weights + causal
  attention)`` FLOPs plus the LM head for its last token, done in ``1024 / prompt-eval
  tokens/s`` seconds;
* every block of the target model then costs ``max(FLOPs / F, bytes / B)``, the same
  roofline the importers use, so 32 layers + embed + head reproduce the published
  tokens/s for Llama-3-8B (tests check this) and scale by size to other shapes.

Examples
--------
>>> p = derived_profile("apple-m1-max", "llama-2-7b")
>>> p.source, p.dtype
('derived', 'float16')
"""

from __future__ import annotations

from dataclasses import dataclass

from splitllm.errors import InputError
from splitllm.instances.models import DTYPE_BYTES, ModelShape, get_shape
from splitllm.instances.roofline import Roofline, attention_decode_s, attention_prefill_s, lm_head_s, sampling_s, sig
from splitllm.profiles import Curve, KindCosts, Profile

REFERENCE_MODEL = "llama-3-8b"
GENERATED, PROMPT = 1024, 1024
KV_BYTES = 2  # llama.cpp's default F16 KV cache
PREFILL_GRID = (1, 16, 64, 128, 256, 512, 1024, 2048, 3072, 4096)
DECODE_GRID = (1, 1024, 2048, 4096)
SOURCE = (
    "Figures: README of github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference, commit "
    "aa72e0ec86c356c41f8281c9733e9a13c3675800 (May 2024): llama.cpp, Llama-3-8B GGUF, all layers on the GPU, "
    "generation = mean tokens/s generating 1024 tokens, prompt eval = mean tokens/s over a 1024-token prompt. "
    "Numbers quoted with credit; the repository has no licence file and none of its files is copied."
)


@dataclass(frozen=True)
class Figure:
    """Published tokens/s of one device for one weight format."""

    description: str
    dtype: str
    generation_tok_s: float
    prompt_tok_s: float


#: device name -> figure (F16 where it fits in memory, else Q4_K_M, named ``-q4``).
FIGURES = {
    "apple-m1-q4": Figure("Apple M1, 7-core GPU, 8 GB (MacBook Air)", "q4_k_m", 9.72, 87.26),
    "apple-m1-max": Figure("Apple M1 Max, 32-core GPU, 64 GB", "float16", 18.43, 418.77),
    "apple-m3-max": Figure("Apple M3 Max, 40-core GPU, 64 GB", "float16", 22.39, 751.49),
    "apple-m2-ultra": Figure("Apple M2 Ultra, 76-core GPU, 192 GB", "float16", 36.25, 1202.74),
    "rtx-3070-q4": Figure("NVIDIA RTX 3070, 8 GB", "q4_k_m", 70.94, 2283.62),
    "rtx-4070-ti-q4": Figure("NVIDIA RTX 4070 Ti, 12 GB", "q4_k_m", 82.21, 3653.07),
    "rtx-4090": Figure("NVIDIA RTX 4090, 24 GB", "float16", 54.34, 9056.26),
}


def fit_figure(figure: Figure) -> Roofline:
    """``F`` and ``B`` of the device from its Llama-3-8B figures (module docstring)."""
    ref, size = get_shape(REFERENCE_MODEL), DTYPE_BYTES[figure.dtype]
    mean_context = (GENERATED + 1) / 2
    step_bytes = (
        ref.n_layers * (ref.layer_params() * size + mean_context * ref.kv_bytes_per_token(KV_BYTES))
        + ref.head_params() * size
        + ref.hidden * size
    )
    prompt_flops = ref.n_layers * (2.0 * PROMPT * ref.layer_gemm_params() + ref.attention_flops(PROMPT)) + 2.0 * ref.head_gemm_params()
    return Roofline(prompt_flops * figure.prompt_tok_s / PROMPT, step_bytes * figure.generation_tok_s)


def derived_kinds(shape: ModelShape, size: float, roof: Roofline) -> dict[str, KindCosts]:
    """Curves of embed, layer and head of ``shape`` with weights of ``size`` bytes each."""
    layer_bytes = shape.layer_params() * size
    gemm_flops = 2.0 * shape.layer_gemm_params()

    def layer_prefill(n: int) -> float:
        return roof.time(n * gemm_flops, layer_bytes) + attention_prefill_s(shape, n, KV_BYTES, roof)

    def layer_decode(c: int) -> float:
        return roof.time(gemm_flops, layer_bytes) + attention_decode_s(shape, c, KV_BYTES, roof)

    def head(n: int) -> float:
        return roof.time(8.0 * n * shape.hidden, n * shape.hidden * 4) + lm_head_s(shape, size, roof) + sampling_s(shape, roof)

    def embed(n: int) -> float:
        return roof.time(0.0, n * shape.hidden * size)

    prefill = [n for n in PREFILL_GRID if n <= shape.max_context]
    decode = [c for c in DECODE_GRID if c <= shape.max_context]
    return {
        "embed": KindCosts(_curve(prefill, embed), _curve([1], embed)),
        "layer": KindCosts(_curve(prefill, layer_prefill), _curve(decode, layer_decode)),
        "head": KindCosts(_curve(prefill, head), _curve([1], head)),
    }


def _curve(xs: list[int], f) -> Curve:  # type: ignore[no-untyped-def]
    return Curve.from_points([[x, sig(f(x))] for x in xs])


def derived_profile(device: str, model: str) -> Profile:
    """The derived profile of ``model`` on the client ``device`` (a key of :data:`FIGURES`)."""
    if device not in FIGURES:
        raise InputError("--device", f"no published figures for {device!r}; known: {', '.join(FIGURES)}")
    figure, shape = FIGURES[device], get_shape(model)
    roof = fit_figure(figure)
    provenance = (
        f"{figure.description}, {shape.name} shape, weights {figure.dtype}, KV cache float16, batch 1. Derived, not "
        f"measured: from the published llama.cpp figures for Llama-3-8B {figure.dtype}: generation "
        f"{figure.generation_tok_s} tokens/s, prompt eval {figure.prompt_tok_s} tokens/s. Fitted roofline "
        f"({roof.describe()}): B = bytes read per generation step (weights + KV cache at the mean context 512.5) "
        "x tokens/s; F = FLOPs of the 1024-token prompt x prompt tokens/s / 1024. Every block costs "
        "max(FLOPs / F, bytes / B); attention, LM head (last token) and sampling likewise. "
        "Written by `splitllm profiles derive`. " + SOURCE
    )
    return Profile(device, shape.name, figure.dtype, 1, "derived", provenance, derived_kinds(shape, DTYPE_BYTES[figure.dtype], roof))
