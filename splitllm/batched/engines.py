"""The serving engines: one row each, read by everything that names an engine.

A row (:class:`Engine`) holds the engine's name (the CLI's ``--engine``, the throughput
solvers' ``-o engine=``, solution files, a profile's ``batched.engines``), the name
measured benchmarks give it, its scheduling rule, its KV rule with their constants, and
its KV capacity formula. The serving simulator (:mod:`splitllm.serving.simulator`) runs
the rules; the fidelity comparison (:mod:`splitllm.bench.fidelity`) runs the same
simulator, with the capacity formula sizing the bench's GPU.

* ``vllm`` (vLLM's default scheduler without chunked prefill, 0.4-era defaults): prefill
  first. When a prefill is ready, the iteration runs the ready prefills only (whole
  prompts) and the decode steps wait one iteration; otherwise it runs every ready decode
  step. KV is **paged**: blocks of ``block`` (16) tokens granted as a request's tokens
  grow; a waiting request is admitted when its prompt's blocks fit in the free cache less
  a ``watermark`` (1%) of it, within ``max_batched_tokens`` (4096) prompt tokens per
  iteration and ``max_seqs`` (256) running requests; a decode step runs only while a
  block is free, needed or not (``can_append_slot``), else it preempts the latest-arrived
  running request, which recomputes later.
  Capacity: ``gpu_memory_utilization`` (0.9) of the memory, less the weights, the CUDA
  context and the activations of its profiling pass (``max_batched_tokens`` tokens), in
  whole blocks.
* ``tensorrt-llm`` (in-flight batching): every ready item, prefills and decode steps
  together, in one iteration. KV is **reserved** (``GUARANTEED_NO_EVICT``): a request is
  admitted only when its whole prompt + output KV fits, and holds it until it finishes.
  Capacity: ``kv_cache_free_gpu_mem_fraction`` (0.9) of what the weights, the CUDA
  context and the engine's activation buffers (sized for ``batch x length`` tokens, the
  engine it is built as) leave.

With a token budget (``chunk``), both engines run chunked prefill: every ready decode step,
then prefill chunks in arrival order while the iteration holds fewer than ``chunk`` tokens
(a prompt longer than the rest of the budget is cut; its next chunk goes in a later
iteration). Each engine also has its own per-iteration overhead (in a profile's tables,
under its name).

Adding an engine is one row of :data:`ENGINES`, with its KV capacity formula.

>>> ENGINES["vllm"].mixes, ENGINES["vllm"].paged, ENGINES["tensorrt-llm"].paged
(False, True, False)
>>> by_label("TensorRT-LLM").name
'tensorrt-llm'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from splitllm.errors import InputError
from splitllm.instance import Instance

if TYPE_CHECKING:
    from splitllm.batched.iteration import BatchedCosts

#: Memory no engine can give to the KV cache: the CUDA context and library workspaces (bytes).
CONTEXT_BYTES = 0.5e9


@dataclass(frozen=True)
class ServerMemory:
    """What a KV capacity formula reads: the device's memory, the model's weights, KV and
    peak activation bytes per token, and the batch the engine is built for (``batch``
    requests of ``length`` input tokens; engines that size buffers by it)."""

    memory_bytes: float
    weight_bytes: float
    kv_bytes_per_token: float
    activation_bytes_per_token: float
    batch: int = 1
    length: int = 1


#: A KV capacity formula: the engine's row and the server -> KV tokens.
KvFormula = Callable[["Engine", ServerMemory], int]


@dataclass(frozen=True)
class Engine:
    """One serving engine (see the module docstring).

    ``mixes``: prefills and decode steps share an iteration (else prefill first);
    ``paged``: KV granted in blocks of ``block`` tokens as a request grows, admission
    leaving ``watermark`` of the cache free, within ``max_batched_tokens`` prompt tokens
    an iteration and ``max_seqs`` running requests, with preemption (else KV reserved for
    prompt + output at admission); ``memory_fraction``: the share of memory its capacity
    formula ``kv_formula`` takes.
    """

    name: str
    label: str
    description: str
    mixes: bool
    paged: bool
    kv_formula: KvFormula
    memory_fraction: float = 0.9
    block: int = 1
    watermark: float = 0.0
    max_batched_tokens: float = math.inf
    max_seqs: float = math.inf

    def kv_tokens(self, server: ServerMemory) -> int:
        """KV tokens the engine's capacity formula gives on ``server``."""
        return self.kv_formula(self, server)

    def kv_capacity_bytes(self, server: ServerMemory) -> float:
        """KV bytes the engine's capacity formula gives on ``server``."""
        return self.kv_tokens(server) * server.kv_bytes_per_token


def paged_kv_tokens(engine: Engine, s: ServerMemory) -> int:
    """vLLM: ``memory_fraction`` of the memory, less weights, the CUDA context and the peak
    activations of its profiling pass (``max_batched_tokens`` tokens), in whole blocks."""
    free = (engine.memory_fraction * s.memory_bytes - s.weight_bytes - CONTEXT_BYTES
            - s.activation_bytes_per_token * engine.max_batched_tokens)  # fmt: skip
    return max(0, int(free // (engine.block * s.kv_bytes_per_token))) * engine.block


def reserved_kv_tokens(engine: Engine, s: ServerMemory) -> int:
    """TensorRT-LLM: ``memory_fraction`` of the memory left after the weights, the CUDA context
    and the activation buffers ``trtllm-build`` sizes for ``max_num_tokens = batch x length``."""
    free = s.memory_bytes - s.weight_bytes - CONTEXT_BYTES - s.activation_bytes_per_token * (s.batch * s.length)
    return max(0, int(engine.memory_fraction * free // s.kv_bytes_per_token))


#: The engines, by name.
ENGINES: dict[str, Engine] = {
    "vllm": Engine(
        "vllm", "vLLM", "prefill-first iterations (whole prompts); decode steps wait while a prefill runs; paged KV with preemption",
        mixes=False, paged=True, kv_formula=paged_kv_tokens, memory_fraction=0.9, block=16, watermark=0.01,
        max_batched_tokens=4096, max_seqs=256,
    ),
    "tensorrt-llm": Engine(
        "tensorrt-llm", "TensorRT-LLM", "in-flight batching: prefills and decode steps in the same iteration; "
        "KV reserved for prompt + output at admission", mixes=True, paged=False, kv_formula=reserved_kv_tokens,
        memory_fraction=0.9,
    ),
}  # fmt: skip
#: The engine when none is named.
DEFAULT_ENGINE = "vllm"


def get_engine(name: str, option: str = "--engine") -> Engine:
    """The row of engine ``name``; an unknown name is refused, listing the engines."""
    if name not in ENGINES:
        raise InputError(option, f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name]


def by_label(label: str) -> Engine:
    """The engine a measured benchmark calls ``label`` (``vLLM``, ``TensorRT-LLM``)."""
    found = [engine for engine in ENGINES.values() if engine.label == label]
    if not found:
        raise InputError("framework", f"no engine called {label!r}; have {', '.join(e.label for e in ENGINES.values())}")
    return found[0]


def engine_help() -> str:
    """Each engine and its rules, one clause each (the CLI's ``--engine`` help)."""
    return "; ".join(f"{engine.name}: {engine.description}" for engine in ENGINES.values())


#: Share of the GPU memory left after the weights that the simulator's KV cache gets when
#: the model's shape (hence its activations) is unknown (vLLM's default gpu_memory_utilization, 0.9).
KV_FRACTION = 0.9
GIB = 2**30
#: Share of a part's nominal memory that CUDA reports as total: a "80 GB" part has 80 GiB of
#: HBM of which CUDA shows 79.11 GiB (H100 80 GB), a "40 GB" part 39.59 of 40 GiB (A100 40 GB).
CUDA_VISIBLE_SHARE = 79.11 / 80


def visible_memory(nominal_bytes: float) -> float:
    """Bytes CUDA reports on a part sold as ``nominal_bytes`` (decimal GB, as profiles state it):
    the nominal figure read as GiB, less what the driver keeps.

    >>> round(visible_memory(80e9) / GIB, 2)
    79.11
    """
    return nominal_bytes / 1e9 * GIB * CUDA_VISIBLE_SHARE


def activation_bytes_per_token(hidden: int, ffn: int, dtype_bytes: float = 2.0) -> float:
    """Peak activation bytes per token of a forward pass: the widest live tensors of a Llama
    layer (the residual stream plus the MLP's gate, up and product, ``hidden + 3 * ffn``
    values per token), which engines size for their largest token batch."""
    return float(hidden + 3 * ffn) * dtype_bytes


def kv_capacity(
    inst: Instance, costs: BatchedCosts, engine: str, gpu_memory: float | None, activation_per_token: float | None
) -> float:
    """KV bytes of the simulated server.

    The instance's ``server.kv_capacity_bytes`` if set. Else, where the model's activations
    are known (``activation_per_token``), the ``engine``'s own capacity formula on the GPU
    (``gpu_memory`` bytes as CUDA reports them, default the profile's nominal memory through
    :func:`visible_memory`), its weights, KV and activations, the engine built for batch 1 of
    1 token (TensorRT-LLM's activation buffers, sized by the build's ``max_num_tokens``, are
    unknown here). Else 0.9 x (GPU memory - the whole model's weights).
    """
    if inst.server.kv_capacity_bytes is not None:
        return float(inst.server.kv_capacity_bytes)
    memory = visible_memory(costs.memory_bytes) if gpu_memory is None else gpu_memory
    if activation_per_token is not None:
        server = ServerMemory(memory, costs.weight_bytes, costs.kv_bytes_per_token, activation_per_token)
        free = get_engine(engine).kv_capacity_bytes(server)
    else:
        free = KV_FRACTION * (memory - costs.weight_bytes)
    if not free > 0:
        raise InputError("--gpu-memory", f"{memory:g} bytes leave no room for KV after {costs.weight_bytes:g} bytes of weights")
    return float(free)
