"""Serving engines: which items share an iteration, and how the KV cache is granted.

* ``vllm`` (vLLM's default scheduler without chunked prefill): prefill first. When a
  prefill is ready, the iteration runs the ready prefills only (whole prompts) and the
  decode steps wait one iteration; otherwise it runs every ready decode step.
  KV is **paged** (vLLM's block manager, 0.4-era defaults): blocks of
  :data:`VLLM_BLOCK` tokens granted as a request's tokens grow; a waiting request is
  admitted when its prompt's blocks fit in the free cache less a watermark of
  :data:`VLLM_WATERMARK` of it, within :data:`VLLM_MAX_BATCHED_TOKENS` prompt tokens per
  iteration and :data:`VLLM_MAX_SEQS` running requests; a request that needs a block when
  none is free preempts the latest-arrived running request, which recomputes later (see
  :mod:`.simulator`).
* ``tensorrt-llm`` (in-flight batching): every ready item, prefills and decode steps
  together, in one iteration. KV is **reserved** (``GUARANTEED_NO_EVICT``): a request is
  admitted only when its whole prompt + output KV fits, and holds it until it finishes.

With a token budget (``chunk``), both engines run chunked prefill: every ready decode step,
then prefill chunks in arrival order while the iteration holds fewer than ``chunk`` tokens
(a prompt longer than the rest of the budget is cut; its next chunk goes in a later
iteration). Each engine also has its own per-iteration overhead (in its tables).

>>> ENGINES["vllm"].mixes, ENGINES["vllm"].paged, ENGINES["tensorrt-llm"].paged
(False, True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from splitllm.errors import InputError
from splitllm.instance import Instance

#: vLLM's defaults (0.4-era engine arguments), shared by the simulator and :mod:`splitllm.bench.fidelity`.
#: Share of the GPU memory vLLM may use (weights, activations, KV).
VLLM_GPU_UTILIZATION = 0.9
#: Tokens per KV block.
VLLM_BLOCK = 16
#: Prompt tokens one iteration may admit: max(max_model_len = 4096, 2048) without chunked prefill.
VLLM_MAX_BATCHED_TOKENS = 4096
#: Running requests at most.
VLLM_MAX_SEQS = 256
#: Share of the KV cache an admission must leave free.
VLLM_WATERMARK = 0.01


@dataclass(frozen=True)
class Engine:
    """Scheduling rules of one engine: ``mixes`` = prefills and decode steps share an
    iteration; ``paged`` = vLLM's paged KV with preemption, else a whole-request reservation."""

    name: str
    mixes: bool
    description: str
    paged: bool = False


ENGINES = {
    "vllm": Engine("vllm", False, "prefill-first iterations (whole prompts); decode steps wait while a prefill runs; "
                   "paged KV with preemption", paged=True),
    "tensorrt-llm": Engine("tensorrt-llm", True, "in-flight batching: prefills and decode steps in the same iteration; "
                           "KV reserved for prompt + output at admission"),
}


#: Share of the GPU memory left after the weights that the KV cache gets (vLLM's default
#: gpu_memory_utilization, 0.9).
KV_FRACTION = 0.9


def kv_capacity(inst: Instance, memory_bytes: float, weight_bytes: float, gpu_memory: float | None) -> float:
    """The instance's ``server.kv_capacity_bytes`` if set, else 0.9 x (GPU memory - the whole model's weights)."""
    if inst.server.kv_capacity_bytes is not None:
        return float(inst.server.kv_capacity_bytes)
    memory = memory_bytes if gpu_memory is None else gpu_memory
    free = KV_FRACTION * (memory - weight_bytes)
    if not free > 0:
        raise InputError("--gpu-memory", f"{memory:g} bytes leave no room for KV after {weight_bytes:g} bytes of weights")
    return free
