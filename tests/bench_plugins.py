"""Test-only solvers for the benchmark runner, loaded with ``--plugin tests/bench_plugins.py``.

``test-crash`` kills its own process (SIGABRT, as a segfaulting backend would) and
``test-hang`` ignores its time limit and sleeps; the runner must lose only their cells.
Importing this module registers them, which only the benchmark's child processes (and
the parent's name check) do.
"""

from __future__ import annotations

import os
import time

from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult


@register("test-crash", "test only: the process dies")
def crash(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    os.abort()


@register("test-hang", "test only: ignores its time limit and never returns")
def hang(instance: Instance, *, time_limit: float | None = None) -> SolveResult:
    while True:
        time.sleep(60)
