"""The discrete-event, iteration-level simulation of one server and its clients.

Events sit in one heap (``heapq``) ordered by (time, sequence): request arrivals, the end
of a request's own time (client compute and crossings, see :mod:`.route`), and the end
of a server iteration. The server runs iterations back to back while it has ready items;
an iteration's time is :func:`splitllm.batched.iteration_time` over the items chosen at
its start (:mod:`.engines`). An item that becomes ready while an iteration runs waits for
the next one: the synchronisation price of a split. Every event at one instant is
handled before the server decides whether to start an iteration, so the schedule does
not depend on the order of simultaneous events.

KV: a request that has server blocks reserves its whole server KV (its server blocks'
bytes per token x (prompt + output)) when its first server item is ready, in arrival
order (first come, first served: the queue's head blocks the rest), and frees it when its
last token is produced. A request whose KV can never fit is dropped.

Clients run only their own request (batch-1 costs); each request has its own link, and
its transfers never queue behind another request's.

Examples
--------
>>> import numpy as np
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.batched import AttentionModel, BatchedCosts
>>> from splitllm.profiles import Curve
>>> inst = load_instance(example_path("tiny"))
>>> flat = Curve.from_points([[1, 0.1], [2, 0.1]])
>>> att = AttentionModel(np.inf, np.inf, 0.0, 8, 8, 2)
>>> costs = BatchedCosts("toy", "toy", {k: flat for k in ("embed", "layer", "head")}, att)
>>> placements = np.ones((inst.n_requests, inst.n_blocks), dtype=bool)
>>> out = simulate(inst, placements, SimConfig(costs, kv_capacity_bytes=np.inf))
>>> out.iterations > 0 and bool(np.all(out.e2e >= out.ttft))
True
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import BatchedCosts, iteration_time
from splitllm.errors import InputError
from splitllm.instance import Instance
from splitllm.serving.engines import ENGINES
from splitllm.serving.route import Route, build_route

ARRIVE, RESUME, ITER_END = 0, 1, 2


@dataclass(frozen=True)
class SimConfig:
    """How the server runs.

    ``costs``: the server's batched tables (their overhead is the engine's);
    ``engine``: a key of :data:`~splitllm.serving.engines.ENGINES`; ``chunk``: prefill
    token budget per iteration (``None`` = whole prompts); ``kv_capacity_bytes``: KV
    cache size; ``warm``: every request starts at its first decode step (prompt done, KV
    in place).
    """

    costs: BatchedCosts
    engine: str = "vllm"
    chunk: int | None = None
    kv_capacity_bytes: float = float("inf")
    warm: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InputError("--engine", f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.chunk is not None and self.chunk < 1:
            raise InputError("--chunk", f"must be an integer >= 1, got {self.chunk}")
        if not self.kv_capacity_bytes > 0:
            raise InputError("kv_capacity_bytes", f"must be > 0, got {self.kv_capacity_bytes}")


@dataclass
class SimResult:
    """Per request (NaN where not measured): ``ttft``, ``tpot``, ``e2e`` seconds from arrival;
    ``served`` False for requests not sent or dropped. Totals of the server."""

    ttft: NDArray[np.float64]
    tpot: NDArray[np.float64]
    e2e: NDArray[np.float64]
    served: NDArray[np.bool_]
    dropped: NDArray[np.bool_]
    iterations: int = 0
    busy_s: float = 0.0
    tokens: int = 0
    peak_kv_bytes: float = 0.0
    makespan_s: float = 0.0
    events: int = 0
    wall_s: float = 0.0
    timeline: list[tuple[float, float, list[tuple[int, int, int]]]] = field(default_factory=list)


@dataclass
class _Req:
    """Mutable state of one request in flight."""

    route: Route
    prompt: int
    output: int
    kv: float
    step: int = 0  # 0 = prefill, t = decode step t
    pos: int = 0  # next server item of the phase
    done_tokens: int = 0  # prefill tokens done by the current item (chunked prefill)
    admitted: bool = False
    first_at: float = float("nan")
    last_at: float = float("nan")


class _Server:
    """The event loop. One instance per simulation."""

    def __init__(self, inst: Instance, placements: NDArray[np.bool_], cfg: SimConfig, record: bool) -> None:
        self.cfg, self.rules = cfg, ENGINES[cfg.engine]
        self.kinds = tuple(b.kind for b in inst.model.blocks)
        a = inst.arrays
        self.reqs = [
            _Req(build_route(a, r, placements[r]), int(a.prompt_tokens[r]), int(a.output_tokens[r]),
                 float(a.kv[r][placements[r]].sum()))
            for r in range(inst.n_requests)
        ]  # fmt: skip
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.ready: list[int] = []
        self.waiting: deque[int] = deque()
        self.kv_used = 0.0
        self.busy = False
        self.running: list[tuple[int, int]] = []  # (request, tokens) of the running iteration
        self.record = record
        self.stats = SimResult(*(np.full(inst.n_requests, np.nan) for _ in range(3)),
                               served=np.zeros(inst.n_requests, bool), dropped=np.zeros(inst.n_requests, bool))  # fmt: skip

    # -- events -------------------------------------------------------------------------
    def push(self, t: float, kind: int, r: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, r))

    def arrive(self, r: int, now: float) -> None:
        q = self.reqs[r]
        if q.route.uses_server and q.kv > self.cfg.kv_capacity_bytes:
            self.stats.dropped[r] = True
            return
        if self.cfg.warm:
            q.step, q.first_at = 1, now + q.route.decode_stream
            if q.output <= 1:
                self.finish(r, now)
                return
        self.wait(r, now, self.delays(q)[0])

    def delays(self, q: _Req) -> tuple[float, ...]:
        return q.route.prefill if q.step == 0 else q.route.decode

    def wait(self, r: int, now: float, d: float) -> None:
        """The request is on its own for ``d`` seconds, then goes on (at once when ``d`` is 0)."""
        if d > 0:
            self.push(now + d, RESUME, r)
        else:
            self.go_on(r, now)

    def go_on(self, r: int, now: float) -> None:
        """After delay ``pos`` of the phase: the next server item is ready, or the phase ends."""
        q = self.reqs[r]
        while True:
            if q.pos < len(q.route.segments):
                if q.admitted:
                    self.ready.append(r)
                else:
                    self.waiting.append(r)
                return
            stream = q.route.prefill_stream if q.step == 0 else q.route.decode_stream
            if q.step == 0:
                q.first_at = now + stream
            q.last_at = now + stream
            if q.step >= q.output - 1:
                self.finish(r, now)
                return
            q.step, q.pos = q.step + 1, 0
            d = q.route.decode[0]
            if d > 0:
                self.push(now + d, RESUME, r)
                return

    def finish(self, r: int, now: float) -> None:
        q = self.reqs[r]
        if q.admitted:
            self.kv_used -= q.kv
            q.admitted = False
        self.stats.served[r] = True
        if np.isnan(q.last_at):
            q.last_at = q.first_at

    # -- the server -----------------------------------------------------------------------
    def admit(self) -> None:
        while self.waiting and self.kv_used + self.reqs[self.waiting[0]].kv <= self.cfg.kv_capacity_bytes:
            r = self.waiting.popleft()
            self.reqs[r].admitted = True
            self.kv_used += self.reqs[r].kv
            self.ready.append(r)
        self.stats.peak_kv_bytes = max(self.stats.peak_kv_bytes, self.kv_used)

    def choose(self) -> list[tuple[int, int]]:
        """(request, tokens) of the items of the next iteration, by the engine's rules."""
        prefills = [r for r in self.ready if self.reqs[r].step == 0]
        decodes = [r for r in self.ready if self.reqs[r].step > 0]
        budget = self.cfg.chunk
        if budget is None:
            if prefills and not self.rules.mixes:
                return [(r, self.reqs[r].prompt) for r in prefills]
            return [(r, 1) for r in decodes] + [(r, self.reqs[r].prompt) for r in prefills]
        chosen = [(r, 1) for r in decodes]
        left = budget - len(decodes)
        for r in prefills:
            if left <= 0:
                break
            n = min(left, self.reqs[r].prompt - self.reqs[r].done_tokens)
            chosen.append((r, n))
            left -= n
        return chosen

    def start(self, now: float) -> None:
        self.admit()
        if not self.ready:
            return
        items = self.choose()
        if not items:
            return
        taken = {r for r, _ in items}
        self.ready = [r for r in self.ready if r not in taken]
        needs = np.array([self.reqs[r].route.segments[self.reqs[r].pos] for r, _ in items])
        q = np.array([n for _, n in items], dtype=float)
        ctx = np.array([self._context(r) for r, _ in items], dtype=float)
        t = float(iteration_time(self.cfg.costs, self.kinds, needs, q, ctx))
        self.busy, self.running = True, items
        self.stats.iterations += 1
        self.stats.busy_s += t
        self.stats.tokens += int(q.sum())
        if self.record:
            self.stats.timeline.append((now, now + t, [(r, self.reqs[r].pos, n) for r, n in items]))
        self.push(now + t, ITER_END, -1)

    def _context(self, r: int) -> int:
        q = self.reqs[r]
        return q.done_tokens if q.step == 0 else q.prompt + q.step - 1

    def end_iteration(self, now: float) -> None:
        self.busy = False
        for r, n in self.running:
            q = self.reqs[r]
            if q.step == 0:
                q.done_tokens += n
                if q.done_tokens < q.prompt:  # more chunks of this prompt
                    self.ready.append(r)
                    continue
                q.done_tokens = 0
            q.pos += 1
            self.wait(r, now, self.delays(q)[q.pos])
        self.running = []

    def run(self, arrivals: NDArray[np.float64], sent: NDArray[np.bool_], progress: Callable[[int], None] | None) -> SimResult:
        for r in np.nonzero(sent)[0]:
            self.push(float(arrivals[r]), ARRIVE, int(r))
        now, done = 0.0, 0
        while self.heap:
            now = self.heap[0][0]
            while self.heap and self.heap[0][0] == now:
                _, _, kind, r = heapq.heappop(self.heap)
                self.stats.events += 1
                if kind == ARRIVE:
                    self.arrive(r, now)
                elif kind == RESUME:
                    self.go_on(r, now)
                else:
                    self.end_iteration(now)
            if not self.busy:
                self.start(now)
            if progress is not None:
                served = int(self.stats.served.sum() + self.stats.dropped.sum())
                if served > done:
                    progress(served - done)
                    done = served
        self.stats.makespan_s = now
        return self.stats


def simulate(
    inst: Instance,
    placements: NDArray[np.bool_],
    cfg: SimConfig,
    arrivals: NDArray[np.float64] | None = None,
    sent: NDArray[np.bool_] | None = None,
    progress: Callable[[int], None] | None = None,
    record: bool = False,
) -> SimResult:
    """Simulate ``inst``'s requests (``placements``: requests x blocks, ``True`` = server).

    Parameters
    ----------
    arrivals : seconds from the start at which each request arrives (default: all at 0).
    sent : requests that are sent at all (default: all); the others are not served.
    progress : called with the number of requests finished since its last call.
    record : keep every iteration's (start, end, [(request, item, tokens)]) in ``timeline``.

    Returns
    -------
    SimResult, with TTFT (first token at the client), E2E (last token at the client) and
    TPOT = (E2E - TTFT) / (output - 1), each from the request's arrival.
    """
    n = inst.n_requests
    arrivals = np.zeros(n) if arrivals is None else np.asarray(arrivals, dtype=float)
    sent = np.ones(n, dtype=bool) if sent is None else np.asarray(sent, dtype=bool)
    started = time.perf_counter()
    server = _Server(inst, np.asarray(placements, dtype=bool), cfg, record)
    out = server.run(arrivals, sent, progress)
    first = np.array([q.first_at for q in server.reqs])
    last = np.array([q.last_at for q in server.reqs])
    ok = out.served
    out.ttft = np.where(ok, first - arrivals, np.nan)
    if cfg.warm:
        out.ttft[:] = np.nan
    out.e2e = np.where(ok, last - arrivals, np.nan)
    steps = inst.arrays.output_tokens - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out.tpot = np.where(ok & (steps > 0), (last - first) / np.maximum(steps, 1), np.nan)
    out.wall_s = time.perf_counter() - started
    return out
