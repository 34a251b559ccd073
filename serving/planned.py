"""``plan``: place requests by a placement mix planned for capacity, adapting to the load.

At the start the policy solves the fluid model (:mod:`.fluid`) over the workload's
classes (client x prompt-length band): the mix of cuts per class with the highest
estimated capacity, and the estimate for all-server alone. While requests run it
measures the arrival rate (the last :data:`WINDOW` arrivals) and

* sends every request all on the server while the server is lightly loaded (the arrival
  rate below :data:`SWITCH` of all-server's estimated capacity *and* the KV of the requests
  in flight, at their whole context, below :data:`SWITCH` of the cache: the second signal
  needs no model, so an overestimated all-server capacity cannot keep the plan off), and
  always when the plan's estimate does not beat all-server's by :data:`MIN_GAIN` (a split
  only pays where the server is the bottleneck), except the requests of a class the plan
  runs entirely on its clients: those take nothing from the server at any load, and where
  prompts queue in bursts (capacity set by TTFT while the server is mostly idle) neither
  signal sees the load;
* otherwise follows the planned mix: each arrival of class ``c`` takes the planned cut
  that is furthest behind its share so far (deficit round robin), among those its own
  limits allow (every per-request limit at batch-1 figures, which a batching server can
  only make slower: client memory, TTFT, TPOT, ...); all on the server when none does.

:class:`FixedMix` is the same placer without the load switch: the given mix always
(the uniform cuts of the frontier search). Both are online placers of
:func:`.simulator.simulate`.
"""

from __future__ import annotations

import time
from collections import deque
from functools import partial

import numpy as np
from numpy.typing import NDArray

from splitllm.batched import BatchedCosts, server_costs
from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.instance import Instance
from splitllm.errors import InputError
from splitllm.serving.fluid import Classes, FluidPlan, classes, fluid_plan
from splitllm.serving.registry import Placement, PolicySpec, Server, register_policy
from splitllm.formulations.batch_candidates import candidates

POLICY = "plan"
#: Arrivals over which the rate is measured.
WINDOW = 64
#: Below this share of all-server's estimated capacity and of the KV cache, every request goes all on the server.
SWITCH = 0.5
#: The planned mix is used only when its estimate beats all-server's by this factor.
MIN_GAIN = 1.02


class FixedMix:
    """Each arrival of class ``c`` gets the cut of ``share[c]`` furthest behind its share.

    ``cuts`` (K x B) are the candidate placements, ``share`` (C x K) the mix (rows sum to
    1), ``of_request[r]`` the class of request ``r``. ``wall_s`` accumulates the time
    spent placing.
    """

    def __init__(self, inst: Instance, cuts: NDArray[np.bool_], share: NDArray[np.float64], of_request: NDArray[np.int64]) -> None:
        self.inst, self.cuts, self.share, self.of_request = inst, cuts, np.asarray(share, float), of_request
        self.assigned = np.zeros(self.share.shape)
        self.wall_s = 0.0

    def place(self, now: float, arriving: list[int], in_flight: list[int], placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Write the newcomers' rows of ``placements``; every one is sent."""
        started = time.perf_counter()
        for r in arriving:
            placements[r] = self._cut(r)
        self.wall_s += time.perf_counter() - started
        return np.ones(len(arriving), dtype=bool)

    def _cut(self, r: int) -> NDArray[np.bool_]:
        c = int(self.of_request[r])
        planned = np.flatnonzero(self.share[c] > 0)
        allowed = planned[self._own_limits_hold(r, self.cuts[planned])]
        if allowed.size == 0:
            return np.ones(self.cuts.shape[1], bool)
        total = self.assigned[c].sum() + 1.0
        k = int(allowed[np.argmax(self.share[c, allowed] * total - self.assigned[c, allowed])])
        self.assigned[c, k] += 1.0
        return self.cuts[k].copy()

    def _own_limits_hold(self, r: int, x: NDArray[np.bool_]) -> NDArray[np.bool_]:
        rows = np.full(len(x), r)
        return feasible_mask(self.inst.arrays, rows, request_metrics(self.inst.arrays, rows, x))


def class_of(groups: Classes, n_requests: int) -> NDArray[np.int64]:
    """The class index of every request."""
    of = np.zeros(n_requests, dtype=np.int64)
    for c, idx in enumerate(groups.members):
        of[idx] = c
    return of


class PlanOnline(FixedMix):
    """The ``plan`` placer (module docstring): the fluid plan's mix under load, all-server below it."""

    def __init__(self, inst: Instance, plan: FluidPlan, all_server_rate: float, kv_capacity_bytes: float) -> None:
        super().__init__(inst, plan.figures.cuts, plan.share, class_of(plan.groups, inst.n_requests))
        self.plan, self.all_server_rate, self.kv_capacity = plan, all_server_rate, kv_capacity_bytes
        self.loaded = False
        self.splits = plan.rate > MIN_GAIN * all_server_rate
        self.recent: deque[float] = deque(maxlen=WINDOW)
        # the classes planned entirely on their clients (all-client cuts: no server block)
        self.off_server = self.share[:, ~self.cuts.any(axis=1)].sum(axis=1) >= 1 - 1e-9

    def rate(self) -> float:
        """Arrivals per second over the last :data:`WINDOW` arrivals (0 before 8)."""
        if len(self.recent) < 8 or self.recent[-1] <= self.recent[0]:
            return 0.0
        return (len(self.recent) - 1) / (self.recent[-1] - self.recent[0])

    def _cut(self, r: int) -> NDArray[np.bool_]:
        if self.splits and (self.loaded or self.off_server[self.of_request[r]]):
            return super()._cut(r)
        return np.ones(self.cuts.shape[1], bool)

    def place(self, now: float, arriving: list[int], in_flight: list[int], placements: NDArray[np.bool_]) -> NDArray[np.bool_]:
        self.recent.extend([now] * len(arriving))
        rows = np.asarray(in_flight, dtype=np.int64)
        kv = float((self.inst.arrays.kv[rows] * placements[rows]).sum())
        self.loaded = self.rate() >= SWITCH * self.all_server_rate or kv >= SWITCH * self.kv_capacity
        return super().place(now, arriving, in_flight, placements)


def planned(inst: Instance, costs: BatchedCosts, kv_capacity_bytes: float, engine: str = "vllm") -> tuple[FluidPlan, float]:
    """The fluid plan of ``inst`` and all-server's fluid estimate (the ``plan`` policy's inputs)."""
    plan = fluid_plan(inst, costs, kv_capacity_bytes, engine=engine)
    only_server = np.zeros(plan.share.shape, bool)
    only_server[:, plan.figures.cuts.all(axis=1)] = True
    return plan, fluid_plan(inst, costs, kv_capacity_bytes, engine=engine, groups=plan.groups, allowed=only_server).rate


def cut_index(cuts: NDArray[np.bool_], word: str, option: str = "--policy") -> int:
    """The row of ``cuts`` a word names: ``server``, ``client``, ``pN`` (the server runs the
    first ``N`` blocks, the client the rest) or ``sN`` (the server runs the last ``N``).

    >>> from splitllm.formulations.batch_candidates import candidates
    >>> [cut_index(candidates(4), w) for w in ("server", "client", "p1", "s3")]
    [0, 1, 5, 2]
    """
    n_blocks = cuts.shape[1]
    head, digits = word[:1], word[1:]
    if word in ("server", "client"):
        target = np.full(n_blocks, word == "server")
    elif head in ("p", "s") and digits.isdigit() and 0 < int(digits) < n_blocks:
        n = int(digits)
        target = np.arange(n_blocks) < n if head == "p" else np.arange(n_blocks) >= n_blocks - n
    else:
        raise InputError(option, f"cut {word!r}: expected server, client, pN or sN with 0 < N < {n_blocks}")
    return int(np.flatnonzero((cuts == target).all(axis=1))[0])


def fixed_cuts(inst: Instance, spec: str) -> FixedMix:
    """The placer of ``cut:SPEC``: ``SPEC`` is ``CLIENT=CUT`` pairs joined by commas (``*``
    for every client not named; unnamed clients run all on the server).

    >>> from splitllm.instance import load_instance, example_path
    >>> mix = fixed_cuts(load_instance(example_path("llama2-7b")), "laptop-m1=p30,*=server")
    >>> mix.share.argmax(axis=1).tolist()
    [64, 0]
    """
    groups = classes(inst, bands=1)
    cuts = candidates(inst.n_blocks)
    chosen: dict[str, int] = {}
    for pair in filter(None, spec.split(",")):
        client, sep, word = pair.partition("=")
        if not sep or (client != "*" and client not in groups.names):
            raise InputError("--policy", f"cut:{spec}: expected CLIENT=CUT pairs with CLIENT one of {', '.join(['*', *groups.names])}")
        chosen[client] = cut_index(cuts, word.strip())
    share = np.zeros((len(groups.names), len(cuts)))
    for c, name in enumerate(groups.names):
        share[c, chosen.get(name, chosen.get("*", 0))] = 1.0
    return FixedMix(inst, cuts, share, class_of(groups, inst.n_requests))


@register_policy(POLICY, "a cut mix per client and prompt band planned for capacity by a fluid model of the server, "
                 "followed under load (all-server below it)", kind="online")
def plan_policy(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    """The ``plan`` policy: the fluid plan solved once (its wall time is the policy's), a
    :class:`PlanOnline` placer per simulation."""
    n, b = inst.n_requests, inst.n_blocks
    kv = inst.arrays.kv_capacity if server.kv_capacity_bytes is None else server.kv_capacity_bytes
    started = time.perf_counter()
    plan, all_server_rate = planned(inst, server_costs(inst, server.engine), kv, server.engine)
    wall = time.perf_counter() - started
    return Placement(policy, np.ones((n, b), bool), np.ones(n, bool), wall, np.zeros(n),
                     online=partial(PlanOnline, inst, plan, all_server_rate, kv))


@register_policy("cut", "a fixed cut per client, whatever the load: CUT is server, client, pN (the server runs the "
                 "first N blocks) or sN (the last N); * = every other client; unnamed clients all-server",
                 syntax="cut:CLIENT=CUT,...", kind="online")
def cut_policy(inst: Instance, policy: str, spec: PolicySpec, server: Server) -> Placement:
    """The ``cut:`` policy: a :class:`FixedMix` placer per simulation; a bad spec is refused here."""
    text = policy.partition(":")[2]
    fixed_cuts(inst, text)
    n, b = inst.n_requests, inst.n_blocks
    return Placement(policy, np.ones((n, b), bool), np.ones(n, bool), 0.0, np.zeros(n), online=partial(fixed_cuts, inst, text))
