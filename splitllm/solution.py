"""Solution files: writing them, and checking any solution file, figures and claims."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.errors import InputError, InputErrors
from splitllm.evaluator import Evaluation, evaluate
from splitllm.instance import Instance
from splitllm.jsonio import read_json, write_json
from splitllm.result import SolveResult, Status, gap
from splitllm.schema_check import solution_schema_errors
from splitllm.batched.evaluator import evaluate_batch
from splitllm.batched import server_costs
from splitllm.resources import CLIENT_MEM, COUPLED, KV, RESOURCES, TPOT, TTFT, Objective
from splitllm.tolerances import FIGURE_RTOL, OPTIMAL_GAP

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
        totals.update({res.figure: _num(evaluation.totals[res.key]) for res in COUPLED})
        if math.isfinite(getattr(evaluation, "iteration_time", math.nan)):  # a throughput placement (F5)
            totals["iteration_time_s"] = float(getattr(evaluation, "iteration_time"))
    batch = totals is not None and "iteration_time_s" in totals
    engine = {key: result.info[key] for key in ("engine", "ttft") if batch and key in result.info}
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
        **engine,
        "requests": requests,
    }


def write_solution(path: str | Path, instance: Instance, result: SolveResult) -> None:
    """Write the solution file atomically."""
    write_json(path, to_json(instance, result))


def check_solution(instance: Instance, data: Any) -> list[str]:
    """Re-evaluate a parsed solution file; return every problem found (empty = valid).

    The file must match the published solution schema (else :class:`InputErrors`, bad
    input) and list each request in instance order. Then every claim is checked: the
    status agrees with what the file holds (placements and objective exactly when it
    says ``optimal`` or ``feasible``; ``error`` and ``unknown`` are never a valid
    answer), each placement meets every constraint of the problem, every stated figure
    matches the evaluator (relative 1e-6), the bound lies on the right side of the
    objective, the gap is the one :func:`splitllm.result.gap` computes from them, and
    ``optimal`` comes with a gap of at most :data:`~splitllm.tolerances.OPTIMAL_GAP`.
    """
    errors = solution_schema_errors(data)
    if errors:
        raise InputErrors(errors)
    entries = data["requests"]
    if len(entries) != instance.n_requests:
        raise InputError("requests", f"must list all {instance.n_requests} requests of the instance, in order, got {len(entries)}")
    for i, (entry, request) in enumerate(zip(entries, instance.requests)):
        if entry["id"] != request.id or isinstance(entry["id"], bool):
            raise InputError(f"requests[{i}].id", f"must be {request.id!r} (instance order)")
    status = data["status"]
    problems = _status_claims(data, status)
    if status not in (Status.OPTIMAL.value, Status.FEASIBLE.value):
        return problems or [f"status: {status}: the file holds no solution to check"]
    placements, admitted = _placements(instance, entries)
    if "iteration_time_s" in (data.get("totals") or {}):  # a throughput placement: its own evaluator
        return problems + _batch_claims(instance, data, placements, admitted)
    evaluation = evaluate(instance, placements, admitted)
    problems += list(evaluation.violations)
    problems += _figures(instance, data, evaluation)
    problems += _bound_claims(instance.objective, data)
    return problems


def _batch_claims(instance: Instance, data: dict[str, Any], placements: np.ndarray, admitted: np.ndarray) -> list[str]:
    """A throughput placement's limits and figures, with ``T`` priced by the file's engine
    on the server's batched tables (batch-1 TTFT a limit too when the file says ``ttft``);
    its objective is the admitted weight (maximised)."""
    ttft = bool(data.get("ttft", False))
    evaluation = evaluate_batch(instance, server_costs(instance, data.get("engine", "vllm")), placements, admitted, ttft)
    problems = list(evaluation.violations)
    held = (TPOT, KV, CLIENT_MEM) + ((TTFT,) if ttft else ())
    for i, entry in enumerate(data["requests"]):
        if evaluation.admitted[i]:
            for res in held:
                problems += _misstated(f"requests[{i}].{res.figure}", entry.get(res.figure), float(evaluation.metrics.of(res)[i]))
    totals = data["totals"]
    problems += _misstated("totals.iteration_time_s", totals.get("iteration_time_s"), evaluation.iteration_time)
    problems += _misstated("totals.admitted_weight", totals.get("admitted_weight"), evaluation.admitted_weight)
    problems += _misstated("objective", data.get("objective"), evaluation.admitted_weight)
    return problems + _bound_claims(Objective.MAX_ADMITTED, data)


def _status_claims(data: dict[str, Any], status: str) -> list[str]:
    """What the status says against what the file holds."""
    if status in (Status.ERROR.value, Status.UNKNOWN.value):
        return [f"status: {status}: the solver's answer is not a verified solution"]
    entries = data["requests"]
    if status in (Status.OPTIMAL.value, Status.FEASIBLE.value):
        problems = [] if data.get("objective") is not None else [f"objective: status {status} must state its objective, got null"]
        for i, entry in enumerate(entries):
            if entry["admitted"] != (entry["placement"] is not None):
                problems.append(f"requests[{i}]: admitted must be true exactly when a placement is given")
        return problems
    problems = [f"{key}: status {status} holds no solution, but {key} is stated" for key in ("objective", "totals") if data.get(key) is not None]
    problems += [
        f"requests[{i}]: status {status} holds no solution, but the request is admitted or placed"
        for i, entry in enumerate(entries)
        if entry["admitted"] or entry["placement"] is not None
    ]
    return problems


def _placements(instance: Instance, entries: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (requests x blocks) placements and admitted flags of the file's entries."""
    placements = np.ones((instance.n_requests, instance.n_blocks), dtype=bool)
    admitted = np.zeros(instance.n_requests, dtype=bool)
    for i, entry in enumerate(entries):
        placement = entry["placement"]
        admitted[i] = entry["admitted"] and placement is not None
        if placement is None:
            continue
        if len(placement) != instance.n_blocks:
            raise InputError(f"requests[{i}].placement", f"must be a string of {instance.n_blocks} letters C/S, got {len(placement)}")
        placements[i] = [ch == "S" for ch in placement]
    return placements, admitted


def _figures(instance: Instance, data: dict[str, Any], evaluation: Evaluation) -> list[str]:
    """Every stated figure against the evaluator's."""
    problems: list[str] = []
    for i, entry in enumerate(data["requests"]):
        if not evaluation.admitted[i]:
            continue
        for res in RESOURCES:
            problems += _misstated(f"requests[{i}].{res.figure}", entry.get(res.figure), float(evaluation.metrics.of(res)[i]))
    totals = data.get("totals") or {}
    for res in COUPLED:
        problems += _misstated(f"totals.{res.figure}", totals.get(res.figure), evaluation.totals[res.key])
    problems += _misstated("totals.admitted_weight", totals.get("admitted_weight"), evaluation.admitted_weight)
    problems += _misstated("objective", data.get("objective"), evaluation.objective(instance.objective))
    return problems


def _bound_claims(objective_kind: Objective, data: dict[str, Any]) -> list[str]:
    """The bound on the right side of the objective, the gap as stated, optimal proven."""
    objective, bound, stated_gap = data.get("objective"), data.get("bound"), data.get("gap")
    true_gap = gap(objective, bound)
    problems: list[str] = []
    if objective is not None and bound is not None:
        slack = FIGURE_RTOL * max(1.0, abs(objective))
        if not objective_kind.bound_holds(objective, bound, slack):
            side, kind = ("below", "an upper") if objective_kind.maximize else ("above", "a lower")
            problems.append(f"bound: {bound:.9g} is {side} the objective {objective:.9g}; under {objective_kind} it is {kind} bound")
    if stated_gap is not None:
        if true_gap is None or not math.isfinite(true_gap):
            shown = "no finite gap" if true_gap is not None else "no gap (one of them is null)"
            problems.append(f"gap: states {stated_gap:.9g}, but objective and bound give {shown}")
        elif abs(stated_gap - true_gap) > FIGURE_RTOL * max(true_gap, 1e-3):
            problems.append(f"gap: states {stated_gap:.9g}, objective and bound give {true_gap:.9g}")
    if data["status"] == Status.OPTIMAL.value:
        if bound is None:
            problems.append("bound: status optimal must state the bound that proves it, got null")
        elif true_gap is not None and true_gap > OPTIMAL_GAP and abs(objective - bound) > 1e-12:
            problems.append(f"status: optimal, but objective and bound differ by a gap of {true_gap:.3g} > {OPTIMAL_GAP:g}")
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
    """Read a solution file (strict JSON; the schema is checked by :func:`check_solution`)."""
    return read_json(path)
