"""Every numerical tolerance splitllm uses, in one place (a core module: it imports nothing).

- :data:`FEASIBILITY_RTOL`: a figure meets its limit when ``value <= limit * (1 + 1e-9)``,
  so that sums taken in a different order cannot flip feasibility (1e-9 of a second is a
  nanosecond). The evaluator, the DPs and the model rows all use it.
- :data:`FIGURE_RTOL`: a solver's or a solution file's stated objective, bound and
  per-request figures must match the evaluator's to this relative tolerance.
- :data:`OPTIMAL_GAP`: a result is reported ``optimal`` only when the backend proved it
  *and* the relative gap between the evaluator's objective and a proven bound is at
  most this.
- :data:`MIP_REL_GAP`: the relative gap MILP/CP-SAT backends are asked to close, a
  thousand times tighter than :data:`OPTIMAL_GAP`, so backend tolerances never decide
  what we report.
- :data:`FEASIBILITY_TOL`: primal and integrality tolerance given to the backends. Every
  model row is scaled to right-hand side about 1, so this is a relative violation, the
  same as :data:`FEASIBILITY_RTOL`.
- :data:`INCUMBENT_RTOL`: inside the exact DP, a label must beat the incumbent by this
  relative margin to survive (float noise only; far below :data:`OPTIMAL_GAP`).
"""

from __future__ import annotations

FEASIBILITY_RTOL = 1e-9
FIGURE_RTOL = 1e-6
OPTIMAL_GAP = 1e-6
MIP_REL_GAP = OPTIMAL_GAP * 1e-3
FEASIBILITY_TOL = FEASIBILITY_RTOL
INCUMBENT_RTOL = 1e-12
