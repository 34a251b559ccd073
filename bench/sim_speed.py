"""Speed of the serving simulator alone, policy time set aside.

A benchmark, not a test: run it as ``python -m splitllm.bench.sim_speed``. It builds the
workload as ``splitllm simulate`` does (the instance, ``--trace``, ``--requests``, the
engine's batched costs and KV capacity), places every request once per ``--policy``
(optionally cached in an ``.npz``, so a rerun skips the solvers), then times
``simulate`` alone (median of ``--repeat`` runs) and prints a Markdown table: requests,
iterations, heap events, server items, wall seconds, simulated seconds per wall second,
items per wall second. ``--compare FILE.py`` also times the ``simulate`` of another
module (e.g. an older copy of the simulator) on the same placements, checks that both
give the same results, and adds its rows.

Example::

    python -m splitllm.bench.sim_speed --trace azure-conv --requests 2000 --policy dp
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.batched import server_costs
from splitllm.batched.engines import kv_capacity
from splitllm.instance import Instance, example_path, load_instance
from splitllm.serving.policies import Placement, place
from splitllm.serving.simulator import SimConfig, SimResult, simulate
from splitllm.serving.workload import instance_arrivals, trace_workload

Simulate = Callable[..., SimResult]


def _log(line: str) -> None:
    print(f"sim_speed: {line}", file=sys.stderr, flush=True)


def placements(inst: Instance, policy: str, engine: str, kv: float, cache: Path | None) -> Placement:
    """``policy``'s placements, from ``cache`` when it holds them for this many requests."""
    key = f"{policy.replace(':', '_')}.{inst.n_requests}"
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if f"{key}.x" in data and data[f"{key}.x"].shape == (inst.n_requests, inst.n_blocks):
                _log(f"{policy}: placements from {cache}")
                n = inst.n_requests
                return Placement(policy, data[f"{key}.x"], data[f"{key}.sent"], float(data[f"{key}.wall"]), np.zeros(n))
    _log(f"{policy}: placing {inst.n_requests} requests")
    p = place(inst, policy, engine=engine, kv_capacity_bytes=kv)
    if cache is not None:
        old = dict(np.load(cache)) if cache.is_file() else {}
        old.update({f"{key}.x": p.placements, f"{key}.sent": p.sent, f"{key}.wall": np.float64(p.wall_s)})
        np.savez_compressed(cache, **old)
    return p


def timed(sim: Simulate, inst: Instance, p: Placement, cfg: SimConfig, arrivals: np.ndarray, repeat: int) -> tuple[SimResult, float]:
    """The result and the median wall seconds of ``repeat`` runs (with a progress callback, as the CLI)."""
    walls, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = sim(inst, p.placements, cfg, arrivals=arrivals, sent=p.sent, progress=lambda k: None)
        walls.append(time.perf_counter() - started)
    assert out is not None
    return out, statistics.median(walls)


def items(inst: Instance, p: Placement, out: SimResult) -> int:
    """Server items run: tokens a request ran through its server runs, counted per run and step."""
    x = p.placements
    runs = (x[:, 1:] & ~x[:, :-1]).sum(axis=1) + x[:, 0]
    steps = inst.arrays.output_tokens  # the prefill and output - 1 decode steps
    return int((runs * steps)[out.served].sum())


def same(a: SimResult, b: SimResult, rtol: float = 1e-9) -> bool:
    """The same requests served and dropped, the same iterations and tokens, and TTFT, TPOT,
    E2E and the makespan equal to ``rtol`` (the iteration pricers may round differently)."""
    flags = all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("served", "dropped"))
    close = all(np.allclose(getattr(a, k), getattr(b, k), rtol=rtol, atol=0.0, equal_nan=True) for k in ("ttft", "tpot", "e2e"))
    counts = (a.iterations, a.tokens) == (b.iterations, b.tokens)
    return flags and close and counts and bool(np.isclose(a.makespan_s, b.makespan_s, rtol=rtol, atol=0.0))


def max_rel_diff(a: SimResult, b: SimResult) -> float:
    """The largest relative difference of TTFT, TPOT and E2E between two results."""
    worst = 0.0
    for k in ("ttft", "tpot", "e2e"):
        x, y = getattr(a, k), getattr(b, k)
        both = np.isfinite(x) & np.isfinite(y) & (y != 0)
        if both.any():
            worst = max(worst, float(np.max(np.abs(x[both] / y[both] - 1))))
    return worst


def load_simulate(path: Path) -> Simulate:
    spec = importlib.util.spec_from_file_location("sim_speed_compare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.simulate  # type: ignore[no-any-return]


def row(label: str, policy: str, inst: Instance, out: SimResult, n_items: int, wall: float) -> str:
    return (f"| {label} | {policy} | {inst.n_requests:,} | {out.iterations:,} | {out.events:,} | {n_items:,} | "
            f"{wall:.2f} | {out.makespan_s / wall:,.0f} | {n_items / wall:,.0f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instance", type=Path, default=Path(example_path("llama2-7b")))
    ap.add_argument("--trace", default="azure-conv")
    ap.add_argument("--requests", type=int, default=None, help="the first N requests (default: the whole trace)")
    ap.add_argument("--policy", action="append", default=None, help="repeatable (default: all-server, greedy, dp)")
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--repeat", type=int, default=3, help="runs per simulation; the median is reported")
    ap.add_argument("--cache", type=Path, default=None, help="an .npz holding the placements, by policy and number of requests (read and written; one file per instance and trace)")
    ap.add_argument("--compare", type=Path, default=None, help="a .py file whose simulate() is timed too")
    ap.add_argument("--compare-repeat", type=int, default=1)
    args = ap.parse_args(argv)
    base = load_instance(args.instance)
    costs = server_costs(base, args.engine)
    cfg = SimConfig(costs, args.engine, kv_capacity_bytes=kv_capacity(base, costs.memory_bytes, costs.weight_bytes, None))
    if args.trace:
        inst, arrivals = trace_workload(base, args.trace, n=args.requests)
    else:
        inst, arrivals = base, instance_arrivals(base)
    other = load_simulate(args.compare) if args.compare else None
    lines = ["| simulator | policy | requests | iterations | heap events | server items | sim wall (s) | simulated s / wall s | items / wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for policy in args.policy or ["all-server", "greedy", "dp"]:
        p = placements(inst, policy, args.engine, cfg.kv_capacity_bytes, args.cache)
        results: list[tuple[str, Any]] = []
        if other is not None:
            _log(f"{policy}: --compare simulator")
            results.append(("compare", timed(other, inst, p, cfg, arrivals, args.compare_repeat)))
        _log(f"{policy}: this simulator")
        results.append(("this", timed(simulate, inst, p, cfg, arrivals, args.repeat)))
        for label, (out, wall) in results:
            lines.append(row(label, policy, inst, out, items(inst, p, out), wall))
        if other is not None:
            a, b = results[0][1][0], results[1][1][0]
            notes.append(f"{policy}: {'same results' if same(a, b) else 'RESULTS DIFFER'} "
                         f"(largest relative difference of TTFT, TPOT, E2E: {max_rel_diff(a, b):.1e})")
    print("\n".join(lines + [""] + notes))


if __name__ == "__main__":
    main()
