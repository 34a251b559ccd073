"""Solvers (DESIGN §5). Importing this package registers every solver."""

from splitllm.solvers import dp  # noqa: F401
