"""Solution files (docs/formats.md): writing them, and checking any solution file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.errors import InputError
from splitllm.evaluator import evaluate
from splitllm.instance import Instance
from splitllm.jsonio import read_json, write_json
from splitllm.resources import COUPLED, RESOURCES
from splitllm.result import SolveResult
from splitllm.tolerances import FIGURE_RTOL

SOLUTION_FORMAT = "splitllm/solution"


def _num(value: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def placement_string(row: np.ndarray) -> str:
    """``[False, True]`` -> ``'CS'``."""
    return "".join("S" if side else "C" for side in row)


def to_json(instance: Instance, result: SolveResult) -> dict[str, Any]:
    """The solution file of ``result`` (which :func:`splitllm.registry.verify` has evaluated)."""
    evaluation = result.evaluation
    requests = []
    for i, request in enumerate(instance.requests):
        admitted = evaluation is not None and bool(evaluation.admitted[i])
        entry: dict[str, Any] = {"id": request.id, "admitted": admitted, "placement": None}
        if admitted and result.placements is not None and evaluation is not None:
            entry["placement"] = placement_string(result.placements[i])
            entry.update({res.figure: _num(evaluation.metrics.of(res)[i]) for res in RESOURCES})
        requests.append(entry)
    totals = None
    if evaluation is not None:
        totals = {"admitted_weight": evaluation.admitted_weight}
        totals.update({res.figure: evaluation.totals[res.key] for res in COUPLED})
    return {
        "format": SOLUTION_FORMAT,
        "version": 1,
        "instance": instance.name,
        "solver": result.solver,
        "status": result.status.value,
        "message": result.message,
        "objective": _num(result.objective),
        "bound": _num(result.bound),
        "gap": _num(result.gap),
        "time_s": result.time_s,
        "totals": totals,
        "requests": requests,
    }


def write_solution(path: str | Path, instance: Instance, result: SolveResult) -> None:
    """Write the solution file atomically."""
    write_json(path, to_json(instance, result))


def check_solution(instance: Instance, data: Any) -> list[str]:
    """Re-evaluate a parsed solution file; return every problem found (empty = valid).

    Checks the format, that each request is listed in instance order, every constraint
    of the cost model, and every stated figure against the evaluator (relative 1e-6).
    """
    if not isinstance(data, dict) or data.get("format") != SOLUTION_FORMAT:
        raise InputError("format", f"must be {SOLUTION_FORMAT!r}")
    if data.get("status") == "error":  # a solver's answer that failed verification is no solution
        return [f"status: error ({data.get('message') or 'the answer failed verification'}): not a solution"]
    entries = data.get("requests")
    if not isinstance(entries, list) or len(entries) != instance.n_requests:
        raise InputError("requests", f"must list all {instance.n_requests} requests of the instance, in order")
    placements = np.ones((instance.n_requests, instance.n_blocks), dtype=bool)
    admitted = np.zeros(instance.n_requests, dtype=bool)
    for i, (entry, request) in enumerate(zip(entries, instance.requests)):
        if not isinstance(entry, dict) or entry.get("id") != request.id:
            raise InputError(f"requests[{i}].id", f"must be {request.id!r} (instance order)")
        admitted[i] = bool(entry.get("admitted", entry.get("placement") is not None))
        placement = entry.get("placement")
        if admitted[i]:
            if not isinstance(placement, str) or len(placement) != instance.n_blocks or set(placement) - {"C", "S"}:
                raise InputError(f"requests[{i}].placement", f"must be a string of {instance.n_blocks} letters C/S")
            placements[i] = [ch == "S" for ch in placement]
    evaluation = evaluate(instance, placements, admitted)
    problems = list(evaluation.violations)
    for i, entry in enumerate(entries):
        if not admitted[i]:
            continue
        for res in RESOURCES:
            problems += _misstated(f"requests[{i}].{res.figure}", entry.get(res.figure), float(evaluation.metrics.of(res)[i]))
    totals = data.get("totals") or {}
    for res in COUPLED:
        problems += _misstated(f"totals.{res.figure}", totals.get(res.figure), evaluation.totals[res.key])
    problems += _misstated("totals.admitted_weight", totals.get("admitted_weight"), evaluation.admitted_weight)
    if data.get("status") in ("optimal", "feasible"):
        problems += _misstated("objective", data.get("objective"), evaluation.objective(instance.objective))
    return problems


def _misstated(path: str, stated: Any, true: float) -> list[str]:
    """A problem line when a stated figure differs from the evaluator's; None means unstated."""
    if stated is None:
        return []
    if not isinstance(stated, (int, float)) or isinstance(stated, bool):
        return [f"{path}: must be a number, got {stated!r}"]
    if math.isnan(true) or abs(stated - true) > FIGURE_RTOL * max(abs(true), 1e-12):
        return [f"{path}: states {stated:.9g}, evaluator finds {true:.9g}"]
    return []


def load_solution(path: str | Path) -> Any:
    return read_json(path)
