"""What a simulation says: per-request rows, the summary, latency CDFs.

SLO attainment is the share of all requests (sent or not) that meet every SLO they give;
a request not sent, or dropped because its KV can never fit, meets none. Goodput is the
number of requests meeting their SLOs per second of the simulated span (first arrival to
last token).

Examples
--------
>>> percentiles(np.array([1.0, 2.0, 3.0, np.nan]))
{'p50': 2.0, 'p90': 2.8, 'p99': 2.98}
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Instance
from splitllm.jsonio import atomic_path, write_json
from splitllm.evaluator import request_metrics
from splitllm.resources import REQUEST_LIMITS, exceeds
from splitllm.serving.policies import Placement
from splitllm.serving.simulator import SimResult
from splitllm.solution import placement_string

ATTAINMENT_TARGET = 0.9
#: The per-request figures the simulation measures (:class:`SimResult` fields, by resource key).
SIMULATED = ("ttft", "tpot", "e2e")


def slo_met(inst: Instance, sim: SimResult, placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Per request: served and within every per-request limit it gives
    (:data:`splitllm.resources.REQUEST_LIMITS`; a decode-only one only with >= 2 output
    tokens). A figure the simulation measures (TTFT, TPOT, E2E: :data:`SIMULATED`) is
    taken from it; any other (client memory, ...) is the cost model's figure of the
    request's placement (``placements``, requests x blocks, ``True`` = server)."""
    a = inst.arrays
    rows = np.arange(inst.n_requests)
    placed = request_metrics(a, rows, placements) if any(r.key not in SIMULATED for r in REQUEST_LIMITS) else None
    ok = sim.served.copy()
    for res in REQUEST_LIMITS:
        limit = np.asarray(a.limit(res))
        bounded = np.isfinite(limit)
        value = getattr(sim, res.key) if res.key in SIMULATED else placed.of(res)  # type: ignore[union-attr]
        if res.decode_only:
            value = np.where(a.output_tokens > 1, value, 0.0)
        ok &= ~bounded | ~exceeds(np.where(np.isnan(value) & ~bounded, 0.0, value), limit)
    return ok


def percentiles(values: NDArray[np.float64]) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"p50": None, "p90": None, "p99": None}
    return {f"p{q}": round(float(np.percentile(v, q)), 12) for q in (50, 90, 99)}


def summary(inst: Instance, sim: SimResult, placement: Placement, arrivals: NDArray[np.float64], extra: dict[str, Any]) -> dict[str, Any]:
    met = slo_met(inst, sim, placement.placements)
    span = max(sim.makespan_s - float(arrivals.min(initial=0.0)), 1e-12)
    return {
        "requests": inst.n_requests,
        "sent": int(placement.sent.sum()),
        "served": int(sim.served.sum()),
        "dropped_kv": int(sim.dropped.sum()),
        "slo_attainment": float(met.mean()) if inst.n_requests else 0.0,
        "goodput_rps": float(met.sum() / span),
        "span_s": span,
        "ttft_s": percentiles(sim.ttft),
        "tpot_s": percentiles(sim.tpot),
        "e2e_s": percentiles(sim.e2e),
        "server_busy_s": sim.busy_s,
        "iterations": sim.iterations,
        "preemptions": sim.preemptions,
        "mean_tokens_per_iteration": sim.tokens / sim.iterations if sim.iterations else 0.0,
        "peak_kv_bytes": sim.peak_kv_bytes,
        "policy": placement.policy,
        "policy_wall_s": placement.wall_s,
        **({"policy_windows": placement.windows, "policy_fallback_all_server": placement.fallback,
            "policy_window_statuses": placement.statuses} if placement.windows else {}),
        "events": sim.events,
        "simulation_wall_s": sim.wall_s,
        **extra,
    }


#: The columns of ``requests.csv``: seconds from the start (``arrival_s``, ``completion_s``:
#: the last token at the client) or from the request's arrival (the latencies).
REQUEST_COLUMNS = ("id", "client", "arrival_s", "prompt_tokens", "output_tokens", "placement", "queue_s", "ttft_s",
                   "tpot_s", "e2e_s", "completion_s", "slo_met")


def write_requests(path: Path, inst: Instance, sim: SimResult, placement: Placement, arrivals: NDArray[np.float64]) -> None:
    """One row per request (:data:`REQUEST_COLUMNS`); a figure not measured is empty."""
    met = slo_met(inst, sim, placement.placements)
    fmt = lambda v: "" if not np.isfinite(v) else f"{v:.9g}"  # noqa: E731
    queue = sim.queue if sim.queue is not None else np.full(inst.n_requests, np.nan)
    a = inst.arrays
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(REQUEST_COLUMNS)
        for i, r in enumerate(inst.requests):
            text = placement_string(placement.placements[i]) if placement.sent[i] else ""
            w.writerow([r.id, r.client, fmt(arrivals[i]), int(a.prompt_tokens[i]), int(a.output_tokens[i]), text, fmt(queue[i]),
                        fmt(sim.ttft[i]), fmt(sim.tpot[i]), fmt(sim.e2e[i]), fmt(arrivals[i] + sim.e2e[i]), int(met[i])])


def plot_cdfs(path: Path, inst: Instance, runs: list[tuple[str, SimResult]], title: str) -> None:
    """TTFT, TPOT and E2E CDFs (share of all requests), one line per run (label, result),
    with the median SLO of each."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3)
    a = inst.arrays
    for ax, (name, key, limit) in zip(axes, (("TTFT", "ttft", a.ttft_limit), ("TPOT", "tpot", a.tpot_limit), ("E2E", "e2e", a.e2e_limit))):
        smallest = np.inf
        for label, sim in runs:
            values = getattr(sim, key)
            v = np.sort(values[np.isfinite(values)])
            if v.size:
                ax.step(v, np.arange(1, v.size + 1) / inst.n_requests, where="post", label=label if len(runs) > 1 else None)
                smallest = min(smallest, float(v[0]))
        lim = limit[np.isfinite(limit)]
        if lim.size:
            ax.axvline(float(np.median(lim)), color="grey", ls="--", lw=0.8, label="median SLO")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xscale("log") if 0 < smallest < np.inf else None
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("share of requests")
        ax.set_ylim(0, 1.02)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=110)


def write_all(out: Path, inst: Instance, sim: SimResult, placement: Placement, arrivals: NDArray[np.float64], extra: dict[str, Any]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    data = summary(inst, sim, placement, arrivals, extra)
    write_requests(out / "requests.csv", inst, sim, placement, arrivals)
    write_json(out / "summary.json", data)
    plot_cdfs(out / "latency_cdf.png", inst, [(placement.policy, sim)], f"{inst.name}: {placement.policy}, attainment {data['slo_attainment']:.1%}")
    return data
