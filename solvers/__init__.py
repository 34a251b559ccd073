"""Solvers (listed by ``splitllm solvers``). Importing this package registers every solver."""

from splitllm.solvers import baselines, brute, dp, dp_grid  # noqa: F401
from splitllm.solvers import colmilp, cpsat, decomp, milp  # noqa: F401
from splitllm.solvers import batch_brute, batch_greedy  # noqa: F401
from splitllm.solvers import batch_cpsat, batch_exact, batch_milp  # noqa: F401
