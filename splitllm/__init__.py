"""splitllm: decide, per LLM request, which model blocks run on the client and which on the server.

The core: :mod:`splitllm.instance` (files and compiled arrays), :mod:`splitllm.evaluator`
(the cost model's formulas), :mod:`splitllm.registry` (every solver, verified), and the CLI.
"""

from splitllm.errors import InputError, SplitLLMError
from splitllm.instance import Instance, load_instance, parse_instance
from splitllm.registry import solve, solvers
from splitllm.result import SolveResult, Status, gap

__all__ = [
    "Instance",
    "InputError",
    "SolveResult",
    "SplitLLMError",
    "Status",
    "gap",
    "load_instance",
    "parse_instance",
    "solve",
    "solvers",
]
__version__ = "0.1.0"
