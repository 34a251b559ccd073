"""Solving a PuLP problem with CBC or HiGHS in a child process, and reading the solver's *own* verdict.

PuLP's status has said "Optimal" for CBC runs stopped by the time limit and for HiGHS
runs that had not closed the gap, so this module never trusts it. It does not use PuLP's
solver classes either: the problem is written to an MPS file here (:func:`write_mps`,
which checks the deadline as it goes, so writing counts against the limit) and each
backend runs as its own process, which is stopped from outside at the deadline. Nothing
in PuLP, OR-Tools or the rest of the process is changed.

- ``cbc``: PuLP's bundled CBC binary, run with probing off (with it, CBC once called a
  worse answer optimal); its ``Result - ...`` line, ``Objective value:``
  and ``Lower bound:`` are parsed from its log. CBC does not look at its clock in every
  phase (a 300 s limit once ran 405 s), so at the deadline it gets SIGINT (where CBC
  honours it, it stops as on Ctrl-C and writes its incumbent) and a kill :func:`grace_s`
  later (then the run has no solution: measured on the 100-request F2 model, CBC had not
  stopped 5 s after SIGINT).
- ``highs``: ``highspy`` in a child (:mod:`splitllm.solvers.highs_process`); the model
  status, primal solution status and MIP dual bound come from that ``highspy.Highs``
  object. HiGHS has run far past its time limit on large models, so the child is killed
  :func:`grace_s` after the deadline; its last improving solution, written as found,
  is then still used (as ``feasible``).

The model is always written as a minimisation (a maximisation's objective negated), so
both backends read the same file. Both get :data:`~splitllm.tolerances.MIP_REL_GAP` and
:data:`~splitllm.tolerances.FEASIBILITY_TOL`. When ``logging.getLogger("splitllm")``
is enabled for DEBUG, each backend logs and its log goes to that logger (so to stderr
under the CLI's ``-v``), never to stdout.

Examples
--------
>>> import pulp
>>> p = pulp.LpProblem("knap", pulp.LpMaximize)
>>> x = [pulp.LpVariable(f"x{i}", cat=pulp.LpBinary) for i in range(3)]
>>> p += pulp.lpSum([3 * x[0], 2 * x[1], 2 * x[2]])
>>> p += pulp.lpSum(x) <= 2
>>> [(b, run(p, b).status.value, run(p, b).objective) for b in BACKENDS]
[('cbc', 'optimal', 5.0), ('highs', 'optimal', 5.0)]
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pulp

from splitllm.deadline import TimeLimitReached, check, deadline_in, grace_s
from splitllm.errors import SplitLLMError
from splitllm.result import Status
from splitllm.solvers import highs_process
from splitllm.tolerances import FEASIBILITY_TOL, MIP_REL_GAP

BACKENDS = ("cbc", "highs")
logger = logging.getLogger("splitllm")

#: Rows (then columns) written between two looks at the clock.
_CHECK_EVERY = 5000


@dataclass(frozen=True)
class BackendOutcome:
    """The backend's verdict in the model's own units and sense.

    ``status`` is ``optimal`` only when the backend itself proved it; ``bound`` is its
    proven dual bound (``None`` when it gives none). Variable values are on the problem.
    """

    status: Status
    objective: float | None
    bound: float | None
    message: str = ""


def run(problem: pulp.LpProblem, backend: str, time_limit: float | None = None, threads: int | None = None,
        preprocess: bool = True) -> BackendOutcome:
    """Solve ``problem`` in place with ``backend`` (``cbc`` or ``highs``) within ``time_limit``.

    The limit covers writing the model, the backend and reading its solution back.
    ``preprocess=False`` turns CBC's preprocessing and HiGHS's presolve off (models on
    which they have cut off better solutions).
    """
    if backend not in BACKENDS:
        raise SplitLLMError(f"backend: choose one of {', '.join(BACKENDS)}, got {backend!r}")
    if time_limit is not None and time_limit <= 0:
        return BackendOutcome(Status.NO_SOLUTION, None, None, "time limit reached before the backend started")
    deadline = deadline_in(time_limit)
    with tempfile.TemporaryDirectory(prefix="splitllm-") as folder:
        mps = os.path.join(folder, "model.mps")
        try:
            variables = write_mps(problem, mps, deadline)
        except TimeLimitReached as stop:
            return BackendOutcome(Status.NO_SOLUTION, None, None, str(stop))
        spawn = _run_highs if backend == "highs" else _run_cbc
        return spawn(problem, variables, mps, os.path.join(folder, "out"), deadline, grace_s(time_limit), threads, preprocess)


# -- writing the model ---------------------------------------------------------------------

_SENSE = {pulp.LpConstraintLE: "L", pulp.LpConstraintGE: "G", pulp.LpConstraintEQ: "E"}


def write_mps(problem: pulp.LpProblem, path: str, deadline: float | None = None) -> list[pulp.LpVariable]:
    """Write ``problem`` as a free MPS minimisation, columns ``C{j}`` and rows ``R{i}``.

    Returns the variables in column order. A maximisation's objective is negated; the
    objective's constant is left out. Raises :class:`~splitllm.deadline.TimeLimitReached`
    past ``deadline`` (checked every few thousand rows and columns).
    """
    doing = "writing the model for the backend"
    variables = problem.variables()
    column = {v.name: j for j, v in enumerate(variables)}
    entries: list[list[str]] = [[] for _ in variables]
    sign = -1.0 if problem.sense == pulp.LpMaximize else 1.0
    for v, c in (problem.objective or {}).items():
        entries[column[v.name]].append(f"OBJ {sign * float(c)!r}")
    rows, rhs = [" N  OBJ\n"], []
    for i, constraint in enumerate(problem.constraints.values()):
        if i % _CHECK_EVERY == 0:
            check(deadline, doing)
        rows.append(f" {_SENSE[constraint.sense]}  R{i}\n")
        rhs.append(f"    RHS  R{i}  {-float(constraint.constant) + 0.0!r}\n")
        for v, c in constraint.items():
            entries[column[v.name]].append(f"R{i} {float(c)!r}")
    with open(path, "w", encoding="ascii") as out:
        # FREE: CBC otherwise guesses fixed MPS and misreads lines whose numbers are long
        out.write(f"NAME  {problem.name or 'model'} FREE\nROWS\n")
        out.writelines(rows)
        out.write("COLUMNS\n")
        for j, v in enumerate(variables):
            if j % _CHECK_EVERY == 0:
                check(deadline, doing)
            integer = v.cat == pulp.LpInteger
            out.write("    MARKER  'MARKER'  'INTORG'\n" if integer else "")
            out.writelines(f"    C{j}  {entry}\n" for entry in entries[j] or ["OBJ 0.0"])
            out.write("    MARKER  'MARKER'  'INTEND'\n" if integer else "")
        out.write("RHS\n")
        out.writelines(rhs)
        out.write("BOUNDS\n")
        out.writelines(line for j, v in enumerate(variables) for line in _bounds(f"C{j}", v))
        out.write("ENDATA\n")
    return variables


def _bounds(name: str, v: pulp.LpVariable) -> list[str]:
    """Explicit bounds (readers differ on the defaults of integer columns)."""
    low, up = v.lowBound, v.upBound
    if low is not None and low == up:
        return [f" FX BND  {name}  {float(low)!r}\n"]
    lines = [f" MI BND  {name}\n" if low is None else f" LO BND  {name}  {float(low)!r}\n"]
    lines.append(f" PL BND  {name}\n" if up is None else f" UP BND  {name}  {float(up)!r}\n")
    return lines


# -- running a backend ---------------------------------------------------------------------


def _wait(process: subprocess.Popen, deadline: float | None, grace: float) -> str:  # type: ignore[type-arg]
    """Wait for ``process``; SIGINT at ``deadline``, kill ``grace`` s later.

    Returns ``""`` (it ended by itself), ``"interrupted"`` or ``"killed"``.
    """
    try:
        process.wait(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        return ""
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(grace)
        return "interrupted"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "killed"


def _spawn(args: list[str], log_path: str, deadline: float | None, grace: float, name: str) -> tuple[str, str]:
    """Run ``args`` with its output in ``log_path``; the way it ended and its log text."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            ended = _wait(process, deadline, grace)
        finally:  # e.g. KeyboardInterrupt in the caller: leave no backend running
            if process.poll() is None:
                process.kill()
                process.wait()
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s log:\n%s", name, text.rstrip())
    return ended, text


def _seconds(deadline: float | None) -> float | None:
    return None if deadline is None else max(1e-3, deadline - time.perf_counter())


def _assign(problem: pulp.LpProblem, variables: list[pulp.LpVariable], values: Any) -> float:
    """Put ``values`` (column order) on the variables; the problem's objective value."""
    for v, value in zip(variables, values):
        v.varValue = float(value)
    return float(problem.objective.value()) if problem.objective is not None else 0.0


def _offset(problem: pulp.LpProblem) -> float:
    return float(problem.objective.constant) if problem.objective is not None else 0.0


def _run_highs(
    problem: pulp.LpProblem, variables: list[pulp.LpVariable], mps: str, out: str, deadline: float | None, grace: float, threads: int | None,
    preprocess: bool = True,
) -> BackendOutcome:
    options: dict[str, Any] = {
        "log": logger.isEnabledFor(logging.DEBUG),
        "mip_rel_gap": MIP_REL_GAP,
        "mip_abs_gap": 0.0,
        "primal_feasibility_tolerance": FEASIBILITY_TOL,
        "mip_feasibility_tolerance": FEASIBILITY_TOL,
    }
    left = _seconds(deadline)
    if left is not None:  # across processes: wall-clock time, counted after HiGHS reads the model
        options["deadline_epoch"] = time.time() + left
    if threads is not None:
        options["threads"] = int(threads)
    if not preprocess:
        options["presolve"] = "off"
    args = [sys.executable, highs_process.__file__, mps, out, json.dumps(options)]
    ended, text = _spawn(args, out + ".log", deadline, grace, "HiGHS")
    if not os.path.exists(out + ".json"):
        return _highs_stopped(problem, variables, out, ended, text, grace)
    with open(out + ".json", encoding="utf-8") as handle:
        verdict = json.load(handle)
    outcome = _highs_verdict(problem, variables, out, verdict)
    if outcome.status == Status.UNKNOWN and deadline is not None and time.perf_counter() >= deadline:  # HiGHS's error when its time ran out mid-phase
        return BackendOutcome(Status.NO_SOLUTION, None, outcome.bound, f"{outcome.message} at the time limit")
    return outcome


def _highs_stopped(
    problem: pulp.LpProblem, variables: list[pulp.LpVariable], out: str, ended: str, text: str, grace: float
) -> BackendOutcome:
    """HiGHS gave no verdict: killed at the deadline (its incumbent, if any, is kept) or failed."""
    if not ended:
        tail = text.strip().splitlines()[-1:] or ["no output"]
        return BackendOutcome(Status.ERROR, None, None, f"HiGHS failed: {tail[0]}")
    message = f"HiGHS: did not stop at the time limit; {ended} {grace:.2g} s or less after it"
    if not os.path.exists(out + ".incumbent.npy"):
        return BackendOutcome(Status.NO_SOLUTION, None, None, message)
    objective = _assign(problem, variables, np.load(out + ".incumbent.npy"))
    return BackendOutcome(Status.FEASIBLE, objective, None, f"{message}; its last improving solution kept")


def _highs_verdict(problem: pulp.LpProblem, variables: list[pulp.LpVariable], out: str, verdict: dict[str, Any]) -> BackendOutcome:
    status, has_solution = verdict["model_status"], verdict["has_solution"]
    objective = _assign(problem, variables, np.load(out + ".npy")) if has_solution else None
    sign = -1.0 if problem.sense == pulp.LpMaximize else 1.0
    dual = float(verdict["mip_dual_bound"])
    bound = sign * dual + _offset(problem) if math.isfinite(dual) else None
    message = f"HiGHS: {status.removeprefix('k')}"
    if status == "kOptimal":
        return BackendOutcome(Status.OPTIMAL, objective, objective if bound is None else bound, message)
    if status == "kInfeasible":
        return BackendOutcome(Status.INFEASIBLE, None, None, message)
    stopped = ("kTimeLimit", "kIterationLimit", "kSolutionLimit", "kInterrupt", "kHighsInterrupt", "kObjectiveBound", "kObjectiveTarget")
    fallback = Status.NO_SOLUTION if status in stopped else Status.UNKNOWN
    return BackendOutcome(Status.FEASIBLE if has_solution else fallback, objective, bound, message)


_CBC_RESULT = re.compile(r"^Result - (.*)$", re.MULTILINE)
_CBC_NUMBER = r"^{}:\s*(-?[0-9.eE+-]+)"


def _cbc_number(log: str, label: str) -> float | None:
    found = re.search(_CBC_NUMBER.format(re.escape(label)), log, re.MULTILINE)
    return float(found.group(1)) if found else None


def _cbc_args(mps: str, solution: str, deadline: float | None, threads: int | None, preprocess: bool = True) -> list[str]:
    args = [pulp.PULP_CBC_CMD().path, mps]
    left = _seconds(deadline)
    args += [] if left is None else ["-sec", f"{left:.3f}", "-timeMode", "elapsed"]  # wall clock, not CPU
    args += ["-ratio", str(MIP_REL_GAP), "-allow", "0"] + ([] if threads is None else ["-threads", str(int(threads))])
    args += ["-primalTolerance", str(FEASIBILITY_TOL), "-integerTolerance", str(FEASIBILITY_TOL)]
    # CBC's probing (CglProbing) has cut off better solutions and then reported "Optimal"
    # (coin-or/Cbc#293); on a throughput model it did so once in 1,200 random cases, and
    # never with probing off.
    args += ["-probing", "off"] + ([] if preprocess else ["-preprocess", "off"])
    return args + ["-solve", "-printingOptions", "all", "-solution", solution]


def _run_cbc(
    problem: pulp.LpProblem, variables: list[pulp.LpVariable], mps: str, out: str, deadline: float | None, grace: float, threads: int | None,
    preprocess: bool = True,
) -> BackendOutcome:
    solution = out + ".sol"
    ended, log = _spawn(_cbc_args(mps, solution, deadline, threads, preprocess), out + ".log", deadline, grace, "CBC")
    if ended == "killed" or not os.path.exists(solution):
        why = f"killed {grace:.2g} s after the time limit" if ended == "killed" else "wrote no solution file"
        return BackendOutcome(Status.NO_SOLUTION if ended else Status.ERROR, None, None, f"CBC: {why}")
    has_solution, values = _read_cbc_solution(solution, len(variables))
    if has_solution:
        _assign(problem, variables, values)
    return _parse_cbc(problem, log, has_solution)


def _read_cbc_solution(path: str, n_columns: int) -> tuple[bool, np.ndarray]:
    """Whether CBC's solution file holds a solution (as PuLP reads its first line), and
    the column values (``C{j}`` lines; rows and unknown names skipped)."""
    values = np.zeros(n_columns)
    with open(path, encoding="utf-8", errors="replace") as handle:
        words = handle.readline().split()
        for line in handle:
            parts = line.split()
            if parts and parts[0] == "**":
                parts = parts[1:]
            if len(parts) >= 3 and parts[1].startswith("C") and parts[1][1:].isdigit():
                values[int(parts[1][1:])] = float(parts[2])
    first = words[0] if words else ""
    return first == "Optimal" or (first == "Stopped" and len(words) >= 5 and words[4] == "objective"), values


def _parse_cbc(problem: pulp.LpProblem, log: str, has_solution: bool) -> BackendOutcome:
    """CBC's verdict from its log (see the module docstring)."""
    found = _CBC_RESULT.search(log)
    result = found.group(1).strip() if found else "no result line"
    sign = -1.0 if problem.sense == pulp.LpMaximize else 1.0
    has_solution = has_solution and _cbc_number(log, "Objective value") is not None
    objective = float(problem.objective.value()) if has_solution and problem.objective is not None else (0.0 if has_solution else None)
    lower = _cbc_number(log, "Lower bound")
    bound = sign * lower + _offset(problem) if lower is not None else None
    message = f"CBC: {result}"
    if result.startswith("Optimal solution found"):
        return BackendOutcome(Status.OPTIMAL, objective, objective if bound is None else bound, message)
    if "infeasible" in result.lower():
        return BackendOutcome(Status.INFEASIBLE, None, None, message)
    if result.startswith("Stopped"):
        return BackendOutcome(Status.FEASIBLE if has_solution else Status.NO_SOLUTION, objective, bound, message)
    return BackendOutcome(Status.FEASIBLE if has_solution else Status.UNKNOWN, objective, bound, message)
