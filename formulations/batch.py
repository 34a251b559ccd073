"""F5 as a MILP (PuLP): throughput placement of one decode batch.

Variables (handles keyed by tuples; names survive MPS export):

* ``a[r]`` admitted, ``x[r, b]`` block ``b`` of request ``r`` on the server (``x <= a``:
  a rejected request's row is all client and uses nothing), ``y[b]`` block active
  (``x[r, b] <= y[b]``);
* ``z[b, k]``, ``k = 1 .. R``: exactly ``k`` admitted requests run block ``b``
  (``sum_k z = y``, ``sum_k k z = sum_r x[r, b]``). Since the count is an integer, its
  cost ``fixed[b, k]`` (``lin_b(k)`` plus the attention floor) is exact, whatever the
  shape of the measured curve: one binary per count, no convexity needed;
* ``T`` = overhead + ``sum_{b,k} fixed[b, k] z[b, k]`` + ``sum_r attn[r] * (server layers of r)``
  + ``per_seq * sum_r srv[r]`` (``srv[r]``: request ``r`` runs some block on the server);
* ``u[r, b] >= x[r, b] - x[r, b-1]`` and ``d[r, b] >= x[r, b-1] - x[r, b]``, cyclic
  (``b = 0`` is the head -> embed edge, which carries a token id); ``full[r] >= sum_b x[r, b] - (B - 1)``
  (all server);
* ``v[r, j]``, ``j = 1 .. J_r``: the decode cycle has ``j`` server segments entered from
  the client (``sum_b u[r, b] <= sum_j j v[r, j]``, ``sum_j v <= 1``), so
  ``s + w = 2 j`` (or 1 when ``full[r] = 1``), plus 1 when ``wrap[r] = 1``: a server
  segment that wraps from the head round to the embedding costs one iteration more (the
  sampled token is there only at the end of an iteration); ``wrap[r] >= x[r, 0] +
  x[r, B-1] - 1 - full[r]``;
* the product ``T * (s + w)`` exactly: ``P[r, j] >= T - T_max (1 - v[r, j])``,
  ``Q[r] >= T - T_max (1 - full[r])``, ``W[r] >= T - T_max (1 - wrap[r])``, ``P, Q, W >=
  0``, and the TPOT row carries ``sum_j 2 j P[r, j] + Q[r] + W[r]``. ``T_max`` (the big-M) is the iteration time with every
  request on every block at its costliest count. ``J_r`` is the most segments the TPOT
  limit allows: each costs at least one up and one down crossing and two iterations of at
  least the overhead (and never more than ``B // 2``).

Rows: TPOT (divided by the limit) and the rows of F2 for the limits F5 holds at the
figure of the request alone (:func:`batch1_rows`: client memory and, when the data holds
TTFT, the batch-1 TTFT, each divided by its limit), each relaxed by ``max(0, all-client
value - limit) * (1 - a[r])``; KV divided by the capacity. All
crossing and count terms only make a row harder when over-counted, so every MILP solution
is truly feasible, and the true counts are always a solution.

The built model is phase 1 (maximise ``weight``); phase 2 adds ``weight >= W1`` and
minimises ``T / t_unit``.

Examples
--------
>>> import sys; sys.path.insert(0, "tests")
>>> from batch_cases import batch_instance, toy_costs  # doctest: +SKIP
>>> problem, h = build(batch_data.build_data(batch_instance(0), toy_costs()))  # doctest: +SKIP
>>> sorted(h)[:4]  # doctest: +SKIP
['P', 'Q', 'T', 'a']
"""

from __future__ import annotations

import math
from typing import Any

import pulp

from splitllm.deadline import requests as each_request
from splitllm.formulations import batch_data
from splitllm.formulations.batch_data import BatchData
from splitllm.formulations.compact import limit_row
from splitllm.formulations.request_rows import LinearRow, cycle_view, request_rows
from splitllm.resources import throughput_limits


def t_max(data: BatchData) -> float:
    """An upper bound on ``T``: every request on every block, each block at its costliest count."""
    n_layers = int(data.is_layer.sum())
    per_seq = data.costs.overhead_per_seq_s * data.n_requests
    return float(data.costs.overhead_s + data.fixed.max(axis=1).sum() + data.attn.sum() * n_layers + per_seq)


def max_segments(data: BatchData, r: int) -> int:
    """The most server segments entered from the client request ``r``'s TPOT limit allows."""
    a = data.instance.arrays
    limit = a.tpot_limit[r]
    if not math.isfinite(limit):
        return data.n_blocks // 2
    per_segment = min(a.act_up_decode[r], a.token_up_decode[r]) + min(a.act_down_decode[r], a.token_down_decode[r])
    per_segment += 2 * data.costs.overhead_s
    if per_segment <= 0:
        return data.n_blocks // 2
    return int(min(data.n_blocks // 2, math.floor(limit * (1 + 1e-9) / per_segment)))


def build(data: BatchData, deadline: float | None = None) -> tuple[pulp.LpProblem, dict[str, Any]]:
    """Phase 1 of F5 (maximise admitted weight) and its handles (module docstring)."""
    R, B = data.n_requests, data.n_blocks
    prob = pulp.LpProblem("f5_throughput", pulp.LpMaximize)
    h: dict[str, Any] = {key: {} for key in ("a", "x", "y", "z", "u", "d", "full", "v", "P", "Q", "wrap", "W", "srv")}
    h["t_max"] = t_max(data)
    h["t_unit"] = max(float(data.costs.overhead_s + data.fixed[:, 1].sum()), 1e-12)  # T of one all-server request
    h["T"] = pulp.LpVariable("T", lowBound=0, upBound=h["t_max"])
    for b in range(B):
        h["y"][b] = pulp.LpVariable(f"y_b{b}", cat=pulp.LpBinary)
        for k in range(1, R + 1):
            h["z"][b, k] = pulp.LpVariable(f"z_b{b}_k{k}", cat=pulp.LpBinary)
    for r in each_request(R, deadline):
        _request(prob, h, data, r)
    _blocks(prob, h, data)
    a = data.instance.arrays
    if math.isfinite(data.kv_capacity):
        terms = [(a.kv[r, b] / data.kv_capacity) * h["x"][r, b] for r in range(R) for b in range(B) if a.kv[r, b] > 0]
        prob += pulp.lpSum(terms) <= 1, "kv_capacity"
    h["weight"] = pulp.lpSum(float(a.weight[r]) * h["a"][r] for r in range(R))
    prob += h["weight"]
    return prob, h


def _request(prob: pulp.LpProblem, h: dict[str, Any], data: BatchData, r: int) -> None:
    """Request ``r``'s variables, crossing rows, TPOT and client memory rows."""
    B = data.n_blocks
    h["a"][r] = pulp.LpVariable(f"a_r{r}", cat=pulp.LpBinary)
    x = [pulp.LpVariable(f"x_r{r}_b{b}", cat=pulp.LpBinary) for b in range(B)]
    for b in range(B):
        h["x"][r, b] = x[b]
        prob += x[b] <= h["a"][r], f"admit_r{r}_b{b}"
        u = h["u"][r, b] = pulp.LpVariable(f"u_r{r}_b{b}", lowBound=0, upBound=1)
        d = h["d"][r, b] = pulp.LpVariable(f"d_r{r}_b{b}", lowBound=0, upBound=1)
        prob += u >= x[b] - x[b - 1], f"up_r{r}_b{b}"
        prob += d >= x[b - 1] - x[b], f"down_r{r}_b{b}"
    full = h["full"][r] = pulp.LpVariable(f"full_r{r}", lowBound=0, upBound=1)
    prob += full >= pulp.lpSum(x) - (B - 1), f"full_r{r}"
    for b in range(B):  # full exactly when every block is on the server
        prob += full <= x[b], f"full_r{r}_b{b}"
    for row in batch1_rows(data, r):
        limit_row(prob, cycle_view(h, r), r, row, relax=True)
    _tpot(prob, h, data, r, x)


def batch1_rows(data: BatchData, r: int) -> list[LinearRow]:
    """Request ``r``'s rows of the limits F5 holds at the figure of the request alone
    (client memory; batch-1 TTFT with ``data.ttft``; any other per-request limit the
    resources table marks so): the rows of F2 (:mod:`splitllm.formulations.request_rows`)."""
    alone = {res for res in throughput_limits(data.ttft) if res.throughput != "batched"}
    return [row for row in request_rows(data.instance.arrays, r) if row.resource in alone]


def _tpot(prob: pulp.LpProblem, h: dict[str, Any], data: BatchData, r: int, x: list[pulp.LpVariable]) -> None:
    a, B = data.instance.arrays, data.n_blocks
    J = max_segments(data, r)
    ups = pulp.lpSum(h["u"][r, b] for b in range(B))
    for j in range(1, J + 1):
        h["v"][r, j] = pulp.LpVariable(f"v_r{r}_j{j}", cat=pulp.LpBinary)
        h["P"][r, j] = pulp.LpVariable(f"P_r{r}_j{j}", lowBound=0)
        prod = h["P"][r, j] - h["T"] + h["t_max"] * (1 - h["v"][r, j])
        prob += prod * (1 / h["t_max"]) >= 0, f"prod_r{r}_j{j}"
    prob += ups <= pulp.lpSum(j * h["v"][r, j] for j in range(1, J + 1)), f"segments_r{r}"
    if J:
        prob += pulp.lpSum(h["v"][r, j] for j in range(1, J + 1)) <= 1, f"one_count_r{r}"
    h["Q"][r] = pulp.LpVariable(f"Q_r{r}", lowBound=0)
    prob += (h["Q"][r] - h["T"] + h["t_max"] * (1 - h["full"][r])) * (1 / h["t_max"]) >= 0, f"prod_full_r{r}"
    # a server segment wrapping head -> embed costs one iteration more (the sampled token
    # is there only at the end of an iteration): wrap[r] = x[0] and x[B-1], not all-server
    wrap = h["wrap"][r] = pulp.LpVariable(f"wrap_r{r}", lowBound=0, upBound=1)
    prob += wrap >= x[0] + x[B - 1] - 1 - h["full"][r], f"wrap_r{r}"
    h["W"][r] = pulp.LpVariable(f"W_r{r}", lowBound=0)
    prob += (h["W"][r] - h["T"] + h["t_max"] * (1 - wrap)) * (1 / h["t_max"]) >= 0, f"prod_wrap_r{r}"
    limit = float(a.tpot_limit[r])
    if not math.isfinite(limit):
        return
    scale = limit if limit > 0 else 1.0
    step = [(float(a.client_decode[r, b]) * (1 - x[b])) for b in range(B)]
    step += [float(a.act_up_decode[r]) * h["u"][r, b] + float(a.act_down_decode[r]) * h["d"][r, b] for b in range(1, B)]
    step += [float(a.token_up_decode[r]) * h["u"][r, 0], float(a.token_down_decode[r]) * h["d"][r, 0]]
    step += [2 * j * h["P"][r, j] for j in range(1, J + 1)] + [h["Q"][r], h["W"][r]]
    big_m = max(0.0, float(a.client_decode[r].sum()) - limit)
    prob += pulp.lpSum(step) * (1 / scale) <= limit / scale + big_m / scale * (1 - h["a"][r]), f"tpot_r{r}"


def _blocks(prob: pulp.LpProblem, h: dict[str, Any], data: BatchData) -> None:
    """Active blocks, count bands and the iteration time ``T``."""
    R, B = data.n_requests, data.n_blocks
    terms = []
    for b in range(B):
        col = [h["x"][r, b] for r in range(R)]
        for r in range(R):
            prob += col[r] <= h["y"][b], f"active_r{r}_b{b}"
        zs = [h["z"][b, k] for k in range(1, R + 1)]
        prob += pulp.lpSum(zs) == h["y"][b], f"band_b{b}"
        prob += pulp.lpSum(k * h["z"][b, k] for k in range(1, R + 1)) == pulp.lpSum(col), f"count_b{b}"
        terms += [float(data.fixed[b, k]) * h["z"][b, k] for k in range(1, R + 1)]
    attn = [float(data.attn[r]) * h["x"][r, b] for r in range(R) for b in range(B) if data.is_layer[b]]
    per_seq = float(data.costs.overhead_per_seq_s)
    if per_seq > 0:  # srv[r] = 1 exactly when request r runs some block on the server
        for r in range(R):
            h["srv"][r] = pulp.LpVariable(f"srv_r{r}", 0, 1)
            for b in range(B):
                prob += h["x"][r, b] <= h["srv"][r], f"served_r{r}_b{b}"
            prob += h["srv"][r] <= pulp.lpSum(h["x"][r, b] for b in range(B)), f"served_r{r}"
        attn += [per_seq * h["srv"][r] for r in range(R)]
    unit = 1 / h["t_unit"]
    prob += (h["T"] - pulp.lpSum(terms) - pulp.lpSum(attn)) * unit == float(data.costs.overhead_s) * unit, "iteration_time"


__all__ = ["batch_data", "build", "max_segments", "t_max"]
