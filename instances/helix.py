"""Per-layer GPU profiles from Helix's vLLM measurements.

Helix (Mei et al., "Helix: Serving LLMs over Heterogeneous GPUs and Network via Max-Flow",
ASPLOS 2025; github.com/Thesys-lab/Helix-ASPLOS25, Apache-2.0) publishes, per model and GPU,
``prompt_bs2time.csv`` (total prompt tokens of a batch -> ms for one decoder layer) and
``decode_bs2time.csv`` (decode batch size -> ms for one decoder layer), FP16, rounded.

The values are rounded (often to whole ms) and not always monotone, so they are fitted:

* prefill: least squares ``a + b n + c n^2`` with non-negative coefficients, never below
  the one-token decode time (a prompt reads all the weights too);
* decode at batch 1: least squares line over batch sizes 1..32, evaluated at 1. Helix
  profiled with prompts of 750 and outputs of 240 tokens, so the measured step includes
  attention at a context of about 870; the context dependence is **modelled** as reading
  the KV cache at the bytes/s that the layer's weights imply (weights / one-token time).

Helix has only the decoder layer. ``embed`` and ``head`` are **modelled** by a roofline
with bytes/s as above and FLOP/s from the fitted prefill of the longest measured prompt.

Examples
--------
>>> fit_nonneg([0.0, 1.0, 2.0], [1.0, 3.0, 5.0], degree=1)
[1.0, 2.0]
"""

from __future__ import annotations

import csv
import math
from datetime import date
from pathlib import Path

import numpy as np

from splitllm.errors import InputError
from splitllm.instances.models import ModelShape, get_shape
from splitllm.instances.roofline import Roofline, lm_head_s, sampling_s, sig
from splitllm.profiles import Curve, KindCosts, Profile

GPUS = {
    "a100": ("a100-40gb", "NVIDIA A100 40GB (GCP)"),
    "v100": ("v100-16gb", "NVIDIA V100 16GB (GCP)"),
    "l4": ("l4", "NVIDIA L4 24GB (GCP)"),
    "t4": ("t4", "NVIDIA T4 16GB (GCP)"),
}
MODELS = {"llama2_70b": "llama-2-70b", "llama1_30b": "llama-1-30b"}
PROFILED_CONTEXT = 750 + 240 // 2
PREFILL_GRID = (1, 64, 128, 256, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096)
DECODE_GRID = (1, 1024, 2048, 4096)
FP16 = 2
#: Per-kernel floor borrowed from vidur's fastest op at one token on A100 (Helix has no such figure).
KERNEL_FLOOR_S = 2e-6
CREDIT = (
    "Data: Helix (Mei et al., 'Helix: Serving LLMs over Heterogeneous GPUs and Network via Max-Flow', ASPLOS 2025), "
    "github.com/Thesys-lab/Helix-ASPLOS25 commit 148b733080c0c5d3ddca0fe3c985b2e52a7f7b35, "
    "simulator/model_manager/{folder}/{gpu}/{{prompt,decode}}_bs2time.csv, Apache-2.0 licence."
)


def read_xy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``x, y`` rows of a Helix CSV with ``x > 0`` (the ``0, 0`` row is a placeholder)."""
    if not path.is_file():
        raise InputError(str(path), "no such file (expected a Helix *_bs2time.csv)")
    rows: list[tuple[float, float]] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for record in reader:
                x, y = _pair(f"{path}: line {reader.line_num}", record)
                if x > 0:
                    rows.append((x, y))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"not a readable CSV file ({exc})") from None
    if len(rows) < 2 or not all(y > 0 for _, y in rows):
        raise InputError(str(path), f"needs at least 2 rows x, y with x > 0 and a time y > 0, got {len(rows)} rows with x > 0")
    xs, ys = np.array(rows).T
    return xs, ys


def _pair(where: str, record: list[str]) -> tuple[float, float]:
    """One ``x, y`` row: two finite numbers >= 0 (a NaN would pass every comparison)."""
    try:
        x, y = (float(v) for v in record)
    except ValueError:
        raise InputError(where, f"must be two numbers x, y, got {','.join(record)[:60]!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in (x, y)):
        raise InputError(where, f"must be two finite numbers >= 0, got {x}, {y}")
    return x, y


def fit_nonneg(xs: list[float] | np.ndarray, ys: list[float] | np.ndarray, degree: int) -> list[float]:
    """Least-squares polynomial coefficients (lowest power first), all ``>= 0``.

    Negative coefficients are dropped (set to 0) one at a time and the rest refitted.
    """
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    active = list(range(degree + 1))
    while True:
        design = np.stack([x**k for k in active], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        if coef.min() >= 0 or len(active) == 1:
            full = [0.0] * (degree + 1)
            for k, c in zip(active, np.maximum(coef, 0.0)):
                full[k] = round(float(c), 12)
            return full
        active.pop(int(np.argmin(coef)))


def helix_kinds(shape: ModelShape, prompt: tuple[np.ndarray, np.ndarray], decode: tuple[np.ndarray, np.ndarray]) -> tuple[dict[str, KindCosts], Roofline]:
    """The three kinds' curves in seconds and the roofline used for embed and head."""
    a, b, c = fit_nonneg(*prompt, degree=2)
    small = decode[0] <= 32
    d0, d1 = fit_nonneg(decode[0][small], decode[1][small], degree=1)
    step_ms = d0 + d1
    layer_bytes = shape.layer_params() * FP16
    bytes_per_s = layer_bytes / (step_ms * 1e-3)
    kv_s = shape.kv_bytes_per_token(FP16) / bytes_per_s
    weights_s = step_ms * 1e-3 - PROFILED_CONTEXT * kv_s
    n_max = float(prompt[0].max())
    flops_per_s = (2 * n_max * shape.layer_gemm_params() + shape.attention_flops(int(n_max))) / ((a + b * n_max + c * n_max**2) * 1e-3)
    roof = Roofline(flops_per_s, bytes_per_s, KERNEL_FLOOR_S)

    def layer_prefill(n: int) -> float:
        return max((a + b * n + c * n * n) * 1e-3, step_ms * 1e-3)

    grid = [n for n in PREFILL_GRID if n <= shape.max_context]
    head_1 = lm_head_s(shape, FP16, roof) + sampling_s(shape, roof)
    norm = lambda n: roof.time(8.0 * n * shape.hidden, 2 * n * shape.hidden * FP16)  # noqa: E731
    embed = lambda n: roof.time(0.0, 2 * n * shape.hidden * FP16)  # noqa: E731
    kinds = {
        "embed": KindCosts(_curve(grid, embed), _curve([1], embed)),
        "layer": KindCosts(
            _curve(grid, layer_prefill),
            _curve([c for c in DECODE_GRID if c <= shape.max_context], lambda x: weights_s + x * kv_s),
        ),
        "head": KindCosts(_curve(grid, lambda n: norm(n) + head_1), _curve([1], lambda n: norm(1) + head_1)),
    }
    return kinds, roof


def _curve(xs: list[int], f) -> Curve:  # type: ignore[no-untyped-def]
    return Curve.from_points([[x, sig(f(x))] for x in xs])


def helix_profile(root: Path, folder: str, gpu: str) -> Profile:
    """The profile of Helix's model ``folder`` (``llama2_70b``, ``llama1_30b``) on ``gpu``."""
    if folder not in MODELS or gpu not in GPUS:
        raise InputError("helix", f"unknown model/GPU {folder}/{gpu}; known: {', '.join(MODELS)} x {', '.join(GPUS)}")
    shape = get_shape(MODELS[folder])
    base = Path(root) / folder / gpu
    kinds, roof = helix_kinds(shape, read_xy(base / "prompt_bs2time.csv"), read_xy(base / "decode_bs2time.csv"))
    device, description = GPUS[gpu]
    provenance = (
        f"{description}, {shape.name} ({shape.hf_id}), FP16, batch 1. Measured (Helix, vLLM per-layer profiling, "
        "values rounded): one decoder layer's prefill vs prompt tokens and decode step vs batch size. Fitted: "
        "prefill a + b n + c n^2 (non-negative least squares, floored at the decode step), decode step at batch 1 "
        f"from a line over batch 1..32 (includes attention at Helix's profiled context of about {PROFILED_CONTEXT}). "
        "Modelled, not measured: the decode step's dependence on context (KV-cache reads at the bytes/s implied "
        "by the layer's weights) and the whole of embed and head (final norm, LM-head GEMM for the last token, "
        f"greedy sampling) by a roofline fitted to the layer ({roof.describe()}; the floor is vidur's fastest A100 op, borrowed). A profile gives time, not memory. "
        f"Imported by `splitllm profiles import helix` on {date.today().isoformat()}. "
        + CREDIT.format(folder=folder, gpu=gpu)
    )
    return Profile(device, shape.name, "float16", 1, "measured", provenance, kinds)


def import_helix(root: Path) -> list[Profile]:
    """Every (model, GPU) profile whose two CSVs exist under ``root``."""
    found = [(m, g) for m in MODELS for g in GPUS if (Path(root) / m / g / "prompt_bs2time.csv").is_file()]
    if not found:
        raise InputError(str(root), "no Helix table found (expected <model>/<gpu>/prompt_bs2time.csv)")
    return [helix_profile(root, m, g) for m, g in found]
