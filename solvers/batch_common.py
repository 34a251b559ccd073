"""What every throughput-placement (F5) solver shares: its tables, its result, its check.

F5 always maximises the admitted weight, then minimises the decode iteration time ``T``,
whatever the instance's ``objective``. A result's ``objective`` is the admitted weight and
``bound`` an upper bound on it; ``info["iteration_time_s"]`` is ``T`` and
``info["iteration_time_bound_s"]`` a proven lower bound on ``T`` among answers of the
optimal weight (given only when the weight is proven).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import costs as batch_costs
from splitllm.batched.evaluator import verify_batch
from splitllm.batched import BatchedCosts
from splitllm.batched.engines import DEFAULT_ENGINE, ENGINES
from splitllm.formulations.batch_data import BatchData, build_data
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.result import SolveResult, Status

ENGINE = Option("engine", "choice", DEFAULT_ENGINE, "serving engine whose batched tables price T", choices=tuple(ENGINES))
TTFT = Option("ttft", "boolean", False, "also hold each admitted request's batch-1 TTFT (a snapshot of arriving requests)")
#: The options every F5 solver takes.
COMMON = (ENGINE, TTFT)


def batch_data(instance: Instance, engine: str = "vllm", ttft: bool = False) -> BatchData:
    """The F5 data of ``instance`` on the server's batched tables of ``engine``."""
    return build_data(instance, server_tables(instance, engine), ttft=ttft)


def server_tables(instance: Instance, engine: str = "vllm") -> BatchedCosts:
    """The server's batched tables: the one place F5 solvers get them."""
    return batch_costs.batched_costs(instance, engine)


def verify(instance: Instance, result: SolveResult, options: dict[str, Any]) -> SolveResult:
    """The registry's check of an F5 answer (independent evaluator, same tables)."""
    engine, ttft = options.get("engine", "vllm"), bool(options.get("ttft", False))
    result.info["engine"] = engine  # solution files record both, so `splitllm check` judges the same way
    result.info["ttft"] = ttft
    return verify_batch(instance, server_tables(instance, engine), result, ttft=ttft)


def batch_result(
    name: str,
    status: Status,
    x: NDArray[np.bool_] | None,
    admitted: NDArray[np.bool_] | None,
    t: float | None,
    bound: float | None = None,
    t_bound: float | None = None,
    message: str = "",
) -> SolveResult:
    """An F5 answer; rejected requests' rows are all server (ignored by every check)."""
    if x is None or admitted is None:
        return SolveResult(name, status, bound=bound, message=message)
    x = np.where(admitted[:, None], x, True)
    info: dict[str, Any] = {"iteration_time_s": t}
    if t_bound is not None:
        info["iteration_time_bound_s"] = t_bound
    weight = None
    return SolveResult(name, status, x, admitted.copy(), weight, bound, message=message, info=info)
