"""The one table of what a placement uses and what limits it, and the two objectives.

Every figure of a placement is a :class:`Resource`: server work and server KV (summed
over the admitted requests and held to a server capacity), and TTFT, TPOT, E2E and
client memory (each held to a per-request limit). The table says, once, each one's
name in every place it appears (F1 edge attribute and DP slot, compiled arrays, the
solution file, the instance field that limits it), its unit and how it is limited:
every limit is an upper bound, met when ``value <= limit * (1 + FEASIBILITY_RTOL)``
(:func:`exceeds`). The evaluator, the DPs, the diagnosis, the formulations and the
solution file all read it.

Adding a per-request limit means a row here and the code that prices it: its figure in
``splitllm.evaluator.FIGURES``, its cost on F1's edges in
``splitllm.formulations.chain_graph.EDGE_COSTS`` (and ``SINK_COSTS``) and its linear row in
``splitllm.formulations.request_rows.ROW_BUILDERS``. A limit read from ``slo.<name>`` is
compiled (``Arrays.<key>_limit``) and accepted by the instance schema from this row alone;
everything else (the DPs, the diagnosis, F2-F5, the evaluators, solution files and their
schema, the model sidecar, ``to_dataframe``, the CLI table, the serving simulation's SLO
check) iterates over this table. A coupled resource also needs its per-block use
``Arrays.<key>`` and capacity ``Arrays.<key>_capacity`` in ``splitllm.instance``.

Examples
--------
>>> [r.key for r in REQUEST_LIMITS], [r.key for r in COUPLED]
(['ttft', 'tpot', 'e2e', 'client_mem'], ['work', 'kv'])
>>> TTFT.figure, TTFT.limit_name, CLIENT_MEM.limit_field
('ttft_s', 'ttft_s', 'clients.<client>.memory_bytes')
>>> exceeds(np.array([1.0, 1.0 + 1e-12, float("nan"), 2.0]), 1.0).tolist()
[False, False, True, True]
>>> Objective("max_admitted").maximize, Objective.MIN_SERVER_WORK.tightest(3.0, 4.0, None)
(True, 4.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from splitllm.tolerances import FEASIBILITY_RTOL


@dataclass(frozen=True)
class Resource:
    """One figure of a placement and how it is limited.

    ``key`` names it on F1's edges, in the DP's label slots, in
    :class:`splitllm.evaluator.Metrics` and in the compiled arrays; ``figure`` is its
    per-request field in solution files; ``limit_field`` the instance field that limits
    it (``scope="request"``: each request alone; ``"server"``: the sum over admitted
    requests); ``on_edges`` says whether it adds up along F1's edges (E2E does not: it is
    ``TTFT + (o - 1) * TPOT``); ``decode_only`` that a request with one output token has
    no such figure. ``throughput`` says how the throughput placement (F5, one decode batch)
    holds a per-request limit: ``"batch-1"`` at the figure of the request alone (client
    memory, and any new limit unless its row says otherwise), ``"batched"`` by F5's own
    batched figure (TPOT), ``"with-ttft"`` at batch 1 only when asked (``-o ttft=true``:
    TTFT), ``"no"`` not at all (E2E, a whole-request batch-1 figure F5 does not price).
    """

    key: str
    figure: str
    label: str
    unit: Literal["s", "B"]
    limit_field: str
    limit_word: str
    scope: Literal["request", "server"]
    on_edges: bool = True
    decode_only: bool = False
    throughput: Literal["batch-1", "batched", "with-ttft", "no"] = "batch-1"

    @property
    def limit_name(self) -> str:
        """The limit's own field name, e.g. ``ttft_s`` or ``memory_bytes``."""
        return self.limit_field.rsplit(".", 1)[-1]

    @property
    def limit_attr(self) -> str:
        """The compiled arrays' attribute holding the limit (``inf`` when absent)."""
        return f"{self.key}_limit" if self.scope == "request" else f"{self.key}_capacity"


WORK = Resource("work", "server_work_s", "server work", "s", "server.work_capacity_s", "capacity", "server")
KV = Resource("kv", "server_kv_bytes", "server KV", "B", "server.kv_capacity_bytes", "capacity", "server")
TTFT = Resource("ttft", "ttft_s", "ttft_s", "s", "slo.ttft_s", "SLO", "request", throughput="with-ttft")
TPOT = Resource("tpot", "tpot_s", "tpot_s", "s", "slo.tpot_s", "SLO", "request", decode_only=True, throughput="batched")
E2E = Resource("e2e", "e2e_s", "e2e_s", "s", "slo.e2e_s", "SLO", "request", on_edges=False, throughput="no")
CLIENT_MEM = Resource("client_mem", "client_mem_bytes", "client memory", "B", "clients.<client>.memory_bytes", "limit", "request")

#: Every resource, in the order of the DP's label slots.
RESOURCES: tuple[Resource, ...] = (WORK, KV, TTFT, TPOT, E2E, CLIENT_MEM)
#: Resources summed over admitted requests against a server capacity.
COUPLED: tuple[Resource, ...] = tuple(r for r in RESOURCES if r.scope == "server")
#: Resources each request must keep within its own limit.
REQUEST_LIMITS: tuple[Resource, ...] = tuple(r for r in RESOURCES if r.scope == "request")
#: Resources that are F1 edge attributes.
EDGE_RESOURCES: tuple[Resource, ...] = tuple(r for r in RESOURCES if r.on_edges)
#: Position of each resource in a label's value vector.
SLOT: dict[str, int] = {r.key: i for i, r in enumerate(RESOURCES)}
BY_KEY: dict[str, Resource] = {r.key: r for r in RESOURCES}


def throughput_limits(ttft: bool) -> tuple[Resource, ...]:
    """The per-request limits F5 holds, and at which figure (:attr:`Resource.throughput`):
    with ``ttft`` the batch-1 TTFT among them.

    >>> [r.key for r in throughput_limits(False)], [r.key for r in throughput_limits(True)]
    (['tpot', 'client_mem'], ['ttft', 'tpot', 'client_mem'])
    """
    held = {"batch-1", "batched"} | ({"with-ttft"} if ttft else set())
    return tuple(r for r in REQUEST_LIMITS if r.throughput in held)


def exceeds(value: NDArray[np.float64] | float, limit: NDArray[np.float64] | float) -> NDArray[np.bool_]:
    """``value > limit`` beyond :data:`~splitllm.tolerances.FEASIBILITY_RTOL`.

    A value that is not finite (NaN, inf) exceeds every limit, an infinite limit included:
    a figure that cannot be computed can never be shown to meet its limit.
    """
    value = np.asarray(value, dtype=float)
    limit = np.asarray(limit, dtype=float)
    with np.errstate(invalid="ignore"):
        within = value <= limit + FEASIBILITY_RTOL * np.abs(limit)
    return np.asarray(~(within & np.isfinite(value)), dtype=bool)


class Objective(str, Enum):
    """The two objectives: serve everyone with least server work, or admit most weight
    (then, lexicographically, least server work among the admitted)."""

    MIN_SERVER_WORK = "min_server_work"
    MAX_ADMITTED = "max_admitted"

    def __str__(self) -> str:
        return self.value

    @property
    def maximize(self) -> bool:
        """True when the objective is maximised (admitted weight)."""
        return self is Objective.MAX_ADMITTED

    @property
    def serves_all(self) -> bool:
        """True when every request must be served (no admission choice)."""
        return self is Objective.MIN_SERVER_WORK

    def tightest(self, *bounds: float | None) -> float | None:
        """The best of several proven bounds (largest for a minimum, smallest for a maximum)."""
        known = [b for b in bounds if b is not None]
        if not known:
            return None
        return min(known) if self.maximize else max(known)

    def bound_holds(self, value: float, bound: float, slack: float = 0.0) -> bool:
        """Whether ``bound`` is on the right side of the objective ``value`` (within ``slack``)."""
        return bound >= value - slack if self.maximize else bound <= value + slack
