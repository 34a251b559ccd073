"""``batch-brute``: every combination of placements (and rejections) of a tiny F5 snapshot.

For each request it lists the placements that meet its client memory and whose client
time and crossings alone meet its TPOT (any other cannot be admitted), plus "rejected";
then it evaluates every combination: ``T`` from the compiled fixed-charge table, each
admitted request's TPOT, the KV capacity. The best admitted weight wins, then the least
``T``. It refuses snapshots of more than :data:`MAX_COMBINATIONS` combinations. It is the
reference the tests hold the other F5 solvers to.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import SplitLLMError
from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import BatchData
from splitllm.instance import Instance
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_common import COMMON, batch_data, batch_result, verify
from splitllm.solvers.brute import all_placements, check_size
from splitllm.tolerances import FEASIBILITY_RTOL

MAX_COMBINATIONS = 1 << 20
CHUNK = 1 << 14


def request_options(data: BatchData, r: int) -> NDArray[np.bool_]:
    """Placements of request ``r`` that could be admitted (its own limits, TPOT at ``T = 0``)."""
    x = all_placements(data.n_blocks)
    slack, _ = data.tpot_slack(r, x)
    return x[data.placeable(r, x) & (slack >= 0)]


def solve_brute(data: BatchData) -> SolveResult:
    """The exact F5 optimum by enumeration (see the module docstring)."""
    options = [request_options(data, r) for r in range(data.n_requests)]
    sizes = [len(o) + 1 for o in options]  # the last choice of each request: rejected
    combinations = math.prod(sizes)
    if combinations > MAX_COMBINATIONS:
        shown = f"{combinations:,}" if combinations < 10**12 else f"about 1e{len(str(combinations)) - 1}"  # no float: it may overflow
        raise SplitLLMError(f"batch-brute: {shown} combinations exceed {MAX_COMBINATIONS:,}; use batch")
    best: tuple[float, float, int] = (-1.0, math.inf, -1)
    for start in range(0, math.prod(sizes), CHUNK):
        codes = np.arange(start, min(start + CHUNK, math.prod(sizes)))
        picks = np.stack(np.unravel_index(codes, sizes), axis=1)
        weight, t, ok = _score(data, options, picks)
        best = _better(best, weight, t, ok, start)
    picks = np.unravel_index(best[2], sizes)
    admitted = np.array([k < len(options[r]) for r, k in enumerate(picks)])
    x = np.array([options[r][k] if admitted[r] else np.ones(data.n_blocks, bool) for r, k in enumerate(picks)])
    return batch_result("batch-brute", Status.OPTIMAL, x, admitted, best[1], best[0], best[1])


def _score(data: BatchData, options: list[NDArray[np.bool_]], picks: NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Admitted weight, ``T`` and feasibility of each combination (rows of ``picks``)."""
    a = data.instance.arrays
    n_combo = len(picks)
    x = np.zeros((n_combo, data.n_requests, data.n_blocks), dtype=bool)
    slack = np.full((n_combo, data.n_requests), np.inf)
    factor = np.zeros((n_combo, data.n_requests))
    for r, opts in enumerate(options):
        s, k = data.tpot_slack(r, opts) if len(opts) else (np.zeros(0), np.zeros(0))
        chosen = picks[:, r] < len(opts)
        x[chosen, r] = opts[picks[chosen, r]]
        slack[chosen, r], factor[chosen, r] = s[picks[chosen, r]], k[picks[chosen, r]]
    n = x.sum(axis=1)
    t = data.costs.overhead_s + data.fixed[np.arange(data.n_blocks), n].sum(axis=1)
    t = t + ((x & data.is_layer).sum(axis=2) * data.attn).sum(axis=1)
    t = t + data.costs.overhead_per_seq_s * x.any(axis=2).sum(axis=1)
    admitted = picks < np.array([len(o) for o in options])
    weight = (admitted * a.weight).sum(axis=1)
    ok = np.all(t[:, None] * factor <= slack, axis=1)
    ok &= ~exceeds(np.where(x, a.kv, 0.0).sum(axis=(1, 2)), data.kv_capacity)
    return weight, t, ok


def _better(best: tuple[float, float, int], weight: np.ndarray, t: np.ndarray, ok: np.ndarray, start: int) -> tuple[float, float, int]:
    if not ok.any():
        return best
    w_top = weight[ok].max()
    top = ok & (weight >= w_top * (1 - FEASIBILITY_RTOL))
    i = int(np.argmin(np.where(top, t, np.inf)))
    if w_top > best[0] * (1 + FEASIBILITY_RTOL) or (w_top >= best[0] * (1 - FEASIBILITY_RTOL) and t[i] < best[1]):
        return float(max(w_top, best[0])), float(t[i]), start + i
    return best


@register("batch-brute", "F5 throughput placement by enumeration (tiny snapshots); the tests' reference", exact=True, options=COMMON, verifier=verify)
def solve(instance: Instance, *, time_limit: float | None = None, engine: str = "vllm", ttft: bool = False) -> SolveResult:
    check_size(instance)
    return solve_brute(batch_data(instance, engine, ttft))
