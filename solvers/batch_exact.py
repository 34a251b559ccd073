"""``batch``: the exact F5 method of our own: a split of the answers by their shape, with bounds.

Every F5 answer is one of two kinds.

* **Without splits**: each admitted request runs all on the client (``s + w = 0``; it
  costs the server nothing) or all on the server (``s + w = 1``, no crossings, so its TPOT
  is ``T``). Then every server block is run by the same ``n`` requests and
  ``T = overhead + F(n) + sum over them of (attention x layers + per-sequence overhead)``
  with ``F(n) = sum_b fixed[b, n]``. This is a small MILP (one binary a request, one a
  count; no product, since ``s + w`` is 1), solved in two phases (weight, then ``T``) by
  HiGHS or CBC: :func:`no_split_model`.
* **With a split**: some admitted request has ``s + w >= 2`` and at least one crossing
  each way, so ``T <= (limit - its client time - one crossing each way) / 2``, far below
  the all-server ``T`` when crossings are slow. The range of such ``T`` is cut into
  intervals ``(lo, hi]``; on each, a request can be admitted only with a placement whose
  own cap ``slack / (s + w)`` is at least ``lo``, and the least it can add to ``T`` (its
  attention over the fewest server layers its client memory and TPOT allow, plus the
  per-sequence overhead) is a lower bound; a fractional knapsack over ``hi - overhead -
  (the least floor of one split request)`` bounds the weight of every such answer:
  :func:`split_bounds`.

The answer without splits is ``optimal`` when the backend proved both phases and no
interval can beat it: no interval's weight bound reaches a heavier answer, and none that
reaches the same weight lies below its ``T``. Otherwise, when the snapshot is small
(:data:`ENUMERATION_LIMIT` placements a request at most), a depth-first branch-and-bound
over every request's placements settles it exactly (:func:`branch_and_bound`). Else the
better of the answer without splits and ``batch-greedy``'s (which splits), improved by
:func:`~splitllm.solvers.batch_greedy.improve` (a local search over split placements),
is the incumbent; when the weight is proven, the least ``T`` the intervals allow is a
proven bound ``T_low``, and a MILP over placement *columns*
(:func:`~splitllm.solvers.batch_columns.column_bound`, for at most ``columns_s`` seconds,
:data:`COLUMNS_S` by default) bounds ``T`` at that weight from
below: blocks that are interchangeable (the same fixed-charge row and figures, such as a
model's identical decoder layers) are counted per class, each request keeps, per count
vector, its placement of largest cap among those whose cap is at least ``T_low``, and
the fixed charge is relaxed to the distribution of counts over each class. Its answer
replaces the incumbent when better, and the incumbent is ``optimal`` when its ``T`` meets
that bound (when every class is one block, the bound is the optimum). The result carries the bounds
found: ``bound`` the largest weight bound, ``iteration_time_bound_s`` the largest proven
lower bound on ``T`` (only when the weight is proven).

The registered solver then has its ``optimal`` re-proved
(:func:`~splitllm.solvers.batch_certify.certify`): by enumeration on small snapshots,
else by the same method with its MILPs on the other backend.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pulp
from numpy.typing import NDArray

from splitllm.deadline import TimeLimitReached, check, deadline_in
from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import BatchData
from splitllm.instance import Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.result import SolveResult, Status
from splitllm.solvers.batch_brute import request_options
from splitllm.solvers.batch_certify import certify
from splitllm.solvers.batch_columns import column_bound
from splitllm.solvers.batch_greedy import improve, solve_greedy
from splitllm.solvers.batch_common import COMMON, batch_data, batch_result, verify
from splitllm.solvers.pulp_backend import BACKENDS, run
from splitllm.tolerances import FEASIBILITY_RTOL, OPTIMAL_GAP

INTERVALS = 512
#: The most seconds the MILP over placement columns takes by default: on snapshots whose
#: layers are not all alike its bound may not close, and it could search a long time.
COLUMNS_S = 30.0
ENUMERATION_LIMIT = 1 << 12

OPTIONS = (
    Option("backend", "choice", "highs", "MILP backend of the no-split model", choices=tuple(sorted(BACKENDS, reverse=True))),
    Option("intervals", "integer", INTERVALS, "intervals of T that bound the answers with a split", low=1, high=10**6),
    Option("search", "boolean", True, "when the answer is not proven, improve it by a local search over split placements"),
    Option("columns_s", "number", COLUMNS_S, "when the weight is proven but not T, the most seconds the MILP over placement "
           "columns may take to bound T (within the time limit; 0: not used)", low=0),
    *COMMON,
)

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class NoSplit:
    """The best answer without splits: ``server[r]`` all on the server, ``admitted[r]``."""

    status: Status
    server: BoolArray
    admitted: BoolArray
    weight: float
    t: float
    weight_bound: float | None
    message: str = ""


def request_costs(data: BatchData) -> NDArray[np.float64]:
    """What each request adds to ``T`` all on the server: attention x layers + per-sequence."""
    return data.attn * float(data.is_layer.sum()) + data.costs.overhead_per_seq_s


def client_only(data: BatchData) -> BoolArray:
    """Requests that can run all on the client (their own limits and TPOT), costing the server nothing."""
    return _placeable_as(data, np.zeros(data.n_blocks, dtype=bool))


def all_server_ok(data: BatchData) -> BoolArray:
    """Requests whose own limits (client memory, TTFT when held) allow them all on the server."""
    row = np.ones((1, data.n_blocks), dtype=bool)
    return np.array([bool(data.placeable(r, row)[0]) for r in range(data.n_requests)])


def _placeable_as(data: BatchData, row: BoolArray) -> BoolArray:
    ok = np.zeros(data.n_requests, dtype=bool)
    for r in range(data.n_requests):
        slack, _ = data.tpot_slack(r, row[None])
        ok[r] = slack[0] >= 0 and bool(data.placeable(r, row[None])[0])
    return ok


def no_split_model(data: BatchData) -> tuple[pulp.LpProblem, dict]:
    """Phase 1 of the no-split MILP (see the module docstring) and its handles.

    ``s[r]``: request ``r`` all on the server; ``z[n]``: exactly ``n`` of them;
    ``T = overhead + sum_n F(n) z[n] + sum_r cost[r] s[r]``; ``T <= limit[r]`` when ``s[r]``;
    server KV within capacity. Requests that can run all on the client are admitted anyway.
    """
    a, R = data.instance.arrays, data.n_requests
    F = data.fixed.sum(axis=0)
    cost = request_costs(data)
    unit = max(float(data.costs.overhead_s + F[1]), 1e-12)
    t_max = float(data.costs.overhead_s + F.max() + cost.sum())
    free = client_only(data)
    prob = pulp.LpProblem("f5_no_split", pulp.LpMaximize)
    # a request its own limits keep off the all-server placement gets no variable at all
    # (PuLP resets a binary's upper bound of 0 to 1 when it writes the model)
    s = {r: pulp.LpVariable(f"s_r{r}", cat=pulp.LpBinary) for r in np.nonzero(all_server_ok(data))[0].tolist()}
    z = {n: pulp.LpVariable(f"z_n{n}", cat=pulp.LpBinary) for n in range(R + 1)}
    T = pulp.LpVariable("T", lowBound=0)
    prob += pulp.lpSum(z.values()) == 1, "one_count"
    prob += pulp.lpSum(n * z[n] for n in z) == pulp.lpSum(s.values()), "count"
    body = T - pulp.lpSum(float(F[n]) * z[n] for n in z) - pulp.lpSum(float(cost[r]) * s[r] for r in s)
    prob += body * (1 / unit) == float(data.costs.overhead_s) / unit, "iteration_time"
    for r in s:
        limit = float(a.tpot_limit[r])
        if math.isfinite(limit):
            prob += (T - limit - max(0.0, t_max - limit) * (1 - s[r])) * (1 / unit) <= 0, f"tpot_r{r}"
    kv_all = a.kv.sum(axis=1)
    if math.isfinite(data.kv_capacity):
        prob += pulp.lpSum(float(kv_all[r] / data.kv_capacity) * s[r] for r in s if kv_all[r] > 0) <= 1, "kv_capacity"
    weight = pulp.lpSum(float(a.weight[r]) * s[r] for r in s if not free[r])
    prob += weight
    return prob, {"s": s, "z": z, "T": T, "weight": weight, "free": free, "unit": unit}


def solve_no_split(data: BatchData, backend: str, deadline: float | None) -> NoSplit:
    """Both phases of the no-split MILP."""
    a = data.instance.arrays
    prob, h = no_split_model(data)
    free_weight = float(a.weight[h["free"]].sum())
    first = run(prob, backend, _left(deadline))
    if not first.status.has_solution:
        none = np.zeros(data.n_requests, dtype=bool)
        return NoSplit(first.status, none, none, -math.inf, math.inf, None, f"no-split phase 1: {first.message}")
    w1 = float(sum(a.weight[r] for r, v in h["s"].items() if not h["free"][r] and (v.varValue or 0) > 0.5))
    bound = None if first.bound is None else free_weight + max(first.bound, w1)
    prob += h["weight"] >= w1 - 1e-9 * max(1.0, w1), "lexicographic_weight"
    prob.sense = pulp.LpMinimize
    prob.setObjective(h["T"] * (1 / h["unit"]))
    second = run(prob, backend, _left(deadline)) if _left(deadline) != 0.0 else None
    if second is None or not second.status.has_solution:  # phase 1's values are still on the variables
        prob.sense = pulp.LpMaximize
    server = np.array([r in h["s"] and (h["s"][r].varValue or 0) > 0.5 for r in range(data.n_requests)])
    admitted = server | h["free"]
    x = np.repeat(server[:, None], data.n_blocks, axis=1)
    proven = first.status == Status.OPTIMAL and second is not None and second.status == Status.OPTIMAL
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    weight = float(a.weight[admitted].sum())
    return NoSplit(status, server, admitted, weight, data.iteration_time(x, admitted), bound)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.perf_counter())


@dataclass(frozen=True)
class LayerReach:
    """What moving blocks off each request's client saves, for :meth:`fewest`: per request
    the sum of its ``cost`` over every block and over its other (non-layer) blocks, and
    ``reach[r, k]``, the most its ``k + 1`` costliest layer blocks save."""

    total: NDArray[np.float64]
    rest: NDArray[np.float64]
    reach: NDArray[np.float64]

    @classmethod
    def of(cls, cost: NDArray[np.float64], is_layer: BoolArray) -> LayerReach:
        """From a per-request, per-block ``cost`` (R x B, each >= 0)."""
        per_layer = -np.sort(-cost[:, is_layer], axis=1)
        return cls(cost.sum(axis=1), cost[:, ~is_layer].sum(axis=1), np.cumsum(per_layer, axis=1))

    def fewest(self, excess: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per request, the fewest layer blocks to move off the client so that its cost drops
        by ``excess[r]`` when every other block moves for free (``inf`` when even that is not
        enough).

        >>> reach = LayerReach.of(np.array([[1.0, 3.0, 2.0]]), np.array([False, True, True]))
        >>> reach.fewest(np.array([0.5])).tolist(), reach.fewest(np.array([3.5])).tolist(), reach.fewest(np.array([7.0])).tolist()
        ([0.0], [1.0], [inf])
        """
        left = excess - self.rest
        k = (self.reach < (left * (1 - 1e-12))[:, None]).sum(axis=1)
        layers = np.where(k < self.reach.shape[1], k + 1.0, math.inf)
        return np.where((excess <= 0) | (left <= 0), 0.0, layers)


@dataclass(frozen=True)
class SplitBounds:
    """Per interval ``(lo[i], hi[i]]`` of ``T``, bounds on the answers with a split:
    ``weight[i]`` on their weight, ``t_low[i]`` on their ``T`` at weight ``target``
    (``inf`` when none of that weight fits the interval)."""

    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    weight: NDArray[np.float64]
    t_low: NDArray[np.float64]


def split_bounds(data: BatchData, intervals: int, target: float) -> SplitBounds:
    """Bounds on the answers with a split, interval by interval (module docstring).

    On each interval, request ``r`` adds at least ``cost[r]`` to ``T`` and its server
    blocks cost at least ``floor[r]``. The weight bound is a fractional knapsack in
    ``hi - overhead - (least floor of a split)``; the ``T`` bound at ``target`` is
    ``overhead`` + the largest floor among the requests every answer of that weight must
    admit + the least cost of a fractional cover of the weight missing from the requests
    that run all on the client.
    """
    a = data.instance.arrays
    free = client_only(data)
    limit = a.tpot_limit * (1 + FEASIBILITY_RTOL)
    cross = np.minimum(a.act_up_decode, a.token_up_decode) + np.minimum(a.act_down_decode, a.token_down_decode)
    split_cap = np.where(np.isfinite(limit), (limit - cross) / 2, math.inf)
    top = float(np.max(split_cap, initial=0.0))
    if not math.isfinite(top):
        top = float(request_costs(data).sum() + data.costs.overhead_s + data.fixed.max(axis=1).sum())
    edges = np.linspace(0.0, max(top, 0.0), intervals + 1)
    weight, t_low = np.zeros(intervals), np.full(intervals, math.inf)
    suffix_min = np.minimum.accumulate(data.fixed[:, ::-1], axis=1)[:, ::-1]  # least fixed[b, n'] for n' >= n
    by_time = LayerReach.of(a.client_decode, data.is_layer)
    by_memory = LayerReach.of(a.client_mem, data.is_layer).fewest(a.client_mem.sum(axis=1) - a.client_mem_limit)
    for i in range(intervals):
        ic = _interval_costs(data, free, limit, cross, edges[i], by_time, by_memory)
        room = edges[i + 1] - data.costs.overhead_s - ic.split_floor
        weight[i] = float(a.weight[free].sum()) + _fractional_knapsack(a.weight, ic.cost, room)
        t_low[i] = max(edges[i], _least_t(data, free, ic, suffix_min, target))
        if t_low[i] > edges[i + 1]:
            t_low[i] = math.inf
    return SplitBounds(edges[:-1], edges[1:], weight, t_low)


@dataclass(frozen=True)
class IntervalCosts:
    """Per request, on an interval of ``T`` starting at ``lo`` (``inf`` cost: cannot be admitted)."""

    cost: NDArray[np.float64]  # the least it adds to ``T``: attention x its fewest server layers + per-sequence
    floor: NDArray[np.float64]  # the least fixed cost of its server blocks
    split_floor: float  # the least fixed cost of the server blocks of any request's split placement
    layer_floor: NDArray[np.float64]  # the least fixed cost of its server *layer* blocks
    forced: BoolArray  # (R, B): the other blocks it runs on the server in every placement it may take


def _interval_costs(data: BatchData, free: BoolArray, limit: NDArray[np.float64], cross: NDArray[np.float64], lo: float,
                    by_time: LayerReach, by_memory: NDArray[np.float64]) -> IntervalCosts:
    """The bounds' figures of each request on an interval starting at ``lo`` (see :class:`IntervalCosts`).

    ``by_time`` prices the client decode of each request's blocks; ``by_memory[r]`` is the
    fewest layers its client memory makes it leave to the server. A request that cannot run
    all on the client runs a block on the server in every placement when that block alone
    takes its client longer than a split leaves it (``limit - crossings - 2 lo``): its
    all-server placement runs every block.
    """
    a = data.instance.arrays
    layer_floor = float(data.fixed[data.is_layer, 1:].min(initial=math.inf)) if data.is_layer.any() else 0.0
    block_floor = float(data.fixed[:, 1:].min())
    all_floor = float(data.fixed[:, 1:].min(axis=1).sum())
    n_layers = int(data.is_layer.sum())
    budget = limit - cross - 2 * lo
    # the fewest server layers of a split placement whose cap is >= lo: the most of what time and memory need
    m = np.where(budget < 0, math.inf, np.maximum(by_time.fewest(by_time.total - budget), by_memory))
    split = np.isfinite(m)
    f = np.where(split, np.where(m > 0, m * layer_floor, block_floor), math.inf)
    # a request that can run all on the client may still be the split one (where a curve
    # falls with the count, joining the server's blocks can lower T)
    split_floor = float(f.min(initial=math.inf))
    whole = (limit >= lo) & ~free  # its all-server placement may be taken
    split &= ~free  # requests that can run all on the client are counted as admitted at no cost to T by the callers
    with np.errstate(invalid="ignore"):  # inf x 0 where a request has no split placement
        split_cost = np.where(split, data.attn * m + data.costs.overhead_per_seq_s, math.inf)
        split_layers = np.where(split, m * layer_floor, math.inf)
    cost = np.minimum(np.where(whole, request_costs(data), math.inf), split_cost)
    floor = np.minimum(np.where(whole, all_floor, math.inf), np.where(split, f, math.inf))
    layers = np.minimum(np.where(whole, n_layers * layer_floor, math.inf), split_layers)
    some = whole | split
    forced = (a.client_decode > budget[:, None] * (1 + FEASIBILITY_RTOL) + 1e-15) & ~data.is_layer[None, :] & ~free[:, None]
    return IntervalCosts(cost, np.where(some, floor, 0.0), split_floor, np.where(some, layers, 0.0), forced)


def _least_t(data: BatchData, free: BoolArray, ic: IntervalCosts, suffix_min: NDArray[np.float64], target: float) -> float:
    """A lower bound on ``T`` of an answer with a split of weight >= ``target``: the overhead,
    the fixed costs of server blocks (the most of: the split's least, any mandatory request's
    least, a mandatory request's least layers plus the other blocks the mandatory requests
    must run, each at the count of those that must), and a fractional cover of the rest."""
    a = data.instance.arrays
    need = target - float(a.weight[free].sum())
    ok = np.isfinite(ic.cost) & ~free
    spare = float(a.weight[ok].sum()) - need  # weight that may be left out
    if spare < -OPTIMAL_GAP * max(1.0, target):
        return math.inf
    mandatory = ok & (a.weight > spare + OPTIMAL_GAP * max(1.0, target))
    count = ic.forced[mandatory].sum(axis=0)
    forced_s = float(suffix_min[np.arange(data.n_blocks), count][count > 0].sum())
    layers = float(ic.layer_floor[mandatory].max(initial=0.0))
    floors = max(ic.split_floor, float(ic.floor[mandatory].max(initial=0.0)), layers + forced_s)
    return float(data.costs.overhead_s + floors + _fractional_cover(a.weight, np.where(ok, ic.cost, math.inf), need))


def _fractional_cover(weight: NDArray[np.float64], cost: NDArray[np.float64], need: float) -> float:
    """The least cost of items (fractions allowed) whose weight reaches ``need``.

    Weights are compared with a relative tolerance of :data:`OPTIMAL_GAP`: fractional
    weights do not add up exactly (``0.1 + 0.2 > 0.3``), and an unreachable ``need`` left
    over by rounding would make the bound infinite, so too strong.
    """
    tol = OPTIMAL_GAP * max(1.0, abs(need))
    if need <= tol:
        return 0.0
    ok = np.isfinite(cost) & (weight > 0)
    w, c = weight[ok], cost[ok]
    total = 0.0
    for k in np.argsort(c / w):
        if w[k] >= need - tol:
            return total + c[k] * min(1.0, need / w[k])
        need -= w[k]
        total += c[k]
    return math.inf


def _fractional_knapsack(weight: NDArray[np.float64], cost: NDArray[np.float64], room: float) -> float:
    """The LP bound of a knapsack (items of ``cost`` inf left out)."""
    if room < 0:
        return 0.0
    ok = np.isfinite(cost) & (weight > 0)
    w, c = weight[ok], cost[ok]
    order = np.argsort(-(w / np.maximum(c, 1e-300)))
    total = 0.0
    for k in order:
        if c[k] <= room:
            room -= c[k]
            total += w[k]
        else:
            return total + w[k] * room / c[k]
    return total


def _integral(weight: NDArray[np.float64]) -> bool:
    return bool(np.all(np.abs(weight - np.round(weight)) <= 1e-9))


def branch_and_bound(data: BatchData, deadline: float | None) -> tuple[BoolArray, BoolArray, float] | None:
    """The exact optimum by depth-first search over each request's placements (small ``B``).

    Requests are taken heaviest first; each is rejected or given one of its placements
    that meet its client memory and its TPOT at ``T = 0``. A node is cut when its weight
    plus every remaining weight cannot beat the best, or when a lower bound on ``T`` (the
    counts can only grow: each active block at its least cost from its count on) breaks
    the cap of an admitted request or the best ``T`` at the same weight. ``None`` when
    the deadline comes first.
    """
    a = data.instance.arrays
    R, B = data.n_requests, data.n_blocks
    order = sorted(range(R), key=lambda r: (-a.weight[r], r))
    opts = [request_options(data, r) for r in order]
    caps = []
    for r, o in zip(order, opts):
        slack, k = data.tpot_slack(r, o)
        caps.append(np.where(k > 0, slack / np.maximum(k, 1), math.inf))
    suffix_min = np.minimum.accumulate(data.fixed[:, ::-1], axis=1)[:, ::-1]  # least fixed[b, n'] for n' >= n
    rest = np.concatenate([np.cumsum([a.weight[r] for r in order][::-1])[::-1], [0.0]])
    best: dict = {"w": -1.0, "t": math.inf, "x": None}
    x = np.zeros((R, B), dtype=bool)
    adm = np.zeros(R, dtype=bool)

    def t_low(n: NDArray[np.int64], extra: float) -> float:
        active = n > 0
        return float(data.costs.overhead_s + suffix_min[np.arange(B), n][active].sum() + extra)

    def visit(i: int, n: NDArray[np.int64], extra: float, cap: float, kv: float, w: float) -> None:
        check(deadline, "branch and bound")
        tl = t_low(n, extra)
        if tl > cap or w + rest[i] < best["w"] * (1 - FEASIBILITY_RTOL):
            return
        if w + rest[i] <= best["w"] * (1 + FEASIBILITY_RTOL) and tl >= best["t"]:
            return
        if i == R:
            t = data.iteration_time(x, adm)
            better = w > best["w"] * (1 + FEASIBILITY_RTOL) or t < best["t"]
            if t <= cap and better:
                best.update(w=w, t=t, x=(x.copy(), adm.copy()))
            return
        r = order[i]
        for k in np.argsort(caps[i])[::-1]:
            row = opts[i][k]
            kv_r = float(np.where(row, a.kv[r], 0.0).sum())
            if exceeds(kv + kv_r, data.kv_capacity):
                continue
            x[r], adm[r] = row, True
            per_seq = data.costs.overhead_per_seq_s if row.any() else 0.0
            add = float(data.attn[r] * (row & data.is_layer).sum() + per_seq)
            visit(i + 1, n + row, extra + add, min(cap, caps[i][k]), kv + kv_r, w + float(a.weight[r]))
        x[r], adm[r] = False, False
        visit(i + 1, n, extra, cap, kv, w)

    try:
        visit(0, np.zeros(B, dtype=np.int64), 0.0, math.inf, 0.0, 0.0)
    except TimeLimitReached:
        return None
    if best["x"] is None:
        return np.ones((R, B), dtype=bool), np.zeros(R, dtype=bool), data.iteration_time(np.ones((R, B), bool), np.zeros(R, bool))
    return best["x"][0], best["x"][1], best["t"]


def solve_exact(data: BatchData, backend: str = "highs", time_limit: float | None = None, intervals: int = INTERVALS,
                search: bool = True, columns_s: float = COLUMNS_S) -> SolveResult:
    """The method of the module docstring."""
    name = "batch"
    deadline = deadline_in(time_limit)
    a = data.instance.arrays
    ns = solve_no_split(data, backend, deadline)
    sb = split_bounds(data, intervals, ns.weight)
    split_w = np.floor(sb.weight + 1e-9) if _integral(a.weight) else sb.weight
    tol = OPTIMAL_GAP * max(1.0, abs(ns.weight))
    heavier = split_w > ns.weight + tol
    reach = (split_w >= ns.weight - tol) & (sb.t_low < ns.t * (1 - OPTIMAL_GAP))
    if (heavier.any() or reach.any() or ns.status != Status.OPTIMAL) and 2**data.n_blocks <= ENUMERATION_LIMIT:
        found = branch_and_bound(data, deadline)
        if found is not None:
            x, adm, t = found
            w = float(a.weight[adm].sum())
            return batch_result(name, Status.OPTIMAL, x, adm, t, w, t, message="branch and bound over every placement")
    if not np.isfinite(ns.weight):
        return batch_result(name, Status.NO_SOLUTION, None, None, None, message=ns.message)
    x, admitted, t = np.repeat(ns.server[:, None], data.n_blocks, axis=1), ns.admitted, ns.t
    bound = None if ns.weight_bound is None else float(max(ns.weight_bound, split_w.max(initial=-math.inf)))
    weight_proven = ns.status == Status.OPTIMAL and not heavier.any()
    t_bound = float(min([ns.t, *sb.t_low[reach]])) if weight_proven else None
    proven = weight_proven and not reach.any()
    message = f"no-split MILP {ns.status.value}; {int(heavier.sum())} of {len(sb.lo)} split intervals could be heavier, {int(reach.sum())} faster"
    if not proven:  # a split answer may be better: batch-greedy's is the incumbent when it is
        greedy = solve_greedy(data)
        g_weight = float(a.weight[greedy.admitted].sum())
        g_t = float(greedy.info["iteration_time_s"])
        if _better(g_weight, g_t, ns.weight, t):
            x, admitted, t = greedy.placements, greedy.admitted, g_t
            message += "; the greedy split answer is better"
        if search:
            x, admitted, t, moved = _searched(data, x, admitted, t, deadline)
            message += "; a local search over splits improved it" if moved else ""
        if weight_proven and t_bound is not None and columns_s > 0:
            cap = deadline_in(columns_s)
            stop = cap if deadline is None else min(deadline, cap)
            x, admitted, t, t_bound, note = _by_columns(data, (x, admitted, t), ns.weight, t_bound, backend, stop)
            proven = t <= t_bound * (1 + OPTIMAL_GAP)
            message += note
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    return batch_result(name, status, x, admitted, t, bound, t_bound, message=message)


def _by_columns(data: BatchData, answer: tuple[BoolArray, BoolArray, float], weight: float, t_bound: float, backend: str,
               deadline: float | None) -> tuple[BoolArray, BoolArray, float, float, str]:
    """The answer and ``T`` bound after :func:`~splitllm.solvers.batch_columns.column_bound`:
    its answer when better, its bound when higher (both unchanged when it proves nothing)."""
    x, admitted, t = answer
    a = data.instance.arrays
    try:
        cb = column_bound(data, weight, t_bound, t * (1 + 1e-7), backend, _left(deadline), deadline)
    except TimeLimitReached:
        cb = None
    if cb is None:
        return x, admitted, t, t_bound, "; the column model proved nothing"
    note = f"; {cb.message}"
    if cb.x is not None and cb.admitted is not None:
        t2 = data.iteration_time(cb.x, cb.admitted)
        if _better(float(a.weight[cb.admitted].sum()), t2, float(a.weight[admitted].sum()), t):
            x, admitted, t = cb.x, cb.admitted, t2
            note += ", its answer is better"
    return x, admitted, t, max(t_bound, min(cb.t_low, t)), note


def _searched(data: BatchData, x: BoolArray, admitted: BoolArray, t: float, deadline: float | None) -> tuple[BoolArray, BoolArray, float, bool]:
    """:func:`~splitllm.solvers.batch_greedy.improve` from the answer; it when better (more weight, else less ``T``)."""
    a = data.instance.arrays
    x2, admitted2 = improve(data, x, admitted, deadline)
    t2 = data.iteration_time(x2, admitted2)
    if _better(float(a.weight[admitted2].sum()), t2, float(a.weight[admitted].sum()), t):
        return x2, admitted2, t2, True
    return x, admitted, t, False


def _better(weight: float, t: float, than_weight: float, than_t: float) -> bool:
    """More weight (beyond :data:`OPTIMAL_GAP`), else the same weight and less ``T``."""
    tol = OPTIMAL_GAP * max(1.0, abs(than_weight))
    return weight > than_weight + tol or (weight >= than_weight - tol and t < than_t)


@register("batch", "F5 exact: no-split MILP + interval bounds on splits + a column MILP bounding T (branch and bound on small B)", requires=("pulp",), exact=True, options=OPTIONS, verifier=verify)
def solve(instance: Instance, *, time_limit: float | None = None, backend: str = "highs", intervals: int = INTERVALS, search: bool = True,
          columns_s: float = COLUMNS_S, engine: str = "vllm", ttft: bool = False) -> SolveResult:
    started = time.perf_counter()
    data = batch_data(instance, engine, ttft)
    result = solve_exact(data, backend, time_limit, intervals, search, columns_s)
    return certify(data, result, lambda left: solve_exact(data, other_backend(backend), left, intervals, search, columns_s), time_limit, started)


def other_backend(backend: str) -> str:
    """The backend that re-proves an answer ``backend`` proved (a different MILP code)."""
    return next(b for b in BACKENDS if b != backend)
