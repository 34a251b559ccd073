"""Where the throughput-placement (F5) solvers and their evaluator get the server's batched tables.

One function, :func:`batched_costs`, so that every F5 solver and its check read the same
tables: those of the instance's server device profile (its batched section).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> batched_costs(load_instance(example_path("llama2-7b"))).device
'a100-80gb'
"""

from __future__ import annotations

from splitllm.batched import BatchedCosts, server_costs
from splitllm.instance import Instance


def batched_costs(instance: Instance, engine: str = "vllm") -> BatchedCosts:
    """The batched tables of ``instance``'s server device for ``engine``.

    Raises :class:`~splitllm.errors.InputError` naming the device when it has none.
    """
    return server_costs(instance, engine=engine)
