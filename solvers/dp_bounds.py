"""Lower bounds on the work the rest of a placement adds, for the exact DP's pruning.

- :func:`to_sink`: the least (or most) each slot can still grow from a node to the sink.
- :class:`Lagrangian`: ``work + lam . (resources - limits)`` bounds over a few multipliers.
- :class:`BudgetBound`: the least remaining work as a function of one limit's remaining
  budget, on a grid with costs rounded down (a relaxation, so a true lower bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from splitllm.solvers.dp_costs import LIMITED, SLOTS, WORK, Array
from splitllm.tolerances import FEASIBILITY_RTOL


#: Multipliers scanned per limit, in units of (all-server work / limit).
LAMBDA_SCAN = 2.0 ** np.arange(-10, 11, 2)


def to_sink(cost: np.ndarray, sink: np.ndarray, pick: np.ufunc, first: int = 0) -> np.ndarray:
    """``out[b, ..., anchor, side, k]``: least (``np.minimum``) or most (``np.maximum``)
    that the edges after block ``b`` add up to in slot ``k``, over every way to the sink.

    ``cost`` is ``[b, ..., from, to, k]`` and ``sink`` ``[..., anchor, side, k]``; the
    ``...`` axes (a batch of requests) are carried along. Only blocks ``b >= first`` are
    computed (the rest are NaN).
    """
    n_blocks = cost.shape[0]
    out = np.full((n_blocks,) + sink.shape, np.nan)
    out[-1] = sink
    for b in range(n_blocks - 2, first - 1, -1):
        # out[..., anchor, side, k] = pick over next_side of edge b+1 (side -> next_side) + rest
        # from next_side; two binary ops, several times faster than reducing a length-2 axis
        edge, rest = cost[b + 1], out[b + 1]
        to_client = edge[..., None, :, 0, :] + rest[..., :, None, 0, :]
        to_server = edge[..., None, :, 1, :] + rest[..., :, None, 1, :]
        pick(to_client, to_server, out=out[b])
    return out


@dataclass(frozen=True)
class Lagrangian:
    """Multipliers (K x 6, 1 on WORK) with ``bound[b, anchor, side, k]``: least
    ``work + lam_k . resources`` from after block ``b`` to the sink."""

    lam: np.ndarray
    bound: np.ndarray


def _dual_values(cost: np.ndarray, sink: np.ndarray, lam: np.ndarray, limit: Array) -> tuple[np.ndarray, np.ndarray]:
    """Dual bound ``min_P work + lam.(res - limit)`` at the source for each row of ``lam``."""
    scalar_cost, scalar_sink = cost @ lam.T, sink @ lam.T
    bound = to_sink(scalar_cost, scalar_sink, np.minimum)
    anchors = np.arange(2)
    at_source = (scalar_cost[0, 0, anchors] + bound[0, anchors, anchors]).min(axis=0)
    finite = np.where(np.isfinite(limit), limit, 0.0)
    return at_source - lam @ finite, bound


def lagrangian(cost: np.ndarray, sink: np.ndarray, limit: Array) -> Lagrangian:
    """A few good multipliers: best per limit on a geometric grid, then their mixes.

    Units: multiplier ``j`` is scanned as ``LAMBDA_SCAN * W / limit_j`` where ``W``
    bounds the all-server work, so the scan is scale-free.
    """
    bounded = [j for j in LIMITED if np.isfinite(limit[j]) and limit[j] > 0]
    base = np.zeros(SLOTS)
    base[WORK] = 1.0
    if not bounded:
        return Lagrangian(base[None], _dual_values(cost, sink, base[None], limit)[1])
    work_scale = max(float(cost[..., WORK].max()) * cost.shape[0], 1e-30)
    singles = np.tile(base, (len(bounded), len(LAMBDA_SCAN), 1))
    for i, j in enumerate(bounded):
        singles[i, :, j] = LAMBDA_SCAN * work_scale / limit[j]
    values, _ = _dual_values(cost, sink, singles.reshape(-1, SLOTS), limit)
    best = np.argmax(values.reshape(len(bounded), -1), axis=1)
    best_per_limit = [base] + [singles[i, k] for i, k in enumerate(best)]
    mixes = [base + sum(w * (lam - base) for w, lam in zip(weights, best_per_limit[1:])) for weights in _mix_weights(len(bounded))]
    lam_all = np.unique(np.array(best_per_limit + mixes), axis=0)
    values, _ = _dual_values(cost, sink, lam_all, limit)
    keep = lam_all[np.argsort(values)[::-1][: len(bounded) + 2]]
    return Lagrangian(keep, _dual_values(cost, sink, keep, limit)[1])


def _mix_weights(n: int) -> list[tuple[float, ...]]:
    grids = np.meshgrid(*([np.array([0.0, 0.5, 1.0])] * n), indexing="ij")
    return [tuple(w) for w in np.stack([g.ravel() for g in grids], axis=1)]


def lagrangian_paths(cost: np.ndarray, sink: np.ndarray, lag: Lagrangian) -> np.ndarray:
    """The placement minimising ``work + lam_k . resources`` for each multiplier ``k``."""
    scalar_cost = cost @ lag.lam.T
    n_blocks, n_lam = cost.shape[0], lag.lam.shape[0]
    ks = np.arange(n_lam)
    anchors = np.arange(2)
    anchor = np.argmin(scalar_cost[0, 0, anchors] + lag.bound[0, anchors, anchors], axis=0)
    sides = np.empty((n_lam, n_blocks), dtype=np.int64)
    sides[:, 0] = anchor
    for b in range(1, n_blocks):
        options = scalar_cost[b, sides[:, b - 1], :, ks] + lag.bound[b, anchor, :, ks]  # (k, next side)
        sides[:, b] = np.argmin(options, axis=1)
    return sides.astype(bool)


@dataclass(frozen=True)
class BudgetBound:
    """Least remaining work as a function of one limit's remaining budget.

    ``table[b, anchor, side, k]`` is the least work from after block ``b`` to the sink
    over completions whose costs in this limit, each rounded *down* to whole cells of
    ``limit / cells``, fit in ``k`` cells. Rounding down makes it a relaxation, so it is
    a true lower bound for every completion that fits the real remaining budget.
    """

    slot: int
    unit: float
    table: np.ndarray
    used: NDArray[np.int64]  # cells each edge uses, [b, from, to]

    @classmethod
    def build(cls, cost: np.ndarray, sink: np.ndarray, slot: int, limit: float, cells: int) -> BudgetBound:
        unit = limit / cells
        used = _cells(cost[..., slot], unit, cells)
        used_sink = _cells(sink[..., slot], unit, cells)
        k = np.arange(cells + 1)
        table = np.full((cost.shape[0], 2, 2, cells + 1), np.inf)
        table[-1] = np.where(k[None, None, :] >= used_sink[..., None], sink[..., WORK][..., None], np.inf)
        for b in range(cost.shape[0] - 2, -1, -1):
            nxt = table[b + 1]  # (anchor, side, k)
            for side in (0, 1):
                for to in (0, 1):
                    shift = used[b + 1, side, to]
                    if shift <= cells:  # k cells here leave k - shift for the rest
                        best = table[b, :, side, shift:]
                        np.minimum(best, nxt[:, to, : cells + 1 - shift] + cost[b + 1, side, to, WORK], out=best)
        return cls(slot, unit, table, used)

    def relaxed_placement(self, cost: np.ndarray) -> NDArray[np.bool_] | None:
        """The placement the table says is least work within the rounded-down budget
        (follow the table from the source). It may break the real limit by the rounding,
        so callers check it; ``None`` when no placement fits even the relaxation."""
        table, used = self.table, self.used
        cells = table.shape[-1] - 1
        start = [cost[0, 0, a, WORK] + table[0, a, a, cells - used[0, 0, a]] if used[0, 0, a] <= cells else np.inf for a in (0, 1)]
        anchor = int(np.argmin(start))
        if not np.isfinite(start[anchor]):
            return None
        side, k, sides = anchor, cells - used[0, 0, anchor], [anchor]
        for b in range(1, cost.shape[0]):
            options = [
                cost[b, side, to, WORK] + table[b, anchor, to, k - used[b, side, to]] if used[b, side, to] <= k else np.inf
                for to in (0, 1)
            ]
            to = int(np.argmin(options))
            side, k = to, k - used[b, side, to]
            sides.append(to)
        return np.array(sides, dtype=bool)

    def bound(self, b: int, values: np.ndarray, node: np.ndarray, limit: float) -> np.ndarray:
        """Lower bound on the remaining work of each label (``inf``: no completion fits)."""
        remaining = limit * (1 + FEASIBILITY_RTOL) - values[:, self.slot]
        cells = self.table.shape[-1] - 1
        k = np.floor(remaining / self.unit * (1 + 1e-9))
        safe_k = np.clip(k, 0, cells).astype(np.int64)
        rest = self.table[b].reshape(4, -1)[node, safe_k]
        return np.where(k < 0, np.inf, rest)


def _cells(values: np.ndarray, unit: float, cells: int) -> NDArray[np.int64]:
    """Whole cells of ``unit`` in ``values``, rounded down; anything over the whole budget
    is ``cells + 1`` (it cannot fit), so tiny limits cannot overflow the integers."""
    return np.minimum(np.floor(values / unit * (1 - 1e-9)), cells + 1).astype(np.int64)


#: Limits below this (in their own unit) get no budget bound: their grid cells would be
#: subnormal floats.
MIN_BUDGET_LIMIT = 1e-250

#: Cells of the budget bounds, shared among the binding limits (a relaxation, so any
#: number is exact; more is tighter and slower). 4,096 measured best for one limit.
BUDGET_CELLS = 4096


def budget_bounds(cost: np.ndarray, sink: np.ndarray, limit: Array, high: np.ndarray) -> list[BudgetBound]:
    """One :class:`BudgetBound` per limit that some placement breaks (``high``: see
    :func:`to_sink`)."""
    starts = cost[0, 0, [0, 1]] + high[0, [0, 1], [0, 1]]  # most each anchor's paths use
    # A limit too small for a grid of normal floats gets no budget bound (bounds are optional).
    binding = [j for j in LIMITED if np.isfinite(limit[j]) and limit[j] > MIN_BUDGET_LIMIT and starts[:, j].max() > limit[j]]
    return [BudgetBound.build(cost, sink, j, float(limit[j]), BUDGET_CELLS // len(binding)) for j in binding]
