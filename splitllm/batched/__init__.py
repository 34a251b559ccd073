"""The batched server: what a continuous-batching GPU server does with many requests at once.

* :mod:`.iteration`: the time of one iteration (:func:`iteration_time`,
  :class:`IterationPricer`) from a device's batched tables (:class:`BatchedCosts`);
* :mod:`.engines`: the serving engines (vLLM, TensorRT-LLM) and their rules;
* :mod:`.costs`: where the throughput-placement (F5) solvers get the server's tables;
* :mod:`.evaluator`: the independent check of a throughput placement;
* :mod:`.report`: what a placement costs a batching server (``solve --report batched``).

The names of :mod:`.iteration` are importable from here.
"""

from splitllm.batched.iteration import (
    ENGINES,
    KINDS,
    AttentionModel,
    BatchedCosts,
    Item,
    IterationPricer,
    all_blocks,
    costs_from_tables,
    iteration_time,
    server_costs,
    tables_from_costs,
)

__all__ = [
    "ENGINES", "KINDS", "AttentionModel", "BatchedCosts", "Item", "IterationPricer", "all_blocks",
    "costs_from_tables", "iteration_time", "server_costs", "tables_from_costs",
]  # fmt: skip
