"""The policy registry: one place that names every placement policy of ``splitllm simulate``.

A policy is given as ``NAME`` or ``NAME:ARGS`` (``batch:8:2.5``, ``solution:FILE``); its
spec (:class:`PolicySpec`) says how it is written, what it does and which options its
arguments are, and makes its :class:`Placement`. ``splitllm policies`` lists them.

* Built-in policies register themselves with :func:`register_policy` in their module
  (``all-server`` and ``solution`` in :mod:`.policies`, ``batch-online`` in :mod:`.online`);
  importing :mod:`splitllm.serving.policies` imports every such module. A new online policy
  is one module (its placer and its registration) and one import line there.
* Every registered solver is a policy too, derived from the solver registry: a
  throughput-placement (F5) solver, one that takes the ``engine`` option, places windows
  of requests (``NAME[:N[:S]]``); any other solver places each request alone.

Examples
--------
>>> sorted(policies())[:3]
['all-server', 'batch', 'batch-brute']
>>> get_policy("batch-greedy:8").syntax
'batch-greedy[:N[:S]]'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import InputError
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import SolverSpec, solvers
from splitllm.serving.simulator import OnlinePlacer


@dataclass(frozen=True)
class Placement:
    """Per request: ``placements`` (``True`` = server), ``sent``; ``wall_s`` of placing all;
    ``latency_s`` charged to each request when placing is simulated."""

    policy: str
    placements: NDArray[np.bool_]
    sent: NDArray[np.bool_]
    wall_s: float
    latency_s: NDArray[np.float64]
    #: Requests a windowed policy's solver rejected (sent all on the server), and its windows.
    fallback: int = 0
    windows: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    #: An online policy: makes the placer of one simulation (``placements`` are then its start).
    online: Callable[[], OnlinePlacer] | None = None


@dataclass(frozen=True)
class Server:
    """What a policy knows of the simulated server: its engine and KV capacity (``None``: the instance's)."""

    engine: str = "vllm"
    kv_capacity_bytes: float | None = None


#: Makes a policy's placement: ``(instance, the policy as given, its spec, server) -> Placement``.
PolicyFunction = Callable[[Instance, str, "PolicySpec", Server], Placement]


#: The kinds of policy, in the order ``splitllm policies`` lists them.
KINDS = ("built-in", "online", "windowed", "per-request")


@dataclass(frozen=True)
class PolicySpec:
    """A placement policy: ``syntax`` (how it is written), ``help`` (one line), the
    ``options`` its ``:``-separated arguments are (in order), ``function`` that places, and
    ``kind``: ``built-in``, ``online``, ``windowed`` or ``per-request``."""

    name: str
    syntax: str
    help: str
    function: PolicyFunction
    kind: str = "built-in"
    options: tuple[Option, ...] = ()
    #: The solver of a policy derived from the solver registry.
    solver: str | None = None

    def place(self, inst: Instance, policy: str, server: Server) -> Placement:
        return self.function(inst, policy, self, server)


_REGISTRY: dict[str, PolicySpec] = {}
#: The derived policies: a spec per solver, made by :mod:`.policies` (windowed or per request).
_FROM_SOLVER: list[Callable[[SolverSpec], PolicySpec]] = []


def register_policy(name: str, help: str, *, syntax: str | None = None, kind: str = "built-in",
                    options: tuple[Option, ...] = ()) -> Callable[[PolicyFunction], PolicyFunction]:
    """Decorator that adds a policy function to the registry (see :class:`PolicySpec`)."""

    def add(function: PolicyFunction) -> PolicyFunction:
        _REGISTRY[name] = PolicySpec(name, syntax or name, help, function, kind, options)
        return function

    return add


def register_solver_policies(make: Callable[[SolverSpec], PolicySpec]) -> Callable[[SolverSpec], PolicySpec]:
    """Decorator: ``make(solver)`` is the policy of each registered solver."""
    _FROM_SOLVER.append(make)
    return make


def policies() -> dict[str, PolicySpec]:
    """Every policy by name: the registered ones, then one per solver (a built-in name wins)."""
    importlib.import_module("splitllm.serving.policies")
    found = dict(_REGISTRY)
    for solver in sorted(solvers().values(), key=lambda s: s.name):
        for make in _FROM_SOLVER:
            found.setdefault(solver.name, make(solver))
    return found


def get_policy(policy: str) -> PolicySpec:
    """The spec of ``policy`` (``NAME`` or ``NAME:ARGS``); an unknown one, or arguments to a
    policy that takes none, is refused in one line listing the choices."""
    known = policies()
    name, sep, _ = policy.partition(":")
    spec = known.get(name)
    if spec is None or (sep and spec.syntax == spec.name):
        choices = ", ".join(s.syntax for s in sorted(known.values(), key=lambda s: (KINDS.index(s.kind), s.name)))
        raise InputError("--policy", f"unknown policy {policy!r}; choose one of {choices}")
    return spec
