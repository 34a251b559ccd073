"""The solver registry: one place that names, runs and verifies every solver.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> result = solve(load_instance(example_path("tiny")), "dp")
>>> result.status.value, round(result.objective, 6)
('optimal', 0.4)
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splitllm.errors import SolverUnavailable
from splitllm.evaluator import evaluate
from splitllm.instance import Instance
from splitllm.options import Option, check_time_limit, coerce_options
from splitllm.result import SolveResult, Status
from splitllm.tolerances import FIGURE_RTOL

SolverFunction = Callable[..., SolveResult]
#: Re-checks a solver's answer: ``verifier(instance, result, options) -> result``.
Verifier = Callable[[Instance, SolveResult, dict[str, Any]], SolveResult]


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver: ``function(instance, *, time_limit, **options) -> SolveResult``,
    with its declared :class:`~splitllm.options.Option` s. ``default_time_limit``
    (seconds) applies when the caller gives none, for solvers whose solves can run long."""

    name: str
    description: str
    function: SolverFunction
    requires: tuple[str, ...] = ()
    exact: bool = False
    options: tuple[Option, ...] = ()
    verifier: Verifier | None = None
    default_time_limit: float | None = None

    def coerce_options(self, given: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """``given`` checked against the declared options and typed (CLI strings included)."""
        return coerce_options(self.name, self.options, given, prefix)

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


_REGISTRY: dict[str, SolverSpec] = {}


def register(
    name: str,
    description: str,
    requires: tuple[str, ...] = (),
    exact: bool = False,
    options: tuple[Option, ...] = (),
    verifier: Verifier | None = None,
    default_time_limit: float | None = None,
) -> Callable[[SolverFunction], SolverFunction]:
    """Decorator that adds a solver function, and the options it takes, to the registry.

    ``verifier`` re-checks the solver's answers when it solves another problem than the
    placement problem (default: :func:`verify`); ``default_time_limit`` is the time
    limit when the caller gives none (default: none).
    """

    def add(function: SolverFunction) -> SolverFunction:
        _REGISTRY[name] = SolverSpec(name, description, function, requires, exact, options, verifier, default_time_limit)
        return function

    return add


def solvers() -> dict[str, SolverSpec]:
    """Every registered solver, by name (importing :mod:`splitllm.solvers` registers them)."""
    importlib.import_module("splitllm.solvers")
    return dict(_REGISTRY)


def get(name: str) -> SolverSpec:
    """The solver called ``name``; unknown or uninstalled solvers raise :class:`SolverUnavailable`."""
    known = solvers()
    if name not in known:
        raise SolverUnavailable(f"unknown solver {name!r}; choose one of {', '.join(sorted(known))}")
    spec = known[name]
    if not spec.installed:
        raise SolverUnavailable(f"solver {name!r} needs {', '.join(spec.requires)}, which is not installed")
    return spec


def solve(instance: Instance, name: str, *, time_limit: float | None = None, **options: Any) -> SolveResult:
    """Run solver ``name`` and re-check its answer with the independent evaluator.

    ``time_limit`` and ``options`` are checked first: an unknown option, a value of the
    wrong type or out of range raises :class:`~splitllm.errors.OptionError` naming it.
    Without ``time_limit``, a solver's ``default_time_limit`` applies, and the result's
    message says so.
    """
    spec = get(name)
    time_limit = check_time_limit(time_limit)
    defaulted = time_limit is None and spec.default_time_limit is not None
    if defaulted:
        time_limit = spec.default_time_limit
    typed = spec.coerce_options(options)
    start = time.perf_counter()
    result = spec.function(instance, time_limit=time_limit, **typed)
    result.time_s = time.perf_counter() - start
    result.solver = name
    result = spec.verifier(instance, result, typed) if spec.verifier is not None else verify(instance, result)
    if defaulted:
        note = f"ran under {name}'s default time limit of {time_limit:g} s (give a time limit to change it)"
        result.message = f"{result.message}; {note}" if result.message else note
    return result


def verify(instance: Instance, result: SolveResult) -> SolveResult:
    """Re-evaluate ``result``; a solution that breaks a limit or was misstated becomes ``error``.

    On success ``result.objective`` is replaced by the evaluator's figure.
    """
    if result.placements is None or result.admitted is None:
        if result.status.has_solution:
            result.status, result.message = Status.ERROR, f"solver said {result.status.value} but returned no placements"
        return result
    evaluation = evaluate(instance, result.placements, result.admitted)
    result.evaluation = evaluation
    claimed = result.objective
    true_objective = evaluation.objective(instance.objective)
    problems = list(evaluation.violations)
    slack = FIGURE_RTOL * max(1.0, abs(true_objective))
    if claimed is not None and not abs(claimed - true_objective) <= slack:
        problems.append(f"objective: solver said {claimed:.9g}, evaluator finds {true_objective:.9g}")
    if result.bound is not None and not instance.objective.bound_holds(true_objective, result.bound, slack):
        problems.append(f"bound: {result.bound:.9g} is not a valid bound for objective {true_objective:.9g}")
    if problems:
        result.status = Status.ERROR
        result.message = "; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")
    else:
        result.objective = true_objective
    return result

