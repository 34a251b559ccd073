"""The discrete-event, iteration-level simulation of one server and its clients.

Events sit in one heap (``heapq``) ordered by (time, sequence): the end of a request's
own time (client compute and crossings, see :mod:`.route`) and the end of a server
iteration; arrivals come from a list sorted by time (ties in request order) and go
before every other event of their instant. The server runs iterations back to back while
it has ready items; an iteration's time is :func:`splitllm.batched.iteration_time` over
the items chosen at its start (:mod:`.engines`), computed by an
:class:`~splitllm.batched.IterationPricer` prepared once per simulation. An item that
becomes ready while an iteration runs waits for the next one: the synchronisation price
of a split. Every event at one instant is handled before the server decides whether to
start an iteration; simultaneous events are handled in the order they were scheduled.

A request's route (:func:`.route.build_route`: its delays and server items, each item a
run of blocks ``(lo, hi)``) and its KV are built from its placement when it arrives.

KV (the engine's rule and constants, its row of :data:`splitllm.batched.engines.ENGINES`; a
request caches only its server blocks'):

* ``tensorrt-llm``, reservation: a request that has server blocks reserves its whole
  server KV (its server blocks' bytes per token x (prompt + output)) when its first server
  item is ready, in arrival order (first come, first served: the queue's head blocks the
  rest), and frees it when its last token is produced.
* ``vllm``, paged: blocks of ``block`` (16) tokens, each costing ``block`` x the request's
  own server KV bytes per token. A waiting request is admitted (arrival order: the order in which
  requests first became ready for the server) when its prompt's blocks (prompt + tokens
  already generated, after a preemption) fit in the free bytes less a ``watermark`` (1%) of the
  capacity, within ``max_batched_tokens`` (4096) prompt tokens per iteration (without
  ``chunk``; a longer prompt goes alone) and ``max_seqs`` (256) running requests. A decode
  step runs (its first server item is scheduled) only while at least one block of its
  request's size is free, whether or not it needs one (vLLM 0.4's ``can_append_slot``),
  and takes a new block when its token crosses a block boundary; when none is free, the
  latest-arrived admitted request not yet scheduled in the iteration is preempted (or the
  request itself, when it is that one): its blocks are freed, it waits again at its
  arrival place, and once re-admitted re-runs its whole prefill phase (client runs and
  crossings included, the prompt's upload excepted) over prompt + generated tokens, which
  yields its next token. Requests are walked in arrival order, as vLLM walks its running
  queue.

This is the one model of the engines' schedulers: the fidelity comparison
(:func:`splitllm.bench.fidelity.row_schedule`) runs it on identical requests all on the
server, and times what it records (``record=True``: each iteration's priced items).

A request whose KV can never fit is dropped: reserved, its whole KV beyond the capacity;
paged, its prompt + output - 1 tokens' blocks beyond the capacity less the watermark, or
the blocks of its prompt + output - 2 tokens and one more (its last decode step's free
block) beyond the capacity.

Clients run only their own request (batch-1 costs); by default each request has its own
device and link, and its client work and transfers never queue behind another request's.
With ``SimConfig(shared_clients=True)`` the requests that name one client share it: each
stretch of a request's own work (client compute and the crossings around it, as
:mod:`.route` merges them) waits for the client's earlier stretches, first come, first
served, compute and link as one queue; the first token's trip down is not queued.

Online placement: ``simulate(..., placer=...)`` takes an :class:`OnlinePlacer`, whose
``place(now, arriving, in_flight, placements)`` is called once per instant at which
requests arrive, after that instant's other events, with every request arriving then (in
request order), the requests in flight (arrived earlier, sent, not finished, those
waiting for KV included; in arrival order) and the simulation's placements (a copy of
those given). It writes the arriving requests' rows and returns which of them are sent;
their routes and KV come from those rows. A request it does not send is not served.
Without a placer the placements are fixed and arrivals go first at their instant, as
above (the two orders differ only when an arrival coincides exactly with another event).

Speed: on the Azure conversation hour (19,366 requests, Llama-2-7B on an A100, vLLM) about
280-600 simulated seconds per wall second on one core (6 s all on the server, 15 s with
split placements of two server runs per token); ``python -m splitllm.bench.sim_speed``.

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

An online placer that sends every request all on the server gives the same run:

>>> class AllServer:
...     def place(self, now, arriving, in_flight, placements):
...         placements[arriving] = True
...         return np.ones(len(arriving), dtype=bool)
>>> online = simulate(inst, np.zeros_like(placements), SimConfig(costs), placer=AllServer())
>>> bool(np.array_equal(online.e2e, out.e2e)) and bool(online.placements.all())
True
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import BatchedCosts, IterationPricer
from splitllm.errors import InputError
from splitllm.instance import Instance
from splitllm.batched.engines import Engine, activation_bytes_per_token, get_engine, kv_capacity
from splitllm.instances.models import get_shape
from splitllm.serving.route import Route, build_route


@dataclass(frozen=True)
class SimConfig:
    """How the server runs.

    ``costs``: the server's batched tables (their overhead is the engine's);
    ``engine``: a key of :data:`~splitllm.batched.engines.ENGINES` (or a row of its own,
    :class:`~splitllm.batched.engines.Engine`: its rules and constants); ``chunk``: prefill
    token budget per iteration (``None`` = whole prompts); ``kv_capacity_bytes``: KV
    cache size; ``warm``: every request starts at its first decode step (prompt done, KV
    in place); ``shared_clients``: the requests of one client share its device and link
    (one first-come-first-served queue for its compute and its crossings together), else
    each request has a device and link of its own.
    """

    costs: BatchedCosts
    engine: str | Engine = "vllm"
    chunk: int | None = None
    kv_capacity_bytes: float = float("inf")
    warm: bool = False
    shared_clients: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.engine, Engine):
            get_engine(self.engine)  # an unknown engine is refused here, listing the engines
        if self.chunk is not None and self.chunk < 1:
            raise InputError("--chunk", f"must be an integer >= 1, got {self.chunk}")
        if not self.kv_capacity_bytes > 0:
            raise InputError("kv_capacity_bytes", f"must be > 0, got {self.kv_capacity_bytes}")

    @property
    def rules(self) -> Engine:
        """The engine's row: its scheduling and KV rules, and their constants."""
        return self.engine if isinstance(self.engine, Engine) else get_engine(self.engine)


def server_kv_capacity(inst: Instance, costs: BatchedCosts, engine: str, gpu_memory: float | None = None) -> float:
    """KV bytes of the simulated server (:func:`~splitllm.batched.engines.kv_capacity`),
    with the activations of the server's model where its shape is known."""
    try:
        shape = get_shape(costs.model)
    except InputError:
        activation = None
    else:
        activation = activation_bytes_per_token(shape.hidden, shape.ffn)
    return kv_capacity(inst, costs, engine, gpu_memory, activation)


@dataclass
class SimResult:
    """Per request (NaN where not measured): ``ttft``, ``tpot``, ``e2e`` seconds from arrival;
    ``served`` False for requests not sent or dropped; ``queue``, seconds its first server
    item waited for an iteration (KV admission, the batch ahead of it). Totals of the server."""

    ttft: NDArray[np.float64]
    tpot: NDArray[np.float64]
    e2e: NDArray[np.float64]
    served: NDArray[np.bool_]
    dropped: NDArray[np.bool_]
    iterations: int = 0
    busy_s: float = 0.0
    tokens: int = 0
    peak_kv_bytes: float = 0.0
    preemptions: int = 0
    makespan_s: float = 0.0
    events: int = 0
    wall_s: float = 0.0
    timeline: list[tuple[float, float, list[tuple[int, int, int]]]] = field(default_factory=list)
    #: With ``record``: each iteration's priced items ``(lo, hi, new tokens, cached tokens)``, as in ``timeline``.
    priced: list[list[tuple[int, int, int, int]]] = field(default_factory=list)
    placements: NDArray[np.bool_] | None = None
    queue: NDArray[np.float64] | None = None


class OnlinePlacer(Protocol):
    """Places requests when they arrive, seeing the server's requests in flight."""

    def place(self, now: float, arriving: list[int], in_flight: list[int], placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Called once per arrival instant, after every other event at that instant (all the
        requests arriving then together, in request order).

        ``arriving``: the requests arriving now; ``in_flight``: requests that arrived
        earlier, were sent and are not finished (those waiting for KV admission
        included), in arrival order; ``placements``: the simulation's placements (read
        them for ``in_flight``). Returns one bool per ``arriving`` request: sent or not;
        writes the rows of ``placements`` of the requests it sends, in place (rows of
        requests not sent are ignored).
        """
        ...


@dataclass(slots=True)
class _Req:
    """Mutable state of one request in flight (its route flattened)."""

    spans: tuple[tuple[int, int], ...]
    prefill: tuple[float, ...]
    decode: tuple[float, ...]
    prefill_stream: float
    decode_stream: float
    prompt: int
    output: int
    kv: float  # reserved KV (reservation rule): server bytes per token x (prompt + output)
    block: float  # bytes of one KV block (paged rule): block tokens x server bytes per token
    step: int = 0  # the token the phase produces, less one: 0 = first prefill, t = decode step t
    pre: bool = True  # the phase is a prefill (the first, or a recompute over prompt + step tokens)
    ptok: int = 0  # tokens of the current prefill
    pos: int = 0  # next server item of the phase
    done_tokens: int = 0  # prefill tokens done by the current item (chunked prefill)
    admitted: bool = False
    held: int = 0  # KV blocks held (paged rule)
    restart: bool = False  # preempted while on its own: its pending event starts the recompute
    first_at: float = float("nan")
    last_at: float = float("nan")
    ready_at: float = float("nan")  # its first server item was first ready
    started_at: float = float("nan")  # the first iteration that ran an item of it began

    @classmethod
    def of(cls, route: Route, prompt: int, output: int, kv: float, block: float) -> _Req:
        return cls(route.spans, route.prefill, route.decode, route.prefill_stream, route.decode_stream, prompt, output, kv,
                   block, ptok=prompt)  # fmt: skip


def _starts_step(q: _Req) -> bool:
    """Whether the request's next item is a decode step's first server item (paged rule's checks)."""
    return not q.pre and q.pos == 0


def _blocks_to_add(q: _Req, block: int) -> int:
    """KV blocks of ``block`` tokens the decode step ``q`` starts must add (paged rule): 0 or 1."""
    return max(0, -(-(q.prompt + q.step) // block) - q.held)


class _Server:
    """The event loop. One instance per simulation."""

    def __init__(self, inst: Instance, placements: NDArray[np.bool_], cfg: SimConfig, record: bool,
                 placer: OnlinePlacer | None, charge_placer: bool = False) -> None:
        self.cfg, self.rules, self.placer, self.charge_placer = cfg, cfg.rules, placer, charge_placer
        self.price = IterationPricer(cfg.costs, tuple(b.kind for b in inst.model.blocks))
        self.arrays, self.placements = inst.arrays, placements
        self.prompt, self.output = inst.arrays.prompt_tokens.tolist(), inst.arrays.output_tokens.tolist()
        self.kv_tok = np.array([b.kv_bytes_per_token for b in inst.model.blocks], dtype=float)
        self.reqs: list[_Req | None] = [None] * inst.n_requests  # built when the request arrives
        self.in_flight: dict[int, None] = {}  # arrived, sent, not finished, in arrival order
        self.heap: list[tuple[float, int, int]] = []  # (time, sequence, request; -1 = the iteration's end)
        self.seq = itertools.count()
        self.ready: list[int] = []
        self.waiting: deque[int] = deque()  # by rank
        self.rank = [-1] * inst.n_requests  # arrival order: when the request first waited for the server
        self.ranks = itertools.count()
        self.kv_used = 0.0
        self.paged = self.rules.paged
        self.run_set: list[int] = []  # paged: the admitted requests, by rank
        self.mark = self.rules.watermark * cfg.kv_capacity_bytes
        self.largest_block = 0.0  # of any request so far: while that much is free beside the growth, every step runs
        self.token_cap = self.rules.max_batched_tokens if cfg.chunk is None else float("inf")
        self.busy = False
        self.running: list[tuple[int, int]] = []  # (request, tokens) of the running iteration
        self.finished = 0  # requests served or dropped
        self.record = record
        names = sorted(inst.clients)
        self.client_of = [names.index(req.client) for req in inst.requests] if cfg.shared_clients else []
        self.client_free = [0.0] * len(names)  # shared clients: when each is next free
        self.stats = SimResult(*(np.full(inst.n_requests, np.nan) for _ in range(3)),
                               served=np.zeros(inst.n_requests, bool), dropped=np.zeros(inst.n_requests, bool))  # fmt: skip

    # -- events -------------------------------------------------------------------------
    def arrive(self, r: int, now: float, late: float = 0.0) -> None:
        """Request ``r`` arrives at ``now`` and starts ``late`` seconds after (placing it)."""
        x = self.placements[r]
        route = build_route(self.arrays, r, x)
        p, o = self.prompt[r], self.output[r]
        q = self.reqs[r] = _Req.of(route, p, o, float(self.arrays.kv[r][x].sum()), self.rules.block * float(self.kv_tok[x].sum()))
        self.largest_block = max(self.largest_block, q.block)
        cap = self.cfg.kv_capacity_bytes
        if self.paged:  # alone: its largest recompute (prompt + output - 1 tokens) admissible, and a
            # block free beside what it holds before its last decode step (prompt + output - 2 tokens)
            block = self.rules.block
            never = (-(-(p + o - 1) // block) * q.block > cap - self.mark
                     or (o > 1 and (-(-(p + o - 2) // block) + 1) * q.block > cap))  # fmt: skip
        else:
            never = q.kv > cap
        if q.spans and never:
            self.stats.dropped[r] = True
            self.finished += 1
            return
        self.in_flight[r] = None
        if self.cfg.warm:
            q.step, q.pre, q.first_at = 1, False, now + q.decode_stream
            if q.output <= 1:
                self.finish(r, q)
                return
        self.wait(r, now, q.prefill[0] if q.pre else q.decode[0], late)

    def wait(self, r: int, now: float, d: float, late: float = 0.0) -> None:
        """From ``now + late`` the request is on its own for ``d`` seconds, then goes on (at
        once when both are 0)."""
        if d > 0 or late > 0:
            heapq.heappush(self.heap, (self.own_work(r, now + late, d), next(self.seq), r))
        else:
            self.go_on(r, now)

    def own_work(self, r: int, start: float, d: float) -> float:
        """When ``d`` seconds of request ``r``'s own work, ready at ``start``, end: at once on
        a device of its own, after the client's earlier work on a shared one."""
        if not self.client_of or d <= 0:
            return start + d
        c = self.client_of[r]
        begin = max(start, self.client_free[c])
        self.client_free[c] = begin + d
        return begin + d

    def go_on(self, r: int, now: float) -> None:
        """After delay ``pos`` of the phase: the next server item is ready, or the phase ends."""
        q = self.reqs[r]
        assert q is not None
        if q.restart:  # preempted while on its own: its recompute starts now
            q.restart = False
            self.wait(r, now, self.refill_delay(q))
            return
        while True:
            if q.pos < len(q.spans):
                if np.isnan(q.ready_at):
                    q.ready_at = now
                if q.admitted:
                    self.ready.append(r)
                else:
                    self.enqueue(r)
                return
            if q.pre:
                if q.step == 0:
                    q.first_at = now + q.prefill_stream
                q.last_at = now + q.prefill_stream
                q.pre = False
            else:
                q.last_at = now + q.decode_stream
            if q.step >= q.output - 1:
                self.finish(r, q)
                return
            q.step, q.pos = q.step + 1, 0
            d = q.decode[0]
            if d > 0:
                heapq.heappush(self.heap, (self.own_work(r, now, d), next(self.seq), r))
                return

    def enqueue(self, r: int) -> None:
        """``r`` waits for KV admission, in arrival order (its rank, given the first time)."""
        rank, w = self.rank, self.waiting
        if rank[r] < 0:
            rank[r] = next(self.ranks)
        if w and rank[w[-1]] > rank[r]:  # a preempted request goes back to its place
            i = len(w)
            while i > 0 and rank[w[i - 1]] > rank[r]:
                i -= 1
            w.insert(i, r)
        else:
            w.append(r)

    def finish(self, r: int, q: _Req) -> None:
        if q.admitted:
            if self.paged:
                self.kv_used -= q.held * q.block
                q.held = 0
                self.run_set.remove(r)
            else:
                self.kv_used -= q.kv
            q.admitted = False
        self.stats.served[r] = True
        self.finished += 1
        del self.in_flight[r]
        if np.isnan(q.last_at):
            q.last_at = q.first_at

    # -- the server -----------------------------------------------------------------------
    def admit(self) -> None:
        if self.paged:
            self.admit_paged()
            return
        reqs, cap = self.reqs, self.cfg.kv_capacity_bytes
        while self.waiting and self.kv_used + reqs[self.waiting[0]].kv <= cap:  # type: ignore[union-attr]
            r = self.waiting.popleft()
            q = reqs[r]
            assert q is not None
            q.admitted = True
            self.kv_used += q.kv
            self.ready.append(r)
        if self.kv_used > self.stats.peak_kv_bytes:
            self.stats.peak_kv_bytes = self.kv_used

    def admit_paged(self) -> None:
        """vLLM's admission: in rank order while the prompt's blocks fit less the watermark,
        within the prompt-token cap (a longer prompt goes alone) and the sequence cap."""
        reqs, w, run, rank = self.reqs, self.waiting, self.run_set, self.rank
        free = self.cfg.kv_capacity_bytes - self.kv_used
        tokens = 0
        while w:
            q = reqs[w[0]]
            assert q is not None
            n = q.ptok if q.pre else q.prompt + q.step - 1
            need = -(-n // self.rules.block)
            cost = need * q.block
            if (q.pre and tokens and tokens + n > self.token_cap) or len(run) >= self.rules.max_seqs or free - cost < self.mark:
                break
            r = w.popleft()
            q.admitted, q.held = True, need
            self.kv_used += cost
            free -= cost
            if q.pre:
                tokens += n
            if run and rank[run[-1]] > rank[r]:
                bisect.insort(run, r, key=rank.__getitem__)
            else:
                run.append(r)
            self.ready.append(r)
        if self.kv_used > self.stats.peak_kv_bytes:
            self.stats.peak_kv_bytes = self.kv_used

    def refill_delay(self, q: _Req) -> float:
        """Before a recompute's first server item: the prefill's first client run and crossing,
        none when the first block is on the server (the server keeps the tokens)."""
        return 0.0 if q.spans[0][0] == 0 else q.prefill[0]

    def preempt(self, r: int, now: float) -> None:
        """Free ``r``'s blocks; it waits again to recompute its prompt and generated tokens."""
        q = self.reqs[r]
        assert q is not None
        self.kv_used -= q.held * q.block
        q.held, q.admitted = 0, False
        self.run_set.remove(r)
        q.pre, q.ptok, q.pos, q.done_tokens = True, q.prompt + q.step, 0, 0
        self.stats.preemptions += 1
        if r in self.ready:
            self.ready.remove(r)
            self.wait(r, now, self.refill_delay(q))
        else:  # on its own (client compute, crossings): the recompute starts when that ends
            q.restart = True

    def grow(self, items: list[tuple[int, int]], now: float) -> list[tuple[int, int]]:
        """Grant the blocks the decode steps of ``items`` need (paged rule); preempt where none is free.

        In rank order, as vLLM 0.4 walks its running queue (``can_append_slot``): a decode
        step runs only while at least one block of its request's size is free, whether or
        not it needs one; where none is, the latest-arrived admitted request not scheduled
        yet in this iteration is preempted, or the request itself when it is that one. A
        step that crosses a block boundary then takes the block. Returns the items that
        still run.
        """
        reqs = self.reqs
        steps = {r: _blocks_to_add(reqs[r], self.rules.block) for r, _ in items if _starts_step(reqs[r])}  # type: ignore[arg-type]
        if not steps:
            return items
        total = sum(need * reqs[r].block for r, need in steps.items())  # type: ignore[union-attr]
        cap = self.cfg.kv_capacity_bytes
        if cap - self.kv_used - total >= self.largest_block:
            for r, need in steps.items():  # every step sees a free block at its turn
                self._take(r, need)
        else:
            rank, run = self.rank, self.run_set
            scheduled: set[int] = set()
            for r, _ in sorted(items, key=lambda it: rank[it[0]]):
                q = reqs[r]
                assert q is not None
                if not q.admitted:  # preempted above
                    continue
                if r in steps:
                    while q.block > cap - self.kv_used:
                        victim = next((v for v in reversed(run) if v != r and v not in scheduled), None)
                        if victim is None or rank[victim] < rank[r]:
                            break
                        self.preempt(victim, now)
                    if q.block > cap - self.kv_used:
                        self.preempt(r, now)
                        continue
                    self._take(r, steps[r])
                scheduled.add(r)
            items = [it for it in items if it[0] in scheduled]
        if self.kv_used > self.stats.peak_kv_bytes:
            self.stats.peak_kv_bytes = self.kv_used
        return items

    def _take(self, r: int, blocks: int) -> None:
        q = self.reqs[r]
        assert q is not None
        q.held += blocks
        self.kv_used += blocks * q.block

    def choose(self) -> list[tuple[int, int]]:
        """(request, tokens) of the items of the next iteration, by the engine's rules."""
        reqs = self.reqs
        prefills = [r for r in self.ready if reqs[r].pre]  # type: ignore[union-attr]
        decodes = [r for r in self.ready if not reqs[r].pre]  # type: ignore[union-attr]
        budget = self.cfg.chunk
        if budget is None:
            if prefills and not self.rules.mixes:
                return [(r, reqs[r].ptok) for r in prefills]  # type: ignore[union-attr]
            return [(r, 1) for r in decodes] + [(r, reqs[r].ptok) for r in prefills]  # type: ignore[union-attr]
        chosen = [(r, 1) for r in decodes]
        left = budget - len(decodes)
        for r in prefills:
            if left <= 0:
                break
            n = min(left, reqs[r].ptok - reqs[r].done_tokens)  # type: ignore[union-attr]
            chosen.append((r, n))
            left -= n
        return chosen

    def start(self, now: float) -> None:
        while True:
            self.admit()
            if not self.ready:
                return
            items = self.choose()
            if items and self.paged:
                before = self.stats.preemptions
                items = self.grow(items, now)
                if not items and self.stats.preemptions > before:
                    continue  # every chosen request was preempted: admit again
            if not items:
                return
            break
        if len(items) == len(self.ready):
            self.ready = []
        else:
            taken = {r for r, _ in items}
            self.ready = [r for r in self.ready if r not in taken]
        reqs = self.reqs
        work = []
        for r, n in items:
            q = reqs[r]
            assert q is not None
            lo, hi = q.spans[q.pos]
            work.append((lo, hi, n, q.done_tokens if q.pre else q.prompt + q.step - 1))
            if np.isnan(q.started_at):
                q.started_at = now
        t = self.price(work)
        self.busy, self.running = True, items
        self.stats.iterations += 1
        self.stats.busy_s += t
        self.stats.tokens += sum(n for _, n in items)
        if self.record:
            self.stats.timeline.append((now, now + t, [(r, reqs[r].pos, n) for r, n in items]))  # type: ignore[union-attr]
            self.stats.priced.append(work)
        heapq.heappush(self.heap, (now + t, next(self.seq), -1))

    def end_iteration(self, now: float) -> None:
        self.busy = False
        reqs = self.reqs
        for r, n in self.running:
            q = reqs[r]
            assert q is not None
            if q.pre:
                q.done_tokens += n
                if q.done_tokens < q.ptok:  # more chunks of this prompt
                    self.ready.append(r)
                    continue
                q.done_tokens = 0
            q.pos += 1
            self.wait(r, now, (q.prefill if q.pre else q.decode)[q.pos])
        self.running = []

    def drain(self, now: float) -> None:
        """Handle the heap's events at ``now`` (those they add at ``now`` too)."""
        heap, pop = self.heap, heapq.heappop
        while heap and heap[0][0] == now:
            r = pop(heap)[2]
            self.stats.events += 1
            if r < 0:
                self.end_iteration(now)
            else:
                self.go_on(r, now)

    def place(self, now: float, arriving: list[int]) -> None:
        """Ask the placer about the requests ``arriving`` now; those it sends arrive."""
        assert self.placer is not None
        started = time.perf_counter()
        sent = np.asarray(self.placer.place(now, arriving, list(self.in_flight), self.placements), dtype=bool)
        late = time.perf_counter() - started if self.charge_placer else 0.0
        if sent.shape != (len(arriving),):
            raise InputError("placer", f"place() must return one bool per arriving request ({len(arriving)}), got shape {sent.shape}")
        self.stats.events += len(arriving)
        for r, ok in zip(arriving, sent.tolist()):
            if ok:
                self.arrive(r, now, late)

    def run(self, arrivals: NDArray[np.float64], sent: NDArray[np.bool_], progress: Callable[[int], None] | None) -> SimResult:
        # Arrivals in time order, ties in request order (before any other event at that instant)
        order = sorted(np.nonzero(sent)[0].tolist(), key=lambda r: arrivals[r])
        times = [float(arrivals[r]) for r in order]
        times.append(float("inf"))
        heap, i, now, done = self.heap, 0, 0.0, 0
        while i < len(order) or heap:
            now = times[i] if not heap or times[i] <= heap[0][0] else heap[0][0]
            j = i
            while times[j] == now:
                j += 1
            if self.placer is None:
                for r in order[i:j]:
                    self.stats.events += 1
                    self.arrive(r, now)
                self.drain(now)
            else:  # the other events of the instant first, then the placer
                self.drain(now)
                if j > i:
                    self.place(now, order[i:j])
                    self.drain(now)
            i = j
            if not self.busy:
                self.start(now)
            if progress is not None and self.finished > done:
                progress(self.finished - done)
                done = self.finished
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
    placer: OnlinePlacer | None = None,
    charge_placer: bool = False,
) -> SimResult:
    """Simulate ``inst``'s requests (``placements``: requests x blocks, ``True`` = server).

    Parameters
    ----------
    arrivals : seconds from the start at which each request arrives (default: all at 0).
    sent : requests that are sent at all (default: all); the others are not served (nor
        offered to ``placer``).
    progress : called with the number of requests finished since its last call.
    record : keep every iteration's (start, end, [(request, item, tokens)]) in ``timeline``,
        and its priced items (blocks ``lo`` to ``hi - 1``, new tokens, cached tokens) in ``priced``.
    placer : place each request when it arrives (:class:`OnlinePlacer`); it writes the
        rows of a copy of ``placements``, which the result keeps.
    charge_placer : the placer's wall time at each call delays the requests it sends then,
        in simulated time (not deterministic: it is measured).

    Returns
    -------
    SimResult, with TTFT (first token at the client), E2E (last token at the client) and
    TPOT = (E2E - TTFT) / (output - 1), each from the request's arrival, and the queueing
    delay: from the moment its first server item was ready (arrival, placing, client blocks
    and upload done) to the start of the first iteration that ran it (NaN for a request
    that runs nothing on the server).
    """
    n = inst.n_requests
    arrivals = np.zeros(n) if arrivals is None else np.asarray(arrivals, dtype=float)
    sent = np.ones(n, dtype=bool) if sent is None else np.asarray(sent, dtype=bool)
    started = time.perf_counter()
    x = np.array(placements, dtype=bool) if placer is not None else np.asarray(placements, dtype=bool)
    server = _Server(inst, x, cfg, record, placer, charge_placer)
    out = server.run(arrivals, sent, progress)
    first = np.array([np.nan if q is None else q.first_at for q in server.reqs])
    last = np.array([np.nan if q is None else q.last_at for q in server.reqs])
    ok = out.served
    out.ttft = np.where(ok, first - arrivals, np.nan)
    if cfg.warm:
        out.ttft[:] = np.nan
    out.e2e = np.where(ok, last - arrivals, np.nan)
    steps = inst.arrays.output_tokens - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out.tpot = np.where(ok & (steps > 0), (last - first) / np.maximum(steps, 1), np.nan)
    ready = np.array([np.nan if q is None else q.ready_at for q in server.reqs])
    began = np.array([np.nan if q is None else q.started_at for q in server.reqs])
    out.queue = np.where(ok, began - ready, np.nan)
    out.placements = x
    out.wall_s = time.perf_counter() - started
    return out
