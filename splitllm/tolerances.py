"""Tolerances every coupled solver and the CP-SAT model share (a core module: the
formulations import it, so it must not import the solvers).

- :data:`MIP_REL_GAP`: the relative gap MILP/CP-SAT backends are asked to close, a
  thousand times tighter than :data:`OPTIMAL_GAP`, so backend tolerances never decide
  what we report.
- :data:`FEASIBILITY_TOL`: primal and integrality tolerance given to the backends. Every
  model row is scaled to right-hand side about 1 (:mod:`splitllm.formulations.units`),
  so this is a relative violation, the same as the evaluator's
  :data:`splitllm.evaluator.FEASIBILITY_RTOL`.
- :data:`OPTIMAL_GAP`: a result is reported ``optimal`` only when the backend proved it
  *and* the relative gap between the evaluator's objective and a proven bound is at
  most this (:func:`splitllm.solvers.certify.proven_status`).
"""

from __future__ import annotations

from splitllm.evaluator import FEASIBILITY_RTOL

OPTIMAL_GAP = 1e-6
MIP_REL_GAP = OPTIMAL_GAP * 1e-3
FEASIBILITY_TOL = FEASIBILITY_RTOL
