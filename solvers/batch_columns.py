"""A lower bound on ``T`` at a given admitted weight, by a MILP over placement *columns*.

Blocks that are interchangeable (the same fixed-charge row, the same kind and the same
figures for every request in every per-block array: client and server times, memory, KV,
work) form a *class*: a snapshot of a model with identical decoder layers has three (the
embedding, the layers, the head). Every figure of a request's placement is then a
function of its *count vector* (how many blocks of each class it runs on the server) and
of where its server segments start and end (crossings, first and last block, ``s + w``),
not of which blocks of a class it takes. The classes are made finer first
(:func:`refined`): the blocks at each end of a run of one class become classes of their
own, since a request with one server segment leaves blocks of a run to its client at an
end, and the relaxation below then sees their counts. Then, per request:

* :func:`signatures` enumerates, by a walk over the blocks, one placement for each
  reachable (count vector, up-crossings, first block, last block), dropping those with
  more server segments than a cap of ``T_low`` allows;
* :func:`request_columns` keeps, per count vector, the largest cap ``slack / (s + w)``
  among the placements that meet the request's own limits and whose cap is at least
  ``T_low`` (a proven lower bound on ``T``: no better answer uses any other).

:func:`column_model` chooses at most one column a request, reaching the weight, with
``T <=`` each admitted request's cap. Its fixed charge is relaxed to the distribution of
counts over each class: ``a[C, c]`` blocks of class ``C`` run by ``c`` requests, as many
request-slots as the chosen columns take, at least as many active blocks as any one
request runs there, and no count above the number of requests there. Every answer of the
weight with ``T <= t_max`` is a solution of the model with the same ``T``, so the model's
optimum bounds ``T`` from below
(the backend's bound is used less :data:`BOUND_RTOL`); with classes of one block each it
*is* the problem, and its chosen columns an optimal answer. :func:`column_bound` solves it
and also returns the answer its columns give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pulp
from numpy.typing import NDArray

from splitllm.deadline import check
from splitllm.evaluator import exceeds
from splitllm.formulations.batch_data import BatchData
from splitllm.result import Status
from splitllm.solvers.pulp_backend import run

#: The walk of :func:`signatures` gives up past this many states at one block.
STATE_LIMIT = 200_000
#: :func:`column_bound` gives up past this many columns in all.
COLUMN_LIMIT = 20_000
#: The blocks at each end of a run of one class that :func:`column_bound` makes classes
#: of their own (:func:`refined`).
EDGE_DEPTH = 1
#: The backend's bound is lowered by this relative margin before it is used: CBC prints it
#: to 8 significant digits (seen 2.5e-8 above the optimum), and rows hold to 1e-9.
BOUND_RTOL = 1e-7

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


def block_classes(data: BatchData) -> IntArray:
    """The class of each block (numbered in order of first appearance; see the module docstring)."""
    a = data.instance.arrays
    per_block = (a.server_prefill, a.server_decode, a.client_prefill, a.client_decode, a.work, a.kv, a.client_mem)
    keys: dict[bytes, int] = {}
    classes = np.zeros(data.n_blocks, dtype=np.int64)
    for b in range(data.n_blocks):
        columns = [np.ascontiguousarray(arr[:, b]).tobytes() for arr in per_block]
        key = b"|".join([data.fixed[b].tobytes(), bytes([bool(data.is_layer[b])]), *columns])
        classes[b] = keys.setdefault(key, len(keys))
    return classes


def refined(classes: IntArray, depth: int) -> IntArray:
    """``classes`` with the ``depth`` blocks at each end of every run of consecutive blocks
    of one class made classes of their own, and each run's other blocks a class (a finer
    partition: its blocks are still interchangeable)."""
    keys = []
    b = 0
    while b < len(classes):
        end = b
        while end + 1 < len(classes) and classes[end + 1] == classes[b]:
            end += 1
        for i in range(b, end + 1):
            edge = i - b < depth or end - i < depth
            keys.append((int(classes[i]), i if edge else -1 - b))
        b = end + 1
    numbers: dict[tuple[int, int], int] = {}
    return np.array([numbers.setdefault(key, len(numbers)) for key in keys], dtype=np.int64)


def signatures(classes: IntArray, max_up: int, deadline: float | None = None) -> BoolArray | None:
    """One placement for each reachable (count vector, up-crossings, first, last block),
    at most ``max_up`` up-crossings (``None`` past :data:`STATE_LIMIT` states)."""
    n_classes = int(classes.max()) + 1
    # state: (counts, first, previous, up-crossings) -> a placement as an integer bit mask
    states: dict[tuple[tuple[int, ...], bool, bool, int], int] = {}
    for bit in (False, True):
        counts = [0] * n_classes
        counts[classes[0]] += bit
        states[(tuple(counts), bit, bit, 0)] = int(bit)
    for b in range(1, len(classes)):
        check(deadline, "listing placement signatures")
        grown: dict[tuple[tuple[int, ...], bool, bool, int], int] = {}
        for (counts, first, prev, up), mask in states.items():
            for bit in (False, True):
                n_up = up + (bit and not prev)
                if n_up > max_up:
                    continue
                c = list(counts)
                c[classes[b]] += bit
                grown.setdefault((tuple(c), first, bit, n_up), mask | (int(bit) << b))
        if len(grown) > STATE_LIMIT:
            return None
        states = grown
    masks = np.array(sorted(set(states.values())), dtype=object)
    return ((masks[:, None] >> np.arange(len(classes))[None, :]) & 1).astype(bool)


@dataclass(frozen=True)
class Columns:
    """The columns of one request: per count vector (``counts[j]``), its best placement
    ``rows[j]`` and that placement's cap on ``T`` (``inf`` when all on the client)."""

    counts: IntArray
    rows: BoolArray
    cap: NDArray[np.float64]


def request_columns(data: BatchData, r: int, reps: BoolArray, classes: IntArray, t_low: float) -> Columns:
    """Request ``r``'s columns among the placements ``reps`` (module docstring)."""
    slack, k = data.tpot_slack(r, reps)
    cap = np.where(k > 0, slack / np.maximum(k, 1), np.where(slack >= 0, math.inf, -math.inf))
    ok = data.placeable(r, reps) & (slack >= 0) & (cap >= t_low * (1 - 1e-12))
    n_classes = int(classes.max()) + 1
    counts = np.stack([(reps[:, classes == c]).sum(axis=1) for c in range(n_classes)], axis=1)[ok]
    rows, cap = reps[ok], cap[ok]
    order = np.lexsort((-cap, *counts.T[::-1]))  # by count vector, best cap first
    counts, rows, cap = counts[order], rows[order], cap[order]
    first = np.ones(len(counts), dtype=bool)
    first[1:] = np.any(counts[1:] != counts[:-1], axis=1)
    return Columns(counts[first], rows[first], cap[first])


def max_up_crossings(data: BatchData, t_low: float) -> int:
    """The most up-crossings a placement with cap >= ``t_low`` can have: ``s + w >= 2 x`` them."""
    limit = data.instance.arrays.tpot_limit
    top = float(np.max(limit, initial=0.0))
    if t_low <= 0 or not math.isfinite(top):
        return data.n_blocks
    return min(data.n_blocks, int(top * 1.000001 / (2 * t_low)))


@dataclass(frozen=True)
class ColumnBound:
    """What :func:`column_bound` proved: ``t_low`` a lower bound on ``T`` of the answers
    of the weight with ``T <= t_max``, and the answer its columns give (``None`` when it
    found none that meets every limit)."""

    t_low: float
    x: BoolArray | None
    admitted: BoolArray | None
    message: str


def column_bound(data: BatchData, weight: float, t_low: float, t_max: float, backend: str, time_limit: float | None,
                 deadline: float | None = None) -> ColumnBound | None:
    """A lower bound on ``T`` of the answers of weight >= ``weight`` and ``T <= t_max``
    (given a proven bound ``t_low``), or ``None`` when the model is too big or unsolved."""
    classes = refined(block_classes(data), EDGE_DEPTH)
    reps = signatures(classes, max_up_crossings(data, t_low), deadline)
    if reps is None:
        return None
    cols = [request_columns(data, r, reps, classes, t_low) for r in range(data.n_requests)]
    if sum(len(c.cap) for c in cols) > COLUMN_LIMIT:
        return None
    prob, y, unit = column_model(data, classes, cols, weight, t_max, deadline)
    outcome = run(prob, backend, time_limit)
    if outcome.bound is None or outcome.status not in (Status.OPTIMAL, Status.FEASIBLE):
        return None
    x, admitted = _chosen(data, cols, y) if outcome.objective is not None else (None, None)
    if x is not None and admitted is not None and not _meets_limits(data, x, admitted):
        x = admitted = None
    return ColumnBound(float(outcome.bound) * unit * (1 - BOUND_RTOL), x, admitted, f"column model {outcome.status.value}")


def column_model(data: BatchData, classes: IntArray, cols: list[Columns], weight: float, t_max: float,
                 deadline: float | None = None) -> tuple[pulp.LpProblem, dict[tuple[int, int], pulp.LpVariable], float]:
    """The MILP of the module docstring: least ``T`` (in units of ``unit`` seconds)."""
    a = data.instance.arrays
    unit = max(float(data.costs.overhead_s), 1e-12)
    prob = pulp.LpProblem("f5_columns", pulp.LpMinimize)
    y = {(r, j): pulp.LpVariable(f"y_r{r}_p{j}", cat=pulp.LpBinary) for r, c in enumerate(cols) for j in range(len(c.cap))}
    T = pulp.LpVariable("T", lowBound=0, upBound=t_max / unit)
    first = np.unique(classes, return_index=True)[1]  # a block of each class: its figures are the class's
    layer_class = data.is_layer[first]
    work, kv = [], []  # what each chosen column adds to T (attention x its layers + per-sequence overhead), to KV
    for r, c in enumerate(cols):
        check(deadline, "building the column model")
        if not len(c.cap):  # the request cannot be admitted
            continue
        chosen = pulp.lpSum(y[r, j] for j in range(len(c.cap)))
        prob += chosen <= 1, f"one_r{r}"
        caps = np.minimum(c.cap, t_max)
        prob += T - pulp.lpSum(float(caps[j] / unit) * y[r, j] for j in range(len(c.cap))) - t_max / unit * (1 - chosen) <= 0, f"cap_r{r}"
        add = data.attn[r] * c.counts[:, layer_class].sum(axis=1) + data.costs.overhead_per_seq_s * (c.counts.sum(axis=1) > 0)
        work += [float(add[j] / unit) * y[r, j] for j in range(len(c.cap)) if add[j] > 0]
        column_kv = c.counts @ a.kv[r, first] / data.kv_capacity
        kv += [float(column_kv[j]) * y[r, j] for j in range(len(c.cap))]
    fixed = [_class_charge(prob, data.fixed[block], classes == k, cols, y, k, unit) for k, block in enumerate(first)]
    prob += T * 1.0 == float(data.costs.overhead_s / unit) + pulp.lpSum(work) + pulp.lpSum(fixed), "iteration_time"
    prob += pulp.lpSum(float(a.weight[r]) * v for (r, _), v in y.items()) >= weight - 1e-9 * max(1.0, abs(weight)), "weight"
    if math.isfinite(data.kv_capacity):
        prob += pulp.lpSum(kv) <= 1, "kv_capacity"
    prob.setObjective(T)
    return prob, y, unit


def _class_charge(prob: pulp.LpProblem, row: NDArray[np.float64], members: BoolArray, cols: list[Columns],
                  y: dict[tuple[int, int], pulp.LpVariable], k: int, unit: float) -> pulp.LpAffineExpression:
    """The relaxed fixed charge of class ``k`` (module docstring; ``row`` its blocks' fixed
    charge by count, ``members`` its blocks), its rows added to ``prob``."""
    size = int(members.sum())
    on = {r: [j for j in range(len(c.cap)) if c.counts[j, k] > 0] for r, c in enumerate(cols)}
    on = {r: js for r, js in on.items() if js}
    top = len(on)
    if top == 0:
        return pulp.LpAffineExpression()
    cat = pulp.LpBinary if size == 1 else pulp.LpInteger
    n = {c: pulp.LpVariable(f"a_k{k}_c{c}", lowBound=0, upBound=size, cat=cat) for c in range(1, top + 1)}
    active = pulp.lpSum(n.values())
    prob += active <= size, f"size_k{k}"
    taken = {r: pulp.lpSum(int(cols[r].counts[j, k]) * y[r, j] for j in js) for r, js in on.items()}
    prob += pulp.lpSum(c * v for c, v in n.items()) == pulp.lpSum(taken.values()), f"slots_k{k}"
    for r, e in taken.items():
        prob += active >= e, f"widest_k{k}_r{r}"
    many = pulp.lpSum(y[r, j] for r, js in on.items() for j in js)
    for c in range(2, top + 1):  # a count of c needs c requests on the class
        u = pulp.LpVariable(f"u_k{k}_c{c}", cat=pulp.LpBinary)
        prob += pulp.lpSum(n[c2] for c2 in range(c, top + 1)) <= size * u, f"some_k{k}_c{c}"
        prob += c * u <= many, f"users_k{k}_c{c}"
    return pulp.lpSum(float(row[c] / unit) * v for c, v in n.items())


def _chosen(data: BatchData, cols: list[Columns], y: dict[tuple[int, int], pulp.LpVariable]) -> tuple[BoolArray, BoolArray]:
    """The placements of the columns the model chose."""
    x = np.zeros((data.n_requests, data.n_blocks), dtype=bool)
    admitted = np.zeros(data.n_requests, dtype=bool)
    for (r, j), v in y.items():
        if (v.varValue or 0) > 0.5:
            x[r], admitted[r] = cols[r].rows[j], True
    return x, admitted


def _meets_limits(data: BatchData, x: BoolArray, admitted: BoolArray) -> bool:
    """Whether every admitted request meets its TPOT at the answer's ``T``, and the KV fits."""
    t = data.iteration_time(x, admitted)
    for r in np.nonzero(admitted)[0]:
        slack, k = data.tpot_slack(int(r), x[r][None])
        if t * k[0] > slack[0] or not data.placeable(int(r), x[r][None])[0]:
            return False
    kv = float(np.where(x & admitted[:, None], data.instance.arrays.kv, 0.0).sum())
    return not exceeds(kv, data.kv_capacity)
