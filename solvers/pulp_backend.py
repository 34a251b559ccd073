"""Solving a PuLP problem with CBC or HiGHS and reading the solver's *own* verdict.

PuLP's status has said "Optimal" for CBC runs stopped by the time limit and for HiGHS
runs that had not closed the gap (issue 3), so this module never trusts it:

- ``highs``: PuLP's HiGHS API drives ``highspy``; the model status, primal solution
  status and MIP dual bound are read from that ``highspy.Highs`` object.
- ``cbc``: PuLP's CBC command writes CBC's log to a file; its ``Result - ...`` line,
  ``Objective value:`` and ``Lower bound:`` are parsed (CBC minimises; PuLP passes
  ``-max`` for maximisation, and CBC then logs the negated values). CBC does not look
  at its clock in every phase (a 300 s limit once ran 405 s), so its process gets a
  deadline too (:class:`_DeadlinePopen`): SIGINT at the limit (where CBC honours it, it
  stops as on Ctrl-C and writes its incumbent) and a kill :data:`CBC_GRACE_S` later
  (then the run has no solution: measured on the 100-request F2 model, CBC had not
  stopped 5 s after SIGINT).

Both get :data:`~splitllm.tolerances.MIP_REL_GAP` and
:data:`~splitllm.tolerances.FEASIBILITY_TOL`. Only HiGHS through highspy/PuLP is
used: OR-Tools' own HiGHS build in the same process has segfaulted (issue 3).

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

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulp

from splitllm.errors import SplitLLMError
from splitllm.result import Status
from splitllm.tolerances import FEASIBILITY_TOL, MIP_REL_GAP

BACKENDS = ("cbc", "highs")


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


def run(problem: pulp.LpProblem, backend: str, time_limit: float | None = None, threads: int | None = None) -> BackendOutcome:
    """Solve ``problem`` in place with ``backend`` (``cbc`` or ``highs``)."""
    if backend not in BACKENDS:
        raise SplitLLMError(f"backend: choose one of {', '.join(BACKENDS)}, got {backend!r}")
    if time_limit is not None and time_limit <= 0:
        return BackendOutcome(Status.NO_SOLUTION, None, None, "time limit reached before the backend started")
    return _run_highs(problem, time_limit, threads) if backend == "highs" else _run_cbc(problem, time_limit, threads)


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 1 to /dev/null for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _common_options(time_limit: float | None, threads: int | None) -> dict[str, Any]:
    """What both backends get: silence, the time limit, the gap, threads."""
    return {"msg": False, "timeLimit": time_limit, "gapRel": MIP_REL_GAP, "gapAbs": 0.0, "threads": threads}


def _run_highs(problem: pulp.LpProblem, time_limit: float | None, threads: int | None) -> BackendOutcome:
    import highspy

    solver = pulp.HiGHS(
        **_common_options(time_limit, threads),
        primal_feasibility_tolerance=FEASIBILITY_TOL,
        mip_feasibility_tolerance=FEASIBILITY_TOL,
    )
    if threads is not None:  # HiGHS's thread pool keeps the first run's size: "Not Set" otherwise
        highspy.Highs.resetGlobalScheduler(True)
    with _native_stdout_silenced():  # HiGHS prints its banner on construction, msg or not
        problem.solve(solver)
    h = problem.solverModel
    status, info = h.getModelStatus(), h.getInfo()
    sign = -1.0 if problem.sense == pulp.LpMaximize else 1.0
    has_solution = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    objective = problem.objective.value() if has_solution else None
    text = h.modelStatusToString(status)
    M = highspy.HighsModelStatus
    if status == M.kOptimal:
        bound = sign * info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else objective
        return BackendOutcome(Status.OPTIMAL, objective, bound, f"HiGHS: {text}")
    if status in (M.kInfeasible,):
        return BackendOutcome(Status.INFEASIBLE, None, None, f"HiGHS: {text}")
    bound = sign * info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None
    if status in (M.kTimeLimit, M.kIterationLimit, M.kSolutionLimit, M.kInterrupt, M.kObjectiveBound, M.kObjectiveTarget):
        return BackendOutcome(Status.FEASIBLE if has_solution else Status.NO_SOLUTION, objective, bound, f"HiGHS: {text}")
    return BackendOutcome(Status.FEASIBLE if has_solution else Status.UNKNOWN, objective, bound, f"HiGHS: {text}")


_CBC_RESULT = re.compile(r"^Result - (.*)$", re.MULTILINE)
_CBC_NUMBER = r"^{}:\s*(-?[0-9.eE+-]+)"


def _cbc_number(log: str, label: str) -> float | None:
    found = re.search(_CBC_NUMBER.format(re.escape(label)), log, re.MULTILINE)
    return float(found.group(1)) if found else None


#: Seconds CBC gets to stop and write its incumbent after SIGINT before it is killed.
CBC_GRACE_S = 2.0


class _DeadlinePopen(subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` for PuLP's CBC command whose ``wait()`` holds the deadline
    the calling thread set in :attr:`deadline` (none set: an ordinary ``Popen``)."""

    deadline = threading.local()

    def wait(self, timeout: float | None = None) -> int:
        deadline = getattr(_DeadlinePopen.deadline, "at", None)
        if timeout is not None or deadline is None:
            return super().wait(timeout)
        try:
            return super().wait(max(0.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGINT)
        try:
            return super().wait(CBC_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return super().wait()


# PuLP's CBC command reaches subprocess through its module's global name: point that one
# name (and nothing else in the process) at a copy whose Popen is _DeadlinePopen.
pulp.apis.coin_api.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": _DeadlinePopen})


def _run_cbc(problem: pulp.LpProblem, time_limit: float | None, threads: int | None) -> BackendOutcome:
    fd, log_path = tempfile.mkstemp(prefix="splitllm-cbc-", suffix=".log")
    os.close(fd)
    _DeadlinePopen.deadline.at = None if time_limit is None else time.perf_counter() + time_limit
    try:
        solver = pulp.PULP_CBC_CMD(
            **_common_options(time_limit, threads),
            logPath=log_path,
            options=[f"primalTolerance {FEASIBILITY_TOL}", f"integerTolerance {FEASIBILITY_TOL}"],
        )
        try:
            problem.solve(solver)
        except pulp.PulpSolverError:  # killed after the grace period: no solution file
            return BackendOutcome(Status.NO_SOLUTION, None, None, f"CBC: killed {CBC_GRACE_S:g} s after the time limit")
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            log = handle.read()
    finally:
        _DeadlinePopen.deadline.at = None
        os.unlink(log_path)
    return _parse_cbc(problem, log)


def _parse_cbc(problem: pulp.LpProblem, log: str) -> BackendOutcome:
    """CBC's verdict from its log (see the module docstring)."""
    found = _CBC_RESULT.search(log)
    result = found.group(1).strip() if found else "no result line"
    sign = -1.0 if problem.sense == pulp.LpMaximize else 1.0
    logged = _cbc_number(log, "Objective value")
    has_solution = logged is not None and problem.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    objective = problem.objective.value() if has_solution else None
    lower = _cbc_number(log, "Lower bound")
    bound = sign * lower if lower is not None else None
    message = f"CBC: {result}"
    if result.startswith("Optimal solution found"):
        return BackendOutcome(Status.OPTIMAL, objective, objective if bound is None else bound, message)
    if "infeasible" in result.lower():
        return BackendOutcome(Status.INFEASIBLE, None, None, message)
    if result.startswith("Stopped"):
        return BackendOutcome(Status.FEASIBLE if has_solution else Status.NO_SOLUTION, objective, bound, message)
    return BackendOutcome(Status.FEASIBLE if has_solution else Status.UNKNOWN, objective, bound, message)
