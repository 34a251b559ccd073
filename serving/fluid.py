"""A fluid model of one batching server under a placement mix: an estimate of capacity.

Requests are grouped into *classes*: a client and a band of prompt lengths (the workload's
terciles). A *cut* is one of ``batch-greedy``'s candidate placements (all-server,
all-client, every server prefix and suffix). A *mix* gives each class a share of each
cut. For arrival rate ``lam`` and ``v[c, k]`` requests/s of class ``c`` at cut ``k``
(``sum_k v[c, k] = share_c * lam``), in steady state:

* **prefill** takes ``rho = sum v[c, k] * prefill_s[c, k]`` of the server's time, where
  ``prefill_s`` is the class's mean prompt through the cut's server blocks, priced by the
  batched tables (one prompt per iteration, overhead excluded);
* **decode** runs in iterations of length ``T``; prefill-first scheduling stalls them, so a
  decode step of a request with ``s`` server segments, ``w`` of them entered from the
  client, takes ``T_eff * f`` with ``T_eff = T / (1 - rho)`` and ``f = s + w / 2`` (F5
  counts a whole iteration of waiting per entry, its worst case; the mean is half), plus
  its client time and crossings;
* **concurrency** (Little's law): ``N[c, k] = v[c, k] * (o - 1) * TPOT[c, k]`` requests
  of the class decode at once, at a mean context of ``p + o / 2``;
* **one decode iteration** over them costs ``overhead + per-seq overhead * sum N + sum_b
  lin_b(n_b) + attention``, ``n_b`` the requests running block ``b``, with ``lin_b`` taken
  as its value at 1 plus the chord slope up to the engine's sequence cap (a block no class
  runs costs nothing: a binary per block); this must fit in ``T``, the requests in the
  engine's sequence cap, their KV in the cache. KV and attention are each request's own,
  averaged over the class weighted by its decode steps (a longer output holds more KV for
  longer; the product of the class's means would miss that);
* **TTFT**: each request's batch-1 TTFT plus a queueing wait of ``T + 2.3 * rho / (1 -
  rho) * S`` (one iteration, then an M/M/1-like 90th-percentile wait for the prefills
  ahead, ``S`` the workload's mean all-server prefill) must meet its SLO.

A cut is open to a class when at least 90% of its requests keep their client memory and
their TPOT and TTFT limits at the ``T`` and ``rho`` tried (their 10th-percentile room).
For each ``(T, rho)`` on a grid the model is a small MILP (PuLP, HiGHS): maximise ``lam``
(``inf`` when every class can run all on its clients).
The best over the grid is the *fluid estimate* of capacity and its mix. It is an
estimate: averages stand for whole classes, queueing is approximated, and lin is
linearised; the serving simulation is the measurement.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pulp
from numpy.typing import NDArray

from splitllm.batched.evaluator import cycle_factor, kinds
from splitllm.batched import BatchedCosts, iteration_time
from splitllm.evaluator import request_metrics
from splitllm.instance import Instance
from splitllm.batched.engines import get_engine
from splitllm.formulations.batch_candidates import candidates

Array = NDArray[np.float64]
#: Share of a class's requests that must keep their limits for a cut to be open to it.
COVER = 0.9
#: 90th percentile of an M/M/1 wait over its mean (ln 10).
TAIL = float(np.log(10.0))
#: Relative MIP gap and seconds per grid point: the model is an estimate, 1% is plenty.
MIP_GAP, POINT_TIME_S = 0.01, 2.0
#: Requests/s the model stops at: reached only when every class runs without the server (reported as inf).
RATE_CAP = 1e6
#: Running requests at which lin's chord is taken when the engine has no sequence cap.
SEQ_REFERENCE = 256
#: Every how many blocks a prefix or suffix cut is considered.
CUT_STEP = 2
RHO_GRID = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85)
T_STEPS = 14


@dataclass(frozen=True)
class Classes:
    """Request classes: ``names[c]`` (client/band), ``members[c]`` (request indices), ``share[c]``."""

    names: list[str]
    members: list[NDArray[np.int64]]
    share: Array


def classes(inst: Instance, bands: int = 3) -> Classes:
    """The workload's requests grouped by client and prompt-length band (quantiles).

    >>> from splitllm.instance import load_instance, example_path
    >>> c = classes(load_instance(example_path("llama2-7b")))
    >>> sum(len(m) for m in c.members), float(round(c.share.sum(), 9))
    (6, 1.0)
    """
    prompt = inst.arrays.prompt_tokens.astype(float)
    edges = np.quantile(prompt, np.linspace(0, 1, bands + 1)[1:-1]) if bands > 1 else np.zeros(0)
    band = np.searchsorted(edges, prompt, side="right")
    client = np.array([r.client for r in inst.requests])
    names, members = [], []
    for name in sorted(set(client.tolist())):
        for k in range(bands):
            idx = np.flatnonzero((client == name) & (band == k))
            if idx.size:
                names.append(name if bands == 1 else f"{name}/{k}")
                members.append(idx)
    share = np.array([len(m) for m in members], float) / inst.n_requests
    return Classes(names, members, share)


@dataclass(frozen=True)
class CutFigures:
    """Per class ``c`` and cut ``k`` (see the module docstring): the 10th-percentile room
    of TPOT over the cycle factor (``inf`` when no server segment), of TTFT over the
    batch-1 figure, and the means that price the cut."""

    cuts: NDArray[np.bool_]
    fits_memory: NDArray[np.bool_]
    tpot_room: Array
    client_ok: NDArray[np.bool_]
    ttft_room: Array
    prefill_s: Array
    hold_client_s: Array  # mean (o - 1) x client time and crossings per step
    steps: Array  # mean (o - 1), per class
    factor: Array
    kv_steps: Array  # mean of (o - 1) x server KV at mid context
    kv_client_s: Array  # mean of (o - 1) x client time per step x server KV at mid context
    attn_s: Array  # attention of one decode step over the cut's server layers, weighted by output length
    mean_prefill_s: float


def coarse(cuts: NDArray[np.bool_], step: int = CUT_STEP) -> NDArray[np.bool_]:
    """Which cuts the fluid model considers: all-server, all-client and every ``step``-th
    prefix and suffix (neighbouring cuts cost nearly the same; fewer keep the MILP small).

    >>> coarse(candidates(5), 2).astype(int).tolist()
    [1, 1, 1, 0, 1, 0, 0, 1, 0, 1]
    """
    server_blocks = cuts.sum(axis=1)
    return (server_blocks == 0) | (server_blocks == cuts.shape[1]) | (server_blocks % step == 0)


def mean_factor(factor: NDArray[np.int64]) -> Array:
    """``s + w / 2`` from F5's ``s + w`` (:func:`cycle_factor`): each entry from the client
    waits half an iteration on average, not a whole one.

    >>> mean_factor(np.array([0, 1, 2, 3, 4])).tolist()
    [0.0, 1.0, 1.5, 2.5, 3.0]
    """
    f = np.asarray(factor, dtype=float)
    return np.where(f >= 2, f - 0.5 * (f // 2), f)


def cut_figures(inst: Instance, costs: BatchedCosts, groups: Classes) -> CutFigures:
    """Price every cut for every class from the instance's arrays and the batched tables."""
    a = inst.arrays
    cuts = candidates(inst.n_blocks)
    factor = mean_factor(cycle_factor(cuts))
    block_kinds = kinds(inst)
    is_layer = np.array([k == "layer" for k in block_kinds])
    no_server = replace(a, server_decode=np.zeros_like(a.server_decode))
    shape = (len(groups.names), len(cuts))
    out = {name: np.zeros(shape) for name in ("tpot_room", "ttft_room", "prefill_s", "hold_client_s", "kv_steps", "kv_client_s",
                                              "attn_s")}
    fits, client_ok = np.zeros(shape, bool), np.zeros(shape, bool)
    steps = np.zeros(len(groups.names))
    for c, idx in enumerate(groups.members):
        rows = np.repeat(idx, len(cuts))
        x = np.tile(cuts, (len(idx), 1))
        full = request_metrics(a, rows, x)
        client_step = request_metrics(no_server, rows, x).tpot
        o1 = (a.output_tokens[rows] - 1).astype(float)
        reshape = lambda v: np.asarray(v, float).reshape(len(idx), len(cuts))  # noqa: E731
        mem_ok = reshape(full.client_mem <= a.client_mem_limit[rows] * (1 + 1e-9)).astype(bool)
        fits[c] = mem_ok.mean(axis=0) >= COVER
        tpot_gap = reshape(np.where(o1 > 0, a.tpot_limit[rows] - client_step, np.inf))
        client_ok[c] = np.mean(tpot_gap >= 0, axis=0) >= COVER
        with np.errstate(divide="ignore", invalid="ignore"):
            out["tpot_room"][c] = np.where(factor > 0, np.quantile(tpot_gap, 1 - COVER, axis=0) / np.maximum(factor, 1), np.inf)
        out["ttft_room"][c] = np.quantile(reshape(a.ttft_limit[rows] - full.ttft), 1 - COVER, axis=0)
        client_hold = reshape(o1 * np.where(o1 > 0, client_step, 0.0))
        out["hold_client_s"][c] = client_hold.mean(axis=0)
        own_steps = (a.output_tokens[idx] - 1).astype(float)
        steps[c] = float(own_steps.mean())
        prompt = a.prompt_tokens[idx].astype(float)
        mid = prompt + a.output_tokens[idx] / 2.0
        out["prefill_s"][c] = _prefill_s(costs, block_kinds, cuts, prompt)
        full_context = (a.prompt_tokens[idx] + a.output_tokens[idx]).astype(float)
        kv = a.kv[idx] @ cuts.T.astype(float) * (mid / full_context)[:, None]  # per request and cut, at mid context
        # means of products, not products of means: a longer output holds more KV for longer
        out["kv_steps"][c] = (kv * own_steps[:, None]).mean(axis=0)
        out["kv_client_s"][c] = (kv * client_hold).mean(axis=0)
        attention = costs.attention.item_s(np.ones(len(idx)), mid)
        per_token = np.average(attention, weights=own_steps) if own_steps.sum() > 0 else attention.mean()
        out["attn_s"][c] = float(per_token) * (cuts & is_layer).sum(axis=1)
    mean_prefill = float(np.average(out["prefill_s"][:, 0], weights=groups.share))
    return CutFigures(cuts, fits, out["tpot_room"], client_ok, out["ttft_room"], out["prefill_s"], out["hold_client_s"],
                      steps, factor, out["kv_steps"], out["kv_client_s"], out["attn_s"], mean_prefill)


def _prefill_s(costs: BatchedCosts, block_kinds: Sequence[str], cuts: NDArray[np.bool_], prompt: Array) -> Array:
    """Mean server seconds of one prompt of each length in ``prompt`` alone in an iteration,
    per cut, less the engine's per-iteration overhead (prefills share iterations)."""
    needs = np.broadcast_to(cuts[None, :, None, :], (len(prompt), len(cuts), 1, len(block_kinds)))
    q = np.broadcast_to(prompt[:, None, None], (len(prompt), len(cuts), 1))
    seconds = iteration_time(costs, block_kinds, needs.reshape(-1, 1, len(block_kinds)), q.reshape(-1, 1), np.zeros((q.size, 1)))
    per_cut = np.asarray(seconds).reshape(len(prompt), len(cuts)) - costs.overhead_s
    return np.where(cuts.any(axis=1), per_cut, 0.0).mean(axis=0)


@dataclass(frozen=True)
class FluidPlan:
    """The fluid estimate: ``rate`` (requests/s), the mix ``share[c, k]`` (rows sum to 1), and
    the iteration time ``t_s`` and prefill share ``rho`` it was found at."""

    rate: float
    share: Array
    t_s: float
    rho: float
    groups: Classes
    figures: CutFigures


def fluid_plan(inst: Instance, costs: BatchedCosts, kv_capacity_bytes: float, *, engine: str = "vllm",
               groups: Classes | None = None, allowed: NDArray[np.bool_] | None = None) -> FluidPlan:
    """The highest rate of the fluid model over the ``(T, rho)`` grid, and its mix.

    ``allowed[c, k]`` (default: all) restricts the cuts each class may use, e.g. to
    all-server alone for that policy's estimate. A rate of 0 means no cut mix meets the
    SLOs in the model. ``engine`` gives the sequence cap (without one, :data:`SEQ_REFERENCE`
    is where lin's chord is taken and the cap).
    """
    limit = get_engine(engine).max_seqs
    max_seqs = int(limit) if np.isfinite(limit) else SEQ_REFERENCE
    groups = groups or classes(inst)
    fig = cut_figures(inst, costs, groups)
    allowed = np.ones(fig.tpot_room.shape, bool) if allowed is None else np.asarray(allowed, bool)
    allowed = allowed & fig.fits_memory & fig.client_ok & coarse(fig.cuts)[None, :]
    block_kinds = kinds(inst)
    lin_1 = np.array([costs.lin[k].value(np.array([1.0]))[0] for k in block_kinds])
    lin_top = np.array([costs.lin[k].value(np.array([float(max_seqs)]))[0] for k in block_kinds])
    slope = (lin_top - lin_1) / max(max_seqs - 1, 1)
    t_floor = costs.overhead_s + lin_1.sum()
    finite_rooms = fig.tpot_room[np.isfinite(fig.tpot_room) & allowed]
    t_top = max(float(finite_rooms.max()) if finite_rooms.size else t_floor, t_floor) * 1.01
    best = FluidPlan(0.0, np.zeros(fig.tpot_room.shape), t_floor, 0.0, groups, fig)
    for t in np.geomspace(t_floor, max(t_top, t_floor * 1.01), T_STEPS):
        for rho in RHO_GRID:
            rate, share = _solve_point(fig, groups, costs, allowed, float(t), rho, lin_1, slope, kv_capacity_bytes, max_seqs,
                                       best.rate * (1 + MIP_GAP))
            if rate > best.rate * (1 + 1e-9):
                best = FluidPlan(rate, share, float(t), rho, groups, fig)
    return best


def _solve_point(fig: CutFigures, groups: Classes, costs: BatchedCosts, allowed: NDArray[np.bool_], t: float, rho: float,
                 lin_1: Array, slope: Array, kv_capacity: float, max_seqs: int, floor_rate: float = 0.0) -> tuple[float, Array]:
    """The fluid MILP at one ``(T, rho)``: the most requests/s and the mix (module docstring)."""
    t_eff = t / (1.0 - rho)
    wait = t + TAIL * rho / (1.0 - rho) * fig.mean_prefill_s
    open_ = allowed & (fig.tpot_room >= t_eff) & (fig.ttft_room >= wait)
    if not open_.any(axis=1).all():
        return 0.0, np.zeros(open_.shape)
    if _prefill_bound(fig, groups, open_, rho) <= floor_rate:
        return 0.0, np.zeros(open_.shape)
    prob = pulp.LpProblem("fluid", pulp.LpMaximize)
    lam = pulp.LpVariable("rate", lowBound=0, upBound=RATE_CAP)
    pairs = list(zip(*np.nonzero(open_)))
    v = {(c, k): pulp.LpVariable(f"v_{c}_{k}", lowBound=0) for c, k in pairs}
    n_blocks = fig.cuts.shape[1]
    z = [pulp.LpVariable(f"z_{b}", cat="Binary") for b in range(n_blocks)]
    prob += lam
    for c in range(len(groups.names)):
        prob += pulp.lpSum(v[c, k] for k in np.flatnonzero(open_[c])) == float(groups.share[c]) * lam
    prob += pulp.lpSum(float(fig.prefill_s[c, k]) * v[c, k] for c, k in pairs) <= rho
    hold = {(c, k): float(fig.hold_client_s[c, k] + fig.steps[c] * t_eff * fig.factor[k]) for c, k in pairs}
    # N[c, k], requests decoding at once on the server (an all-client request is not there)
    running = {(c, k): hold[c, k] * v[c, k] for c, k in pairs if fig.cuts[k].any()}
    prob += pulp.lpSum(running.values()) <= max_seqs
    prob += pulp.lpSum(float(fig.kv_client_s[c, k] + fig.kv_steps[c, k] * t_eff * fig.factor[k]) * v[c, k]
                       for c, k in running) <= kv_capacity
    per_block = []
    for b in range(n_blocks):
        users = [n for (c, k), n in running.items() if fig.cuts[k, b]]
        n_b = pulp.lpSum(users)
        prob += n_b <= max_seqs * z[b]
        per_block.append(float(lin_1[b]) * z[b] + float(slope[b]) * n_b)
    prob += (costs.overhead_s + pulp.lpSum(per_block) + pulp.lpSum((costs.overhead_per_seq_s + float(fig.attn_s[key])) * n
                                                                     for key, n in running.items()) <= t)
    with _quiet_stdout():  # highspy prints its banner on stdout once per process, whatever its options
        prob.solve(pulp.HiGHS(msg=False, gapRel=MIP_GAP, timeLimit=POINT_TIME_S))
    if pulp.LpStatus[prob.status] != "Optimal" or lam.value() is None or lam.value() <= 0:
        return 0.0, np.zeros(open_.shape)
    rate = float(lam.value())
    rate = np.inf if rate >= RATE_CAP * (1 - 1e-9) else rate  # every class can run without the server
    share = np.zeros(open_.shape)
    for (c, k), var in v.items():
        share[c, k] = max(float(var.value() or 0.0), 0.0)
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1e-300)
    return rate, share


def _prefill_bound(fig: CutFigures, groups: Classes, open_: NDArray[np.bool_], rho: float) -> float:
    """An upper bound on the rate at one grid point from prefill alone: each class at its
    cheapest open cut."""
    cheapest = np.where(open_, fig.prefill_s, np.inf).min(axis=1)
    per_request = float(groups.share @ cheapest)
    return np.inf if per_request <= 0 else rho / per_request


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 points to the null device inside the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
