"""F5 in CP-SAT, with safely rounded integer coefficients.

The model of :mod:`splitllm.formulations.batch` with Booleans, where CP-SAT's enforcement
literals replace the big-Ms: the TPOT, client memory (and, with ``data.ttft``, TTFT) rows
hold only when ``a[r]``, and
the product ``T * (s + w)`` is ``P[r] >= 2 j T`` enforced by ``v[r, j]``, ``P[r] >= (2 j + 1) T``
by ``v[r, j]`` and ``wrap[r]`` (a server segment wrapping head -> embed), and ``P[r] >= T``
by ``full[r]``.

Times are integers in quanta of ``time_quantum`` = the least finite TPOT limit /
``resolution`` seconds; bytes in quanta of each row's limit / ``resolution``.
``rounding="safe"`` rounds every time and byte coefficient up and every limit down, so
every CP-SAT-feasible point is truly feasible and ``T`` in quanta is at least the true
``T``; ``rounding="relaxed"`` rounds the other way, so its optimum bounds the true one
(weight from above, ``T`` from below). Weights are scaled to integers: exactly when a
power of ten makes them integers (``weight_exact``), else in quanta rounded outward (up
in the relaxed model, so its weight bound is never below the true optimum).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from ortools.sat.python import cp_model

from splitllm.deadline import requests as each_request
from splitllm.formulations.batch import batch1_rows, max_segments, t_max
from splitllm.formulations.cpsat import limit_row
from splitllm.formulations.request_rows import cycle_view
from splitllm.formulations.batch_data import BatchData

Rounding = Literal["safe", "relaxed"]
RESOLUTION = 10**6


def _q(value: float, quantum: float, up: bool) -> int:
    scaled = value / quantum
    return int(math.ceil(scaled - 1e-12 * abs(scaled))) if up else int(math.floor(scaled + 1e-12 * abs(scaled)))


def integer_weights(weight: np.ndarray, resolution: int, up: bool) -> tuple[list[int], float, bool]:
    """Weights as integers in quanta: ``(integers, quantum, exact)``.

    Exact when some power of ten up to ``10**9`` makes every weight an integer (``0.1``,
    ``2.5``); otherwise in quanta of the largest weight / ``resolution``, rounded up when
    ``up`` (the relaxed model: its optimum then bounds the true weight from above) and
    down otherwise.

    >>> integer_weights(np.array([0.1, 0.2, 1.5]), 100, up=True)
    ([1, 2, 15], 0.1, True)
    >>> integer_weights(np.array([1 / 3, 1.0]), 100, up=True)
    ([34, 100], 0.01, False)
    """
    total = float(np.abs(weight).sum())
    for digits in range(10):
        scale = 10.0**digits
        scaled = weight * scale
        if total * scale < 2**53 and np.all(np.abs(scaled - np.round(scaled)) <= np.maximum(1e-6, 1e-15 * np.abs(scaled))):
            return [int(round(v)) for v in scaled], 1.0 / scale, True
    quantum = max(float(np.abs(weight).max()), 1e-300) / resolution
    return [_q(float(v), quantum, up) for v in weight], quantum, False


def build(data: BatchData, rounding: Rounding = "safe", resolution: int = RESOLUTION, deadline: float | None = None) -> tuple[cp_model.CpModel, dict[str, Any]]:
    """Phase 1 of F5 (maximise admitted weight) in CP-SAT, and its handles."""
    a, R, B = data.instance.arrays, data.n_requests, data.n_blocks
    up = rounding == "safe"
    limits = a.tpot_limit[np.isfinite(a.tpot_limit) & (a.tpot_limit > 0)]
    tq = float(limits.min()) / resolution if limits.size else t_max(data) / resolution
    m = cp_model.CpModel()
    h: dict[str, Any] = {key: {} for key in ("a", "x", "y", "z", "u", "d", "full", "v", "P", "wrap", "srv")}
    h.update(time_quantum=tq, rounding=rounding)
    t_hi = _q(t_max(data), tq, True) + B * R + 1
    h["T"] = m.NewIntVar(0, t_hi, "T")
    for r in each_request(R, deadline):
        _request(m, h, data, r, tq, up, resolution, t_hi)
    terms = []
    for b in range(B):
        h["y"][b] = m.NewBoolVar(f"y_b{b}")
        col = [h["x"][r, b] for r in range(R)]
        for r in range(R):
            m.AddImplication(col[r], h["y"][b])
        zs = [m.NewBoolVar(f"z_b{b}_k{k}") for k in range(1, R + 1)]
        h["z"].update({(b, k + 1): z for k, z in enumerate(zs)})
        m.Add(sum(zs) == h["y"][b])
        m.Add(sum((k + 1) * z for k, z in enumerate(zs)) == sum(col))
        terms += [_q(float(data.fixed[b, k + 1]), tq, up) * z for k, z in enumerate(zs)]
    attn = [_q(float(data.attn[r]), tq, up) * h["x"][r, b] for r in range(R) for b in range(B) if data.is_layer[b]]
    per_seq = float(data.costs.overhead_per_seq_s)
    if per_seq > 0:  # srv[r]: request r runs some block on the server
        for r in range(R):
            h["srv"][r] = m.NewBoolVar(f"srv_r{r}")
            m.AddMaxEquality(h["srv"][r], [h["x"][r, b] for b in range(B)])
        attn += [_q(per_seq, tq, up) * h["srv"][r] for r in range(R)]
    m.Add(h["T"] == _q(data.costs.overhead_s, tq, up) + sum(terms) + sum(attn))
    if math.isfinite(data.kv_capacity):
        kq = max(data.kv_capacity, 1.0) / resolution
        m.Add(sum(_q(float(a.kv[r, b]), kq, up) * h["x"][r, b] for r in range(R) for b in range(B) if a.kv[r, b] > 0) <= _q(data.kv_capacity, kq, not up))
    w, h["weight_quantum"], h["weight_exact"] = integer_weights(a.weight, resolution, up=not up)
    h["weight"] = sum(wr * h["a"][r] for r, wr in enumerate(w))
    m.Maximize(h["weight"])
    return m, h


def _request(m: cp_model.CpModel, h: dict[str, Any], data: BatchData, r: int, tq: float, up: bool, resolution: int, t_hi: int) -> None:
    a, B = data.instance.arrays, data.n_blocks
    adm = h["a"][r] = m.NewBoolVar(f"a_r{r}")
    x = [m.NewBoolVar(f"x_r{r}_b{b}") for b in range(B)]
    for b in range(B):
        h["x"][r, b] = x[b]
        m.AddImplication(x[b], adm)
        h["u"][r, b] = m.NewBoolVar(f"u_r{r}_b{b}")
        h["d"][r, b] = m.NewBoolVar(f"d_r{r}_b{b}")
        m.Add(h["u"][r, b] >= x[b] - x[b - 1])
        m.Add(h["d"][r, b] >= x[b - 1] - x[b])
    full = h["full"][r] = m.NewBoolVar(f"full_r{r}")
    m.Add(full >= sum(x) - (B - 1))
    for b in range(B):  # full exactly when every block is on the server (P takes the max, not a sum)
        m.AddImplication(full, x[b])
    J = max_segments(data, r) if up else data.n_blocks // 2
    vs = [m.NewBoolVar(f"v_r{r}_j{j}") for j in range(1, J + 1)]
    h["v"].update({(r, j + 1): v for j, v in enumerate(vs)})
    m.Add(sum(h["u"][r, b] for b in range(B)) <= sum((j + 1) * v for j, v in enumerate(vs)))
    m.Add(sum(vs) <= 1)
    p = h["P"][r] = m.NewIntVar(0, (2 * J + 1) * t_hi, f"P_r{r}")
    for j, v in enumerate(vs):
        m.Add(p >= 2 * (j + 1) * h["T"]).OnlyEnforceIf(v)
    m.Add(p >= h["T"]).OnlyEnforceIf(full)
    wrap = h["wrap"][r] = m.NewBoolVar(f"wrap_r{r}")  # head -> embed server segment: one iteration more
    m.Add(wrap >= x[0] + x[-1] - 1 - full)
    for j, v in enumerate(vs):
        m.Add(p >= (2 * (j + 1) + 1) * h["T"]).OnlyEnforceIf([v, wrap])
    for row in batch1_rows(data, r):  # client memory, batch-1 TTFT with data.ttft: F4's rows
        limit_row(m, cycle_view(h, r), r, row, up, resolution, enforce=True)
    limit = float(a.tpot_limit[r])
    if math.isfinite(limit):
        step = [_q(float(a.client_decode[r, b]), tq, up) * (1 - x[b]) for b in range(B)]
        step += [_q(float(a.act_up_decode[r]), tq, up) * h["u"][r, b] + _q(float(a.act_down_decode[r]), tq, up) * h["d"][r, b] for b in range(1, B)]
        step += [_q(float(a.token_up_decode[r]), tq, up) * h["u"][r, 0], _q(float(a.token_down_decode[r]), tq, up) * h["d"][r, 0]]
        m.Add(sum(step) + p <= _q(limit, tq, not up)).OnlyEnforceIf(adm)
