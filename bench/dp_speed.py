"""Per-request speed of ``dp`` against the paper's ``dp-grid`` and ``brute``.

A benchmark, not a test: run it as ``python -m splitllm.bench.dp_speed``. Request sets
on a 34-block model (embed + 32 layers + head): the paper's setting (one latency SLO,
ample client memory) with identical and with +-30% varied layer costs, and the hard
case (TTFT and TPOT SLOs, varied layer costs, client memory binding), where every
binding limit is one more grid axis for ``dp-grid``. For every request it times
``dp``; ``dp-grid`` (the paper's single pass, ``bound=False``) at each grid step on the
first ``--grid-requests`` requests, and counts how often the grid finds dp's optimum;
``brute`` on a 16-block version of the same requests. Prints a Markdown table of median
and mean milliseconds per request, and the ratio the issue asks for: dp against dp-grid
at the coarsest step that finds the same optimum on 99% of requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splitllm.bench.synthetic import random_instance
from splitllm.errors import SplitLLMError
from splitllm.instance import Arrays
from splitllm.solvers import brute, dp, dp_grid
from splitllm.solvers.per_request import RequestOutcome


@dataclass
class Timing:
    solver: str
    times_ms: list[float]
    same_optimum: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times_ms)


def timed(solve_one: Callable[[Arrays, int], RequestOutcome], arrays: Arrays, rows: range) -> tuple[list[float], list[RequestOutcome]]:
    times, outcomes = [], []
    for r in rows:
        start = time.perf_counter()
        outcomes.append(solve_one(arrays, r))
        times.append(1000 * (time.perf_counter() - start))
    return times, outcomes


def same(a: RequestOutcome, b: RequestOutcome) -> bool:
    """Both found nothing, or both found the same least work (relative 1e-9)."""
    if a.placement is None or b.placement is None:
        return a.placement is None and b.placement is None
    return abs(a.work - b.work) <= 1e-9 * max(abs(b.work), 1e-12)


def grid_request(arrays: Arrays, r: int, step: float) -> RequestOutcome:
    """The paper's single grid pass; a grid too large to allocate counts as no answer."""
    try:
        return dp_grid.solve_request(arrays, r, step, bound=False)
    except SplitLLMError:
        return RequestOutcome("unsolved", info={"refused": True})


def _progress(line: str) -> None:
    """Progress on stderr, so that stdout holds only the Markdown report."""
    print(f"dp_speed: {line}", file=sys.stderr, flush=True)


def scenario(name: str, args: argparse.Namespace, **shape: Any) -> list[str]:
    arrays = random_instance(args.seed, n_requests=args.requests, n_blocks=34, **shape).arrays
    _progress(f"{name}: dp on {args.requests} requests")
    exact_times, exact = timed(dp.solve_request, arrays, range(args.requests))
    rows = [Timing("dp", exact_times, args.requests)]
    n_grid = min(args.grid_requests, args.requests)
    for step in args.steps:
        _progress(f"{name}: dp-grid step {step:g} on {n_grid} requests")
        times, grid = timed(lambda a, r, s=step: grid_request(a, r, s), arrays, range(n_grid))
        refused = sum(g.info.get("refused", False) for g in grid)
        label = f"dp-grid step {step:g}" + (f" ({refused} refused: grid too large)" if refused else "")
        rows.append(Timing(label, times, sum(same(g, e) for g, e in zip(grid, exact))))
    _progress(f"{name}: brute on {args.brute_requests} requests")
    small = random_instance(args.seed, n_requests=args.brute_requests, n_blocks=16, **shape).arrays
    rows.append(Timing("brute (16 blocks)", timed(brute.brute_request, small, range(args.brute_requests))[0]))
    labels = sorted(o.info["labels"] for o in exact)
    lines = [
        f"### {name}",
        "",
        f"dp labels created per request: median {statistics.median(labels):.0f}, max {labels[-1]}; "
        f"{sum(o.status == 'infeasible' for o in exact)} of {args.requests} requests infeasible.",
        "",
        "| solver | requests | median ms | mean ms | same optimum as dp |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        count = len(row.times_ms)
        share = "" if row.same_optimum is None else f"{row.same_optimum}/{count} ({100 * row.same_optimum / count:.1f}%)"
        lines.append(f"| {row.solver} | {count} | {row.median:.2f} | {row.mean:.2f} | {share} |")
    good = [row for row in rows[1:-1] if row.same_optimum is not None and row.same_optimum >= 0.99 * len(row.times_ms)]
    if good:
        coarsest = good[0]
        lines.append(
            f"\ndp vs {coarsest.solver} (coarsest step with the same optimum on >= 99%): "
            f"{coarsest.median / rows[0].median:.1f}x faster by median, {coarsest.mean / rows[0].mean:.1f}x by mean."
        )
    else:
        best = max(rows[1:-1], key=lambda row: row.same_optimum or 0)
        lines.append(
            f"\nNo grid step tried finds dp's optimum on 99% of requests; the best, {best.solver} "
            f"({best.same_optimum}/{len(best.times_ms)}), takes {best.mean / rows[0].mean:.1f}x dp's mean time."
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--grid-requests", type=int, default=200, help="dp-grid runs on this many of the requests")
    parser.add_argument("--brute-requests", type=int, default=100)
    parser.add_argument("--steps", type=lambda s: [float(x) for x in s.split(",")], default=[0.05, 0.02, 0.01, 0.005, 0.002, 0.001])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"# dp speed: 34-block model, seed {args.seed}\n")
    scenarios = {
        "paper setting: one TTFT SLO, ample memory, identical layers": dict(vary_layers=0.0, memory_fraction=100.0, slos=("ttft_s",)),
        "one TTFT SLO, ample memory, layer costs varied +-30%": dict(vary_layers=0.3, memory_fraction=100.0, slos=("ttft_s",)),
        "TTFT and TPOT SLOs, layer costs varied +-30%, client memory binding": dict(
            vary_layers=0.3, memory_fraction=0.3, slos=("ttft_s", "tpot_s")
        ),
    }
    for name, shape in scenarios.items():
        print("\n".join(scenario(name, args, **shape)), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
