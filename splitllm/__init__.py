"""splitllm: decide, per LLM request, which model blocks run on the client and which on the server.

The core: :mod:`splitllm.instance` (files and compiled arrays), :mod:`splitllm.evaluator`
(the cost model's formulas), :mod:`splitllm.registry` (every solver, verified), and the CLI.
"""

from typing import Any

from splitllm.errors import InputError, OptionError, SplitLLMError
from splitllm.instance import Instance, load_instance, parse_instance
from splitllm.registry import solve, solvers
from splitllm.result import SolveResult, Status, gap

__all__ = [
    "Instance",
    "InputError",
    "OptionError",
    "SolveResult",
    "SplitLLMError",
    "Status",
    "gap",
    "load_instance",
    "parse_instance",
    "solve",
    "solve_model",
    "solvers",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``splitllm.solve_model`` on first use: the core does not import the solvers eagerly."""
    if name == "solve_model":
        from splitllm.solvers.user_model import solve_model

        return solve_model
    raise AttributeError(f"module 'splitllm' has no attribute {name!r}")
