"""HiGHS in a child process: read an MPS file, solve it, write the verdict and values.

Run as a script (``python highs_process.py MODEL.mps OUT OPTIONS_JSON``) by
:mod:`splitllm.solvers.pulp_backend`, which kills it at the deadline when HiGHS does not
stop by itself; that is why it is a separate process. It imports only ``highspy`` and
``numpy`` (not splitllm), so it starts fast. Every improving MIP solution is written
to ``OUT.incumbent.npy`` as it is found, so a killed run still leaves its incumbent.
Outputs: ``OUT.npy`` (column values, in the MPS file's column order) and ``OUT.json``
(``model_status`` as HiGHS names it, ``has_solution``, ``mip_dual_bound``), each written
to a temporary name first and then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import highspy
import numpy as np


def _save(path: str, values: Any) -> None:
    with open(path + ".part", "wb") as handle:
        np.save(handle, np.asarray(values, dtype=float))
    os.replace(path + ".part", path)


def _keep_incumbents(h: highspy.Highs, out: str) -> None:
    """Write each improving MIP solution to ``OUT.incumbent.npy``."""

    def on_solution(kind: int, message: str, data_out: Any, data_in: Any, user: Any) -> None:
        _save(out + ".incumbent.npy", data_out.mip_solution)

    h.setCallback(on_solution, None)
    h.startCallback(highspy.cb.HighsCallbackType.kCallbackMipImprovingSolution)


def main(mps: str, out: str, options_json: str) -> int:
    """Options are HiGHS's, plus ``log`` (bool) and ``deadline_epoch`` (a :func:`time.time`
    instant: the time limit is what is left of it once the model is read)."""
    options = json.loads(options_json)
    deadline = options.pop("deadline_epoch", None)
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(options.pop("log", False)))
    for key, value in options.items():
        h.setOptionValue(key, value)
    if h.readModel(mps) == highspy.HighsStatus.kError:
        print(f"HiGHS could not read {mps}", file=sys.stderr)
        return 2
    _keep_incumbents(h, out)
    if deadline is not None:
        h.setOptionValue("time_limit", max(1e-3, deadline - time.time()))
    h.run()
    info = h.getInfo()
    has_solution = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    if has_solution:
        _save(out + ".npy", h.getSolution().col_value)
    verdict = {"model_status": h.getModelStatus().name, "has_solution": bool(has_solution), "mip_dual_bound": info.mip_dual_bound}
    with open(out + ".json.part", "w", encoding="utf-8") as handle:
        json.dump(verdict, handle)
    os.replace(out + ".json.part", out + ".json")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
