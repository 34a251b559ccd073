"""Client profiles derived from published whole-model speeds (``"source": "derived"``).

No public source has per-layer costs of client devices, so these profiles are scaled from
whole-model llama.cpp tokens/s (batch 1, all layers on the GPU) in the README of
github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference (numbers quoted with credit, no file
copied; the repository has no licence file). Two tables of that README are used:

* :data:`LLAMA2_FIGURES`: Llama-2-7B, Q4_0 and F16 (commit c79519347c9331cee5b49e0137d7756e4a195f3b,
  section "LLaMA 2", measured Dec 2023; M1 Max Aug 2023): ``main`` with a 494-token prompt
  (265 on the M1 Max), "generation" = mean tokens/s of the 1023 decode steps after it;
* :data:`FIGURES`: Llama-3-8B, Q4_K_M and F16 (commit aa72e0ec86c356c41f8281c9733e9a13c3675800,
  May 2024): ``llama-bench``, a 1024-token prompt, and 1024 tokens generated from an empty context.

A Llama-2-7B profile comes from the device's Llama-2-7B figures where they exist; every
other profile is scaled from the device's Llama-3-8B figures (:func:`figure_for`).

Derivation, per device and weight format (F16; Q4_K_M at about 4.8 bits per weight; Q4_0
at 4.5):

* bytes/s ``B``: a generation step reads every weight once plus the KV cache (F16, as
  llama.cpp keeps it) at the step's context, so ``B = (weights + L * mean context * KV per
  token and layer) * generation tokens/s`` (mean context 512.5 for Llama-3-8B, prompt + 512
  for Llama-2-7B);
* FLOP/s ``F``: a prompt of ``P`` tokens costs ``L * (2 * P * GEMM weights + causal
  attention)`` FLOPs plus the LM head for its last token, done in ``P / prompt-eval
  tokens/s`` seconds;
* every block of the target model then costs ``max(FLOPs / F, bytes / B)``, the same
  roofline the importers use, so ``L`` layers + embed + head reproduce the published
  tokens/s of the model the figures are for (tests check this) and scale by size to
  other shapes.

Examples
--------
>>> p = derived_profile("apple-m1-max", "llama-2-7b")
>>> p.source, p.dtype
('derived', 'float16')
>>> figure_for("rtx-4090", "llama-2-7b").bench.model, figure_for("rtx-4090", "phi-2").bench.model
('llama-2-7b', 'llama-3-8b')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from splitllm.errors import InputError
from splitllm.instances.models import DTYPE_BYTES, ModelShape, get_shape
from splitllm.instances.roofline import Roofline, attention_decode_s, attention_prefill_s, lm_head_s, sampling_s, sig
from splitllm.profiles import Curve, KindCosts, Profile

KV_BYTES = 2  # llama.cpp's default F16 KV cache
#: Bytes per weight: the package's dtypes plus llama.cpp's Q4_0 (32 4-bit weights + one F16 scale = 18 bytes).
WEIGHT_BYTES = {**DTYPE_BYTES, "q4_0": 18 / 32}
PREFILL_GRID = (1, 16, 64, 128, 256, 512, 1024, 2048, 3072, 4096)
DECODE_GRID = (1, 1024, 2048, 4096)
#: The models derived by default (``splitllm profiles derive`` without ``--model``).
DEFAULT_MODELS = ("llama-2-7b", "phi-2")
LICENCE = "Numbers quoted with credit; the repository has no licence file and none of its files is copied."


@dataclass(frozen=True)
class Benchmark:
    """How one table of figures was measured.

    Prompt eval timed a prompt of ``prompt_tokens``; generation timed ``decode_steps`` decode
    steps, step ``t`` at context ``generation_start + t`` (the KV cache holds
    ``generation_start`` tokens before the first).
    """

    model: str
    label: str
    prompt_tokens: int
    generation_start: int
    decode_steps: int
    citation: str

    @property
    def mean_context(self) -> float:
        return self.generation_start + (self.decode_steps + 1) / 2


LLAMA3 = Benchmark(
    "llama-3-8b", "Llama-3-8B", 1024, 0, 1024,
    "Figures: README of github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference, commit "
    "aa72e0ec86c356c41f8281c9733e9a13c3675800 (May 2024): llama.cpp (llama-bench), Llama-3-8B GGUF, all layers on the "
    "GPU, generation = mean tokens/s generating 1024 tokens, prompt eval = mean tokens/s over a 1024-token prompt. " + LICENCE,
)  # fmt: skip
_LLAMA2_CITATION = (
    "Figures: README of github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference, commit "
    "c79519347c9331cee5b49e0137d7756e4a195f3b (2024-03-29), section 'LLaMA 2' (measured Dec 2023{when}): llama.cpp "
    "`main --no-mmap -n 1024 --ignore-eos`, Llama-2-7B GGUF (Q4_0 and F16), all layers on the GPU, a {prompt}-token "
    "prompt (as the run logs show), generation = mean tokens/s over the 1023 decode steps of a 1024-token generation after "
    "that prompt, prompt eval = mean tokens/s over the prompt, each the mean of 3 runs. " + LICENCE
)
LLAMA2 = Benchmark("llama-2-7b", "Llama-2-7B", 494, 494, 1023, _LLAMA2_CITATION.format(when="", prompt=494))
LLAMA2_M1_MAX = Benchmark(
    "llama-2-7b", "Llama-2-7B", 265, 265, 1023, _LLAMA2_CITATION.format(when="; this device Aug 2023, llama.cpp build 1026", prompt=265)
)


@dataclass(frozen=True)
class Figure:
    """Published tokens/s of one device for one weight format, measured as ``bench`` says."""

    description: str
    dtype: str
    generation_tok_s: float
    prompt_tok_s: float
    bench: Benchmark = LLAMA3


#: device name -> Llama-3-8B figure (F16 where it fits in memory, else Q4_K_M, named ``-q4``).
FIGURES = {
    "apple-m1-q4": Figure("Apple M1, 7-core GPU, 8 GB (MacBook Air)", "q4_k_m", 9.72, 87.26),
    "apple-m1-max": Figure("Apple M1 Max, 32-core GPU, 64 GB", "float16", 18.43, 418.77),
    "apple-m3-max": Figure("Apple M3 Max, 40-core GPU, 64 GB", "float16", 22.39, 751.49),
    "apple-m2-ultra": Figure("Apple M2 Ultra, 76-core GPU, 192 GB", "float16", 36.25, 1202.74),
    "rtx-3070-q4": Figure("NVIDIA RTX 3070, 8 GB", "q4_k_m", 70.94, 2283.62),
    "rtx-4070-ti-q4": Figure("NVIDIA RTX 4070 Ti, 12 GB", "q4_k_m", 82.21, 3653.07),
    "rtx-4090": Figure("NVIDIA RTX 4090, 24 GB", "float16", 54.34, 9056.26),
}


def _llama2(name: str, description: str, generation: tuple[float, float], prompt: tuple[float, float], bench: Benchmark = LLAMA2) -> dict[str, Figure]:
    """``name-q4`` (Q4_0) and ``name`` (F16) from the table's (Q4_0, F16) tokens/s pairs."""
    return {
        f"{name}-q4": Figure(description, "q4_0", generation[0], prompt[0], bench),
        name: Figure(description, "float16", generation[1], prompt[1], bench),
    }


#: device name -> Llama-2-7B figure: F16 under the plain name, Q4_0 under ``-q4``. The
#: Apple M3's F16 figure ran on its CPU (the source's label) and is left out.
LLAMA2_FIGURES = {
    **_llama2("apple-m1-max-24c", "Apple M1 Max, 24-core GPU, 32 GB", (48.65, 13.83), (199.65, 213.14), LLAMA2_M1_MAX),
    "apple-m3-q4": Figure("Apple M3, 10-core GPU, 16 GB", "q4_0", 20.79, 184.51, LLAMA2),
    **_llama2("apple-m3-max", "Apple M3 Max, 40-core GPU, 48 GB", (63.11, 24.76), (740.97, 761.4)),
    **_llama2("apple-m2-ultra", "Apple M2 Ultra, 76-core GPU, 192 GB", (91.89, 40.68), (1217.03, 1379.54)),
    **_llama2("rtx-3090", "NVIDIA RTX 3090, 24 GB", (120.6, 51.85), (2601.81, 3075.37)),
    **_llama2("rtx-4080", "NVIDIA RTX 4080, 16 GB", (118.01, 44.2), (3774.79, 5158.19)),
    **_llama2("rtx-4090", "NVIDIA RTX 4090, 24 GB", (149.37, 60.78), (5531.19, 7348.69)),
    **_llama2("rtx-4000-ada", "NVIDIA RTX 4000 Ada, 20 GB", (64.53, 22.96), (1819.86, 2369.09)),
    **_llama2("rtx-5000-ada", "NVIDIA RTX 5000 Ada, 32 GB", (99.19, 36.31), (3525.7, 4936.59)),
    **_llama2("rtx-a6000", "NVIDIA RTX A6000, 48 GB", (111.57, 44.01), (2979.12, 3707.88)),
    **_llama2("rtx-6000-ada", "NVIDIA RTX 6000 Ada, 48 GB", (127.45, 50.56), (3911.18, 5403.6)),
}
#: model -> the figures measured on that model (preferred over scaling another model's).
MODEL_FIGURES = {"llama-2-7b": LLAMA2_FIGURES}


def known_devices() -> list[str]:
    """Every device with published figures, in table order."""
    return list(dict.fromkeys([*FIGURES, *LLAMA2_FIGURES]))


def figure_for(device: str, model: str) -> Figure:
    """The figure a profile of ``model`` on ``device`` is derived from.

    The device's figure for ``model`` itself where the source has one, else its Llama-3-8B
    figure, else its Llama-2-7B figure (then scaled to ``model`` by size).
    """
    for table in (MODEL_FIGURES.get(model, {}), FIGURES, LLAMA2_FIGURES):
        if device in table:
            return table[device]
    raise InputError("--device", f"no published figures for {device!r}; known: {', '.join(known_devices())}")


def default_pairs(devices: Iterable[str] = (), models: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(device, model)`` pairs that ``splitllm profiles derive`` writes.

    Named devices and models give every pair of them. Without ``models``, a device gets
    :data:`DEFAULT_MODELS` if it has Llama-3-8B figures, else only the model it has figures for.
    """
    models = tuple(models)
    pairs = []
    for device in tuple(devices) or known_devices():
        figure = figure_for(device, models[0] if models else DEFAULT_MODELS[0])
        own = models or (DEFAULT_MODELS if device in FIGURES else (figure.bench.model,))
        pairs.extend((device, model) for model in own)
    return pairs


def fit_figure(figure: Figure) -> Roofline:
    """``F`` and ``B`` of the device from its figures (module docstring)."""
    bench, ref, size = figure.bench, get_shape(figure.bench.model), WEIGHT_BYTES[figure.dtype]
    step_bytes = (
        ref.n_layers * (ref.layer_params() * size + bench.mean_context * ref.kv_bytes_per_token(KV_BYTES))
        + ref.head_params() * size
        + ref.hidden * size
    )
    prompt = bench.prompt_tokens
    prompt_flops = ref.n_layers * (2.0 * prompt * ref.layer_gemm_params() + ref.attention_flops(prompt)) + 2.0 * ref.head_gemm_params()
    return Roofline(prompt_flops * figure.prompt_tok_s / prompt, step_bytes * figure.generation_tok_s)


def derived_kinds(shape: ModelShape, size: float, roof: Roofline, extra_prefill: Iterable[int] = ()) -> dict[str, KindCosts]:
    """Curves of embed, layer and head of ``shape`` with weights of ``size`` bytes each.

    ``extra_prefill`` adds prompt lengths to the prefill grid (the figures' own prompt).
    """
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

    prefill = sorted({n for n in (*PREFILL_GRID, *extra_prefill) if n <= shape.max_context})
    decode = [c for c in DECODE_GRID if c <= shape.max_context]
    return {
        "embed": KindCosts(_curve(prefill, embed), _curve([1], embed)),
        "layer": KindCosts(_curve(prefill, layer_prefill), _curve(decode, layer_decode)),
        "head": KindCosts(_curve(prefill, head), _curve([1], head)),
    }


def _curve(xs: list[int], f) -> Curve:  # type: ignore[no-untyped-def]
    return Curve.from_points([[x, sig(f(x))] for x in xs])


def derived_profile(device: str, model: str) -> Profile:
    """The derived profile of ``model`` on the client ``device`` (see :func:`figure_for`)."""
    figure, shape = figure_for(device, model), get_shape(model)
    bench, roof = figure.bench, fit_figure(figure)
    own = bench.model == shape.name
    how = (
        f"reproduces those figures for {bench.label} itself (tested)"
        if own
        else f"is scaled from {bench.label} to the {shape.name} shape by FLOPs and bytes"
    )
    provenance = (
        f"{figure.description}, {shape.name} shape, weights {figure.dtype}, KV cache float16, batch 1. Derived, not "
        f"measured: from the published llama.cpp figures for {bench.label} {figure.dtype} on this device: generation "
        f"{figure.generation_tok_s} tokens/s, prompt eval {figure.prompt_tok_s} tokens/s. Fitted roofline "
        f"({roof.describe()}): B = bytes read per generation step (weights + KV cache at the mean context "
        f"{bench.mean_context:g}) x tokens/s; F = FLOPs of the {bench.prompt_tokens}-token prompt x prompt tokens/s / "
        f"{bench.prompt_tokens}. Every block costs max(FLOPs / F, bytes / B); attention, LM head (last token) and "
        f"sampling likewise; the profile {how}. Written by `splitllm profiles derive`. " + bench.citation
    )
    extra = (bench.prompt_tokens,) if own else ()
    kinds = derived_kinds(shape, WEIGHT_BYTES[figure.dtype], roof, extra)
    return Profile(device, shape.name, figure.dtype, 1, "derived", provenance, kinds)
