"""The independent evaluator: the cost model's formulas (docs/cost-model.md), and nothing else.

No solver code lives or is imported here. Every solver's answer goes through
:func:`evaluate` before it is reported, and ``splitllm check`` runs it on any solution
file. Placements are boolean rows, ``True`` where the block runs on the server.

Examples
--------
>>> import numpy as np
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> m = request_metrics(inst.arrays, np.array([0]), np.array([[True, True, True]]))
>>> round(float(m.ttft[0]), 6)  # prompt up, three server blocks, first token down
0.3105
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Arrays, Instance
from splitllm.resources import COUPLED, KV, REQUEST_LIMITS, RESOURCES, WORK, Objective, Resource, exceeds

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["FIGURES", "Evaluation", "Metrics", "evaluate", "exceeds", "feasible_mask", "request_metrics", "request_violations"]


class Metrics:
    """Per-placement figures, one per resource of :data:`splitllm.resources.RESOURCES`,
    read by its ``key`` (``m.ttft``, ``m.of(TTFT)``); ``tpot`` is NaN when ``o = 1``.
    Immutable."""

    __slots__ = ("figures",)
    figures: dict[str, Array]

    def __init__(self, **figures: Array) -> None:
        missing = [r.key for r in RESOURCES if r.key not in figures]
        if missing:
            raise TypeError(f"Metrics needs a figure for every resource, missing {', '.join(missing)}")
        object.__setattr__(self, "figures", figures)

    def __getattr__(self, key: str) -> Array:
        if key == "figures":  # not set yet (while unpickling): no recursion
            raise AttributeError(key)
        try:
            return self.figures[key]
        except KeyError:
            raise AttributeError(f"Metrics has no figure {key!r}") from None

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Metrics is immutable")

    def __reduce__(self) -> tuple[Callable[..., Metrics], tuple[dict[str, Array]]]:
        return _metrics_of, (self.figures,)

    def of(self, resource: Resource) -> Array:
        """The figure of ``resource``."""
        return self.figures[resource.key]

    def where(self, mask: BoolArray) -> Metrics:
        """These figures where ``mask`` holds, NaN elsewhere."""
        return Metrics(**{key: np.where(mask, value, np.nan) for key, value in self.figures.items()})


def _metrics_of(figures: dict[str, Array]) -> Metrics:
    return Metrics(**figures)


class Placed:
    """Placements ``x`` of requests ``rows`` and the parts every figure is built from:
    crossings, TTFT and one decode step (all vectorised over the placements)."""

    def __init__(self, arrays: Arrays, rows: NDArray[np.int64], placements: BoolArray) -> None:
        a = self.arrays = arrays
        self.rows = rows
        x = self.x = np.asarray(placements, dtype=bool)
        n_up = (x[:, 1:] & ~x[:, :-1]).sum(axis=1)
        n_down = (~x[:, 1:] & x[:, :-1]).sum(axis=1)
        first, last = x[:, 0], x[:, -1]
        self.ttft = (
            self.by_side(a.server_prefill, a.client_prefill)
            + _times(first, a.prompt_up[rows])
            + _times(n_up, a.act_up_prefill[rows])
            + _times(n_down, a.act_down_prefill[rows])
            + _times(last, a.first_token_down[rows])
        )
        cycle = _times(first & ~last, a.token_up_decode[rows]) + _times(~first & last, a.token_down_decode[rows])
        self.step = (self.by_side(a.server_decode, a.client_decode) + _times(n_up, a.act_up_decode[rows])
                     + _times(n_down, a.act_down_decode[rows]) + cycle)
        self.steps = a.output_tokens[rows] - 1

    def by_side(self, server: Array, client: Array) -> Array:
        """Sum over blocks of ``server`` where a block runs on the server, ``client`` elsewhere
        (per-block arrays, requests x blocks; use 0 for a side that costs nothing)."""
        rows = self.rows
        return np.where(self.x, np.asarray(server)[rows] if np.ndim(server) else server,
                        np.asarray(client)[rows] if np.ndim(client) else client).sum(axis=1)


#: How the evaluator computes each figure of :data:`splitllm.resources.RESOURCES` (by key).
FIGURES: dict[str, Callable[[Placed], Array]] = {
    "work": lambda p: p.by_side(p.arrays.work, 0.0),
    "kv": lambda p: p.by_side(p.arrays.kv, 0.0),
    "ttft": lambda p: p.ttft,
    "tpot": lambda p: np.where(p.steps > 0, p.step, np.nan),
    "e2e": lambda p: p.ttft + _times(p.steps, p.step),
    "client_mem": lambda p: p.by_side(0.0, p.arrays.client_mem),
}


def request_metrics(arrays: Arrays, rows: NDArray[np.int64], placements: BoolArray) -> Metrics:
    """Figures of placement ``placements[i]`` for request ``rows[i]`` (vectorised)."""
    placed = Placed(arrays, rows, placements)
    return Metrics(**{res.key: FIGURES[res.key](placed) for res in RESOURCES})


def _times(count: NDArray[np.integer] | BoolArray, cost: Array) -> Array:
    """``count * cost`` that is 0 where ``count`` is 0, whatever ``cost`` is (never inf * 0)."""
    return count * np.where(count > 0, cost, 0.0)


def limit_pairs(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> dict[Resource, tuple[Array, Array]]:
    """Each per-request limit: (figure, limit) per placement.

    TPOT of a single-pass request (NaN) counts as 0: it has no decode steps to limit.
    """
    pairs = {}
    for res in REQUEST_LIMITS:
        value = m.of(res)
        if res.decode_only:
            value = np.where(arrays.output_tokens[rows] > 1, value, 0.0)
        pairs[res] = (value, np.asarray(arrays.limit(res))[rows])
    return pairs


def _broken(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> dict[Resource, BoolArray]:
    return {res: exceeds(value, limit) for res, (value, limit) in limit_pairs(arrays, rows, m).items()}


def request_violations(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> list[list[Resource]]:
    """For each placement, the per-request limits it breaks."""
    broken = _broken(arrays, rows, m)
    return [[res for res, bad in broken.items() if bad[i]] for i in range(len(rows))]


def feasible_mask(arrays: Arrays, rows: NDArray[np.int64], m: Metrics) -> BoolArray:
    """True where a placement meets its request's SLOs and client memory (and every
    figure is finite)."""
    return ~np.any(list(_broken(arrays, rows, m).values()), axis=0)


@dataclass(frozen=True)
class Evaluation:
    """A whole solution re-evaluated: per-request metrics (NaN when rejected) and totals."""

    admitted: BoolArray
    metrics: Metrics
    violations: list[str]
    admitted_weight: float
    totals: dict[str, float]

    @property
    def server_work(self) -> float:
        """Total server work of the admitted requests, seconds."""
        return self.totals[WORK.key]

    @property
    def server_kv(self) -> float:
        """Total server KV of the admitted requests, bytes."""
        return self.totals[KV.key]

    @property
    def feasible(self) -> bool:
        return not self.violations

    def objective(self, objective: Objective) -> float:
        """The solution's objective figure: admitted weight or total server work."""
        return self.admitted_weight if objective.maximize else self.server_work


def evaluate(instance: Instance, placements: BoolArray, admitted: BoolArray) -> Evaluation:
    """Re-evaluate a whole solution; ``violations`` says what breaks, naming the request.

    ``placements`` is (requests x blocks); rows of rejected requests are ignored.
    When every request must be served (``min_server_work``), every request must be admitted.
    """
    a = instance.arrays
    admitted = np.asarray(admitted, dtype=bool)
    rows = np.arange(instance.n_requests)
    m = request_metrics(a, rows, np.asarray(placements, dtype=bool)).where(admitted)
    violations: list[str] = []
    for i, broken in enumerate(request_violations(a, rows, m)):
        if admitted[i] and broken:
            violations += [f"requests[{i}] (id {instance.requests[i].id!r}): {describe_violation(a, m, i, res)}" for res in broken]
    if instance.objective.serves_all and not admitted.all():
        missing = np.nonzero(~admitted)[0]
        violations.append(f"requests[{missing[0]}]: not served, but objective {instance.objective} serves every request")
    totals = {res.key: float(m.of(res)[admitted].sum()) for res in COUPLED}
    for res in COUPLED:
        if exceeds(totals[res.key], a.limit(res)):
            violations.append(f"{res.limit_field}: total {res.label} {totals[res.key]:.6g} {res.unit} > {a.limit(res):.6g} {res.unit}")
    return Evaluation(admitted, m, violations, float(a.weight[admitted].sum()), totals)


def describe_violation(arrays: Arrays, m: Metrics, i: int, res: Resource) -> str:
    """``'ttft_s 1.2 s > SLO 1 s (by 0.2 s)'`` for request ``i`` and limit ``res``."""
    value, limit = float(m.of(res)[i]), float(np.asarray(arrays.limit(res))[i])
    return f"{res.label} {value:.6g} {res.unit} > {res.limit_word} {limit:.6g} {res.unit} (by {value - limit:.3g} {res.unit})"
