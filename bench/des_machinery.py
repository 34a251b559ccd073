"""A plain ``heapq`` event loop against SimPy, on the same toy serving process.

What it measures: the cost per event of the discrete-event machinery alone, the choice
behind :mod:`splitllm.serving.simulator` (one ``heapq`` of (time, sequence, kind, id)
events). Why: a well-kept library (SimPy) would be the obvious alternative; this puts a
figure on what it would cost per event on the kind of process we simulate.

The toy, written twice with the same semantics: ``R`` requests start at t=0, each does
``T`` tokens; a token is a client delay (exponential, mean 20 ms, fixed per (request,
token) by a seeded numpy generator) then one server item. The server runs iterations
back to back while items are ready; an iteration takes ``a + b * items`` seconds over the
items ready at its start; an item ready during an iteration waits for the next one; each
item's request goes on at the iteration's end. Every event of an instant is handled before
the server decides whether to start an iteration. Both versions must give the same
per-request finish times (to 1e-9 s) and the same iteration count, or nothing is timed.

Run (needs the ``bench`` extra, which brings SimPy)::

    python -m splitllm.bench.des_machinery --out bench/results/des_machinery.md
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import simpy
except ImportError:  # the bench extra is optional
    simpy = None

READY, ITER_END = 0, 1


@dataclass(frozen=True)
class Toy:
    """One toy workload: ``delays[r][k]`` is request r's client delay before token k."""

    delays: list[list[float]]
    a: float = 0.004
    b: float = 0.0005

    @property
    def requests(self) -> int:
        return len(self.delays)

    @property
    def tokens(self) -> int:
        return len(self.delays[0])


@dataclass(frozen=True)
class Run:
    finish: list[float]
    iterations: int
    events: int


def make_toy(requests: int, tokens: int, seed: int = 0, mean_delay: float = 0.020) -> Toy:
    delays = np.random.default_rng(seed).exponential(mean_delay, size=(requests, tokens))
    assert (delays > 0).all()
    return Toy(delays.tolist())


def run_heap(toy: Toy) -> Run:
    """The toy on one heap of (time, seq, kind, id) events, as our simulator does it."""
    delays, a, b, n_tokens = toy.delays, toy.a, toy.b, toy.tokens
    heap = [(d[0], r, READY, r) for r, d in enumerate(delays)]
    heapq.heapify(heap)
    seq = len(heap)
    push, pop = heapq.heappush, heapq.heappop
    token = [0] * toy.requests
    finish = [0.0] * toy.requests
    ready: list[int] = []
    batch: list[int] = []
    busy = False
    iterations = events = 0
    while heap:
        now = heap[0][0]
        while heap and heap[0][0] == now:  # every event of this instant first
            _, _, kind, i = pop(heap)
            events += 1
            if kind == READY:
                ready.append(i)
                continue
            busy = False
            for r in batch:
                k = token[r] + 1
                token[r] = k
                if k == n_tokens:
                    finish[r] = now
                else:
                    push(heap, (now + delays[r][k], seq, READY, r))
                    seq += 1
        if not busy and ready:
            batch, ready = ready, []
            busy = True
            push(heap, (now + (a + b * len(batch)), seq, ITER_END, iterations))
            seq += 1
            iterations += 1
    return Run(finish, iterations, events)


def run_simpy(toy: Toy, env: simpy.Environment | None = None) -> Run:
    """The same toy on SimPy: one generator process per request and one for the server."""
    env = env if env is not None else simpy.Environment()
    delays, a, b = toy.delays, toy.a, toy.b
    finish = [0.0] * toy.requests
    ready: list[simpy.Event] = []
    state = {"wake": None, "iterations": 0}

    def client(r: int) -> Generator[simpy.Event, None, None]:
        for d in delays[r]:
            yield env.timeout(d)
            done = env.event()
            ready.append(done)
            wake = state["wake"]
            if wake is not None and not wake.triggered:
                wake.succeed()
            yield done
        finish[r] = env.now

    def server() -> Generator[simpy.Event, None, None]:
        while True:
            if not ready:
                state["wake"] = env.event()
                yield state["wake"]
                state["wake"] = None
            yield env.timeout(0)  # scheduled after every event already due at this instant
            batch = ready[:]
            ready.clear()
            state["iterations"] += 1
            yield env.timeout(a + b * len(batch))
            for done in batch:
                done.succeed()

    for r in range(toy.requests):
        env.process(client(r))
    env.process(server())
    env.run()
    iterations = state["iterations"]
    return Run(finish, iterations, toy.requests * toy.tokens + iterations)


def check_same(heap_run: Run, simpy_run: Run) -> float:
    """The largest finish-time difference; raises if the two runs disagree."""
    diff = max(abs(x - y) for x, y in zip(heap_run.finish, simpy_run.finish))
    if diff > 1e-9 or heap_run.iterations != simpy_run.iterations:
        raise AssertionError(f"heap and SimPy disagree: finish diff {diff:.3g} s, "
                             f"iterations {heap_run.iterations} vs {simpy_run.iterations}")
    return diff


def simpy_scheduled(toy: Toy) -> int:
    """How many events SimPy itself schedules for the toy (an untimed, counted run)."""

    class Counting(simpy.Environment):
        scheduled = 0

        def schedule(self, event: simpy.Event, priority: int = 1, delay: float = 0) -> None:
            self.scheduled += 1
            super().schedule(event, priority, delay)

    env = Counting()
    run_simpy(toy, env)
    return env.scheduled


def time_runs(toy: Toy, repeat: int) -> dict[str, list[float]]:
    """Wall seconds of each implementation, ``repeat`` runs, interleaved."""
    impls: dict[str, Callable[[Toy], Run]] = {"heapq": run_heap, "SimPy": run_simpy}
    walls: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeat):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            fn(toy)
            walls[name].append(time.perf_counter() - t0)
    return walls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=25000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    if simpy is None:
        print('des_machinery: needs SimPy, from the bench extra: pip install -e ".[bench]"', file=sys.stderr)
        return 2

    toy = make_toy(args.requests, args.tokens, args.seed)
    heap_run, simpy_run = run_heap(toy), run_simpy(toy)
    diff = check_same(heap_run, simpy_run)
    scheduled = simpy_scheduled(toy)
    walls = time_runs(toy, args.repeat)
    events = heap_run.events
    med = {name: statistics.median(w) for name, w in walls.items()}
    lines = [
        f"# DES machinery: heapq vs SimPy, {toy.requests} requests x {toy.tokens} tokens",
        "",
        f"{events:,} events ({toy.requests * toy.tokens:,} item-ready, {heap_run.iterations:,} iteration ends); "
        f"SimPy itself schedules {scheduled:,} ({scheduled / events:.2f} per event). "
        f"Same finish times (max diff {diff:.1e} s) and iterations. Median of {args.repeat} interleaved runs.",
        "",
        "| machinery | wall s | events / s | µs / event | vs heapq |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in walls:
        lines.append(f"| {name} | {med[name]:.2f} | {events / med[name]:,.0f} | "
                     f"{1e6 * med[name] / events:.2f} | {med[name] / med['heapq']:.1f}x |")
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.out is not None:
        args.out.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
