"""The per-request limits of the cost model as linear rows over placement variables.

F2 (PuLP) and F4 (CP-SAT) write the same rows; this module says once what they are.
For request ``r`` with ``x[b]`` (block ``b`` on the server), crossing indicators
``u[b] >= x[b] - x[b-1]`` (up) and ``d[b] >= x[b-1] - x[b]`` (down) for ``b = 1 .. B-1``,
and the decode cycle pair ``cu >= x[0] - x[B-1]`` (token up: embed on the server, head
on the client), ``cd >= x[B-1] - x[0]``, each limit reads

    const + x_coef . x + u_coef . u + d_coef . d + cu_coef * cu + cd_coef * cd <= limit

The crossing indicators only appear with coefficients ``>= 0`` on the left of ``<=``
rows, so they need not be binary: any feasible point stays feasible with each set to
``max(0, difference)``. ``const`` is the all-client value, so with every variable at 0
(a rejected request: ``x <= a[r] = 0``) the left side is exactly ``const``; the tightest
valid big-M is therefore ``max(0, const - limit)`` (:meth:`LinearRow.big_m`).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> [row.name for row in request_rows(inst.arrays, 0)]
['ttft', 'tpot', 'client_mem']
>>> row = request_rows(inst.arrays, 0)[0]
>>> round(row.value([1, 1, 1]), 6)  # TTFT of SSS, as the evaluator has it
0.3105
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Arrays
from splitllm.resources import CLIENT_MEM, E2E, REQUEST_LIMITS, TPOT, TTFT, Resource

Array = NDArray[np.float64]
#: A row is divided by its limit unless the limit is below this share of its figures.
MIN_SCALE_RATIO = 1e-9


@dataclass(frozen=True)
class LinearRow:
    """One limit of one request: ``const + coefficients . variables <= limit``."""

    resource: Resource
    const: float
    x_coef: Array
    u_coef: float
    d_coef: float
    cu_coef: float
    cd_coef: float
    limit: float

    @property
    def name(self) -> str:
        """The limited resource's key, e.g. ``ttft`` (model rows are named after it)."""
        return self.resource.key

    @property
    def big_m(self) -> float:
        """Slack that switches the row off for a rejected request (all variables 0)."""
        return max(0.0, self.const - self.limit)

    @property
    def scale(self) -> float:
        """The row's unit inside the models: its limit, or its largest figure when the limit
        is 0 or so small beside the figures (under :data:`MIN_SCALE_RATIO` of them) that
        dividing by it would overflow."""
        biggest = max(abs(self.const), float(np.max(np.abs(self.x_coef), initial=0.0)), self.u_coef, self.d_coef, self.cu_coef, self.cd_coef)
        if self.limit > 0 and self.limit >= MIN_SCALE_RATIO * biggest:
            return self.limit
        return biggest if biggest > 0 else 1.0

    def value(self, placement: NDArray[np.bool_] | list[int]) -> float:
        """The left side for a placement (crossings set to their least values)."""
        x = np.asarray(placement, dtype=float)
        ups = np.maximum(x[1:] - x[:-1], 0).sum()
        downs = np.maximum(x[:-1] - x[1:], 0).sum()
        cu, cd = max(x[0] - x[-1], 0.0), max(x[-1] - x[0], 0.0)
        return float(self.const + self.x_coef @ x + self.u_coef * ups + self.d_coef * downs + self.cu_coef * cu + self.cd_coef * cd)


def _ttft(a: Arrays, r: int) -> LinearRow:
    coef = a.server_prefill[r] - a.client_prefill[r]
    coef[0] += a.prompt_up[r]
    coef[-1] += a.first_token_down[r]
    return LinearRow(
        TTFT, float(a.client_prefill[r].sum()), coef, float(a.act_up_prefill[r]), float(a.act_down_prefill[r]), 0.0, 0.0,
        float(a.ttft_limit[r]),
    )


def _tpot(a: Arrays, r: int) -> LinearRow:
    return LinearRow(
        TPOT,
        float(a.client_decode[r].sum()),
        a.server_decode[r] - a.client_decode[r],
        float(a.act_up_decode[r]),
        float(a.act_down_decode[r]),
        float(a.token_up_decode[r]),
        float(a.token_down_decode[r]),
        float(a.tpot_limit[r]),
    )


def _e2e(a: Arrays, r: int) -> LinearRow:
    first, step = _ttft(a, r), _tpot(a, r)
    n = float(a.output_tokens[r] - 1)
    return LinearRow(
        E2E,
        first.const + n * step.const,
        first.x_coef + n * step.x_coef,
        first.u_coef + n * step.u_coef,
        first.d_coef + n * step.d_coef,
        n * step.cu_coef,
        n * step.cd_coef,
        float(a.e2e_limit[r]),
    )


def _client_mem(a: Arrays, r: int) -> LinearRow:
    return LinearRow(CLIENT_MEM, float(a.client_mem[r].sum()), -a.client_mem[r], 0.0, 0.0, 0.0, 0.0, float(a.client_mem_limit[r]))


#: How each per-request limit of :data:`splitllm.resources.REQUEST_LIMITS` is written.
ROW_BUILDERS: dict[Resource, Callable[[Arrays, int], LinearRow]] = {TTFT: _ttft, TPOT: _tpot, E2E: _e2e, CLIENT_MEM: _client_mem}


def cycle_view(h: dict[str, Any], r: int) -> dict[str, Any]:
    """Handles of a model whose crossing indicators are cyclic, ``u[r, b]``/``d[r, b]``
    with ``b = 0`` the head -> embed edge (F5), as the rows here name them: ``cu``/``cd``
    for request ``r`` are ``u[r, 0]``/``d[r, 0]``."""
    return {**h, "cu": {r: h["u"][r, 0]}, "cd": {r: h["d"][r, 0]}}


def request_rows(arrays: Arrays, r: int) -> list[LinearRow]:
    """The finite limits of request ``r`` as rows (TPOT only when ``o > 1``)."""
    decoding = arrays.output_tokens[r] > 1
    rows = [ROW_BUILDERS[res](arrays, r) for res in REQUEST_LIMITS if decoding or not res.decode_only]
    return [row for row in rows if math.isfinite(row.limit)]
