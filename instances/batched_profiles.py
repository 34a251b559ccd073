"""Server profiles with batched tables (profile format version 2), from vidur's tables.

``splitllm profiles import vidur PATH`` writes every vidur (GPU, model) profile; for the
(GPU, model) pairs of :data:`FITTED_OVERHEADS` it also attaches the batched iteration
tables (:func:`splitllm.instances.batched_vidur.vidur_batched`) and the per-iteration
engine overheads that ``splitllm fidelity`` fitted on LLM-Inference-Bench's whole-model
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

#: Seconds per iteration by (vidur GPU, model) and engine, as ``splitllm fidelity`` fitted them.
FITTED_OVERHEADS: dict[tuple[str, str], dict[str, float]] = {
    ("a100", "llama-2-7b"): {"vllm": 0.003949, "tensorrt-llm": 0.002687},
    ("h100", "llama-2-7b"): {"vllm": 0.001664, "tensorrt-llm": 0.000704},
}
FIT_NOTE = (
    " Batched tables: token-parallel work per block kind at each measured num_tokens from the same vidur table; "
    "per-iteration engine overheads fitted by `splitllm fidelity` on LLM-Inference-Bench (Llama-2-7B, batch 1 and 64 "
    "rows; github.com/argonne-lcf/LLM-Inference-Bench, BSD-3-Clause)."
)


def with_batched(profile: Profile, root: Path) -> Profile:
    """``profile`` with its batched section when its (GPU, model) has a fit, else as it is."""
    gpu = next((g for g, (device, _) in GPUS.items() if device == profile.device), None)
    overheads = FITTED_OVERHEADS.get((gpu or "", profile.model))
    if gpu is None or overheads is None:
        return profile
    costs = vidur_batched(root, gpu, profile.model)
    tables = tables_from_costs(dataclasses.replace(costs, provenance=costs.provenance + FIT_NOTE), overheads)
    return dataclasses.replace(profile, batched=tables)


def import_vidur_batched(root: Path) -> list[Profile]:
    """Every vidur profile under ``root``, with batched sections where fitted."""
    return [with_batched(p, root) for p in import_vidur(root)]
