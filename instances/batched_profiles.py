"""Server profiles with batched tables (profile format version 2), from vidur's tables.

``splitllm profiles import vidur PATH`` writes every vidur (GPU, model) profile; for the
(GPU, model) pairs of :data:`FITTED_ENGINES` it also attaches the batched iteration
tables (:func:`splitllm.instances.batched_vidur.vidur_batched`) and the per-iteration
engine parameters (overheads, kernel scale) that ``splitllm fidelity`` fitted on LLM-Inference-Bench's whole-model
serving measurements (batch 1 and 64 rows, least squares on relative latency; see
``bench/results/fidelity/fidelity.md``). Pairs without a fit get no batched section.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from splitllm.batched import tables_from_costs
from splitllm.instances.batched_vidur import vidur_batched
from splitllm.instances.vidur import GPUS, import_vidur
from splitllm.profiles import Profile

#: Each engine's fitted parameters by (vidur GPU, model), as ``splitllm fidelity`` wrote them
#: to bench/results/fidelity/fit.json (a test checks they agree). ``kernel_scale`` is the
#: engine's kernels against vidur's PyTorch kernels; the bench's A100 bandwidth rescaling
#: (40 GB part) is not carried over: these profiles are vidur's measured 80 GB parts.
FITTED_ENGINES: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("a100", "llama-2-7b"): {
        "vllm": {"overhead_s": 0.001888082, "overhead_per_seq_s": 6.9378e-05, "kernel_scale": 0.875587},
        "tensorrt-llm": {"overhead_s": 0.000939024, "overhead_per_seq_s": 4.596e-06, "kernel_scale": 0.86693},
    },
    ("h100", "llama-2-7b"): {
        "vllm": {"overhead_s": 0.001977487, "overhead_per_seq_s": 5.2892e-05, "kernel_scale": 0.913927},
        "tensorrt-llm": {"overhead_s": 0.001893006, "overhead_per_seq_s": 9.737e-06, "kernel_scale": 0.826661},
    },
}
FIT_NOTE = (
    " Batched tables: token-parallel work per block kind at each measured num_tokens from the same vidur table; "
    "per-engine overheads and kernel scale fitted by `splitllm fidelity` on LLM-Inference-Bench (Llama-2-7B, batch 1 and 64 "
    "rows; github.com/argonne-lcf/LLM-Inference-Bench, BSD-3-Clause)."
)


def with_batched(profile: Profile, root: Path) -> Profile:
    """``profile`` with its batched section when its (GPU, model) has a fit, else as it is."""
    gpu = next((g for g, (device, _) in GPUS.items() if device == profile.device), None)
    engines = FITTED_ENGINES.get((gpu or "", profile.model))
    if gpu is None or engines is None:
        return profile
    costs = vidur_batched(root, gpu, profile.model)
    tables = tables_from_costs(dataclasses.replace(costs, provenance=costs.provenance + FIT_NOTE), engines)
    return dataclasses.replace(profile, batched=tables)


def import_vidur_batched(root: Path) -> list[Profile]:
    """Every vidur profile under ``root``, with batched sections where fitted."""
    return [with_batched(p, root) for p in import_vidur(root)]
