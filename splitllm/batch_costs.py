"""Where the throughput-placement (F5) solvers get the batched tables of the server.

One function, :func:`batched_costs`, so that every F5 solver and ``splitllm check`` read
the same tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from splitllm.batched import BatchedCosts
from splitllm.errors import InputError
from splitllm.instance import Instance

#: Engine overheads fitted on LLM-Inference-Bench (vLLM), used until profiles carry them.
_VLLM_OVERHEAD_S = {"a100": 0.003949, "h100": 0.001664}


def batched_costs(instance: Instance, engine: str = "vllm") -> BatchedCosts:
    """The batched tables of ``instance``'s server device for ``engine``.

    Raises :class:`~splitllm.errors.InputError` naming ``server.device`` when there are none.
    """
    import splitllm.batched as batched

    server_costs = getattr(batched, "server_costs", None)
    if server_costs is not None:
        return server_costs(instance, engine=engine)  # type: ignore[no-any-return]
    return _vidur_fallback(instance, engine)


def _vidur_fallback(instance: Instance, engine: str) -> BatchedCosts:
    from splitllm.instances.batched_vidur import vidur_batched

    device = instance.server.device or ""
    gpu = "h100" if "h100" in device else "a100" if "a100" in device else None
    root = os.environ.get("SPLITLLM_VIDUR_DATA")
    if gpu is None or root is None or engine != "vllm":
        raise InputError(f"devices.{device or 'server'}", f"no batched tables for {engine} on this device")
    return vidur_batched(Path(root), gpu).with_overhead(_VLLM_OVERHEAD_S[gpu])
