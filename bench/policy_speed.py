"""Wall time of the per-request placement policies (``greedy``, ``dp``) on a trace workload.

A benchmark, not a test: run it as ``python -m splitllm.bench.policy_speed``. It builds
the workload as ``splitllm simulate --trace`` does (the instance's model, clients and
SLOs; the trace's requests) and times :func:`splitllm.serving.policies.place` per
policy: the batched solvers. With ``--before`` it also times, on the same problem, the
request-by-request path they replace (one solver call per distinct request, then the
same evaluator check) and compares the answers: greedy must give the same placements,
dp the same least work per request (placements of equal work may differ: counted).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from splitllm.instance import Instance, example_path, load_instance
from splitllm.registry import verify
from splitllm.result import SolveResult
from splitllm.serving.policies import per_request_problem, place
from splitllm.serving.workload import trace_workload
from splitllm.solvers import dp
from splitllm.solvers.baselines import greedy_request
from splitllm.identical import unique_requests
from splitllm.solvers.per_request import RequestSolver, solve_independently

#: The request-by-request solver each batched policy replaces.
PER_REQUEST: dict[str, RequestSolver] = {"greedy": greedy_request, "dp": dp.solve_request}


@dataclass
class Row:
    policy: str
    code: str
    wall_s: float
    placements: np.ndarray
    sent: np.ndarray
    answers: str = ""


def per_request(inst: Instance, policy: str) -> tuple[float, SolveResult]:
    """The request-by-request path: wall seconds and its verified result."""
    uncoupled = per_request_problem(inst)
    started = time.perf_counter()
    result = verify(uncoupled, solve_independently(uncoupled, policy, PER_REQUEST[policy]))
    return time.perf_counter() - started, result


def compare(policy: str, inst: Instance, fast: Row, slow: Row) -> str:
    """How the batched answers compare with the per-request ones."""
    if not np.array_equal(fast.sent, slow.sent):
        return f"DIFFERENT admitted sets ({int((fast.sent != slow.sent).sum())} requests)"
    differ = int(np.any(fast.placements != slow.placements, axis=1)[fast.sent].sum())
    if policy != "dp":
        return "same placements" if differ == 0 else f"DIFFERENT placements ({differ} requests)"
    work = inst.arrays.work
    fast_work = np.where(fast.placements, work, 0.0).sum(axis=1)[fast.sent]
    slow_work = np.where(slow.placements, work, 0.0).sum(axis=1)[slow.sent]
    if not np.allclose(fast_work, slow_work, rtol=1e-9, atol=1e-12):
        return "DIFFERENT least work"
    return f"same least work per request; {differ} placements differ (ties of equal work)"


def _progress(line: str) -> None:
    print(f"policy_speed: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", default=str(example_path("llama2-7b")), help="instance file (default: the llama2-7b example)")
    parser.add_argument("--trace", default="azure-conv", help="trace of the requests (as splitllm simulate --trace)")
    parser.add_argument("--requests", type=int, default=None, help="the first N requests of the trace (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the client draw")
    parser.add_argument("--policies", default="greedy,dp", help="comma-separated: greedy, dp")
    parser.add_argument("--before", action="store_true", help="also time the request-by-request path and compare answers")
    args = parser.parse_args(argv)
    _progress(f"building the {args.trace} workload")
    inst, _ = trace_workload(load_instance(args.instance), args.trace, n=args.requests, seed=args.seed)
    distinct = len(unique_requests(inst.arrays)[0])
    rows: list[Row] = []
    for policy in args.policies.split(","):
        _progress(f"{policy}: batched")
        placed = place(inst, policy)
        fast = Row(policy, "batched", placed.wall_s, placed.placements, placed.sent)
        if args.before:
            _progress(f"{policy}: request by request")
            wall, result = per_request(inst, policy)
            assert result.placements is not None and result.admitted is not None, result.message
            slow = Row(policy, "per request", wall, np.asarray(result.placements, bool), np.asarray(result.admitted, bool))
            fast.answers = compare(policy, inst, fast, slow)
            rows.append(slow)
        rows.append(fast)
    print(f"# Policy speed: {inst.model.name or args.instance}, {args.trace}, {inst.n_requests} requests ({distinct} distinct)\n")
    print("| policy | code | requests | distinct | wall s | ms per distinct request | admitted | answers vs per request |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row.policy} | {row.code} | {inst.n_requests} | {distinct} | {row.wall_s:.2f} | "
              f"{1000 * row.wall_s / distinct:.3f} | {int(row.sent.sum())} | {row.answers} |")


if __name__ == "__main__":
    main()
