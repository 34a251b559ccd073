"""``dp-grid``: the SplitLLM paper's DP, latency budgets discretised on a grid.

The paper minimises server work per (block, side, latency budget) with the budget on a
grid. Here every limit of the request that can bind (TTFT, TPOT, E2E, client memory:
a limit binds when the worst placement breaks it) gets one grid axis with cells of
``grid_step`` times that limit, and the DP runs over the F1 graph in topological order
with one table per node: least server work for each number of cells used so far.

Each edge's cost is rounded *up* to whole cells, so every placement the grid accepts
truly meets its limits, but the grid can lose the optimum or find no placement for a
feasible request. To say when, the same DP runs again with costs rounded *down*: that
grid accepts every truly feasible placement, so its least work is a lower bound. When
the two meet the answer is proven optimal; when the rounded-down grid finds nothing the
request is proven infeasible. ``bound=False`` skips that second pass (the paper's DP alone).

The time limit is checked between distinct requests and, within a request's DP, between
nodes of the graph, so a fine grid cannot run long past it (``no_solution`` then).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> res = solve(load_instance(example_path("tiny")), "dp-grid", grid_step=0.01)
>>> res.status.value, round(res.objective, 6)
('optimal', 0.4)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import numpy as np

from splitllm.deadline import TimeLimitReached, check, deadline_in
from splitllm.errors import SplitLLMError
from splitllm.formulations import chain_graph
from splitllm.instance import Arrays, Instance
from splitllm.options import Option
from splitllm.registry import register
from splitllm.resources import BY_KEY
from splitllm.result import SolveResult, Status
from splitllm.solvers.per_request import RequestOutcome, solve_independently

#: Largest table (cells per node) the DP will allocate; a finer grid is refused.
MAX_CELLS = 2_000_000
Rounding = Callable[[np.ndarray], np.ndarray]


def _edge_resource(data: dict[str, float], name: str, steps: int) -> float:
    weight = chain_graph.edge_weight(BY_KEY[name], steps)
    return data[weight] if isinstance(weight, str) else weight(None, None, data)


def binding_limits(g: nx.DiGraph, limits: dict[str, float], steps: int) -> dict[str, float]:
    """The limits some placement breaks (the others need no grid axis)."""
    out = {}
    for name, limit in limits.items():
        if not math.isfinite(limit) or (BY_KEY[name].decode_only and steps == 0):
            continue
        if _longest(g, name, steps) > limit:
            out[name] = limit
    return out


def _longest(g: nx.DiGraph, name: str, steps: int) -> float:
    best: dict[object, float] = {chain_graph.SRC: 0.0}
    for node in nx.topological_sort(g):
        for _, succ, data in g.out_edges(node, data=True):
            value = best[node] + _edge_resource(data, name, steps)
            if value > best.get(succ, -math.inf):
                best[succ] = value
    return best[chain_graph.SINK]


def grid_dp(
    g: nx.DiGraph, limits: dict[str, float], steps: int, grid_step: float, rounding: Rounding, deadline: float | None = None
) -> tuple[float, list[object] | None]:
    """Least server work over the grid, and its src -> sink path (``None`` if none fits).

    Raises :class:`~splitllm.deadline.TimeLimitReached` past ``deadline`` (checked per node).
    """
    axes = binding_limits(g, limits, steps)
    cells = tuple(int(math.floor(1 / grid_step + 1e-9)) + 1 for _ in axes)
    if math.prod(cells) > MAX_CELLS:
        raise SplitLLMError(f"dp-grid: {math.prod(cells)} cells per node over {len(axes)} axes; use a coarser grid_step")
    cell = {name: grid_step * limit for name, limit in axes.items()}
    tables: dict[object, np.ndarray] = {chain_graph.SRC: np.full(cells, np.inf)}
    tables[chain_graph.SRC][(0,) * len(cells)] = 0.0
    order = list(nx.topological_sort(g))
    for node in order[1:]:
        check(deadline, "running the grid DP")
        table = np.full(cells, np.inf)
        for pred, _, data in g.in_edges(node, data=True):
            shifted = _shift(tables[pred], _units(data, cell, steps, rounding))
            np.minimum(table, shifted + data["work"], out=table)
        tables[node] = table
    sink = tables[chain_graph.SINK]
    if not np.isfinite(sink).any():
        return math.inf, None
    index = np.unravel_index(int(np.argmin(sink)), sink.shape)
    return float(sink[index]), _backtrack(g, tables, cell, steps, rounding, tuple(int(i) for i in index))


def _units(data: dict[str, float], cell: dict[str, float], steps: int, rounding: Rounding) -> tuple[int, ...]:
    """Whole cells an edge uses on each axis. A cell of size 0 (a limit of 0) fits only
    what costs nothing; counts are capped at :data:`MAX_CELLS` (past any axis's end)."""
    if not cell:
        return ()
    values = np.array([_edge_resource(data, name, steps) for name in cell])
    sizes = np.array(list(cell.values()))
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(values > 0, values / sizes, 0.0)
    return tuple(int(u) for u in np.minimum(rounding(raw), MAX_CELLS))


def _shift(table: np.ndarray, used: tuple[int, ...]) -> np.ndarray:
    """``out[i + used] = table[i]``; cells pushed past the end of an axis are dropped."""
    out = np.full(table.shape, np.inf)
    if any(u >= n for u, n in zip(used, table.shape)):
        return out
    dst = tuple(slice(u, None) for u in used)
    src = tuple(slice(0, n - u) for u, n in zip(used, table.shape))
    out[dst] = table[src]
    return out


def _backtrack(
    g: nx.DiGraph, tables: dict[object, np.ndarray], cell: dict[str, float], steps: int, rounding: Rounding, index: tuple[int, ...]
) -> list[object]:
    """Walk back from the sink through predecessors whose table entry explains each value."""
    path = [chain_graph.SINK]
    node = chain_graph.SINK
    while node != chain_graph.SRC:
        value = tables[node][index]
        for pred, _, data in g.in_edges(node, data=True):
            used = _units(data, cell, steps, rounding)
            prev = tuple(i - u for i, u in zip(index, used))
            if min(prev, default=0) >= 0 and tables[pred][prev] + data["work"] == value:
                node, index = pred, prev
                break
        else:  # pragma: no cover - the table was built from these very edges
            raise AssertionError("dp-grid backtrack lost its path")
        path.append(node)
    return path[::-1]


def solve_request(arrays: Arrays, r: int, grid_step: float = 0.01, bound: bool = True, deadline: float | None = None) -> RequestOutcome:
    """The grid DP for request ``r``, with the rounded-down pass as a proof when ``bound``."""
    g = chain_graph.build(arrays, r)
    limits = {key: float(limit) for key, limit in arrays.request_limits(r).items()}
    steps = int(arrays.output_tokens[r]) - 1
    work, path = grid_dp(g, limits, steps, grid_step, np.ceil, deadline)
    lower = grid_dp(g, limits, steps, grid_step, np.floor, deadline)[0] if bound else None
    info = {"grid_lower_bound": lower}
    if lower is not None and math.isinf(lower):
        return RequestOutcome("infeasible", bound=math.inf, info=info)
    if path is None:
        return RequestOutcome("unsolved", bound=lower, info=info)
    placement = np.array([node[2] == chain_graph.SERVER for node in path[1:-1]])  # type: ignore[index]
    proven = lower is not None and work <= lower
    return RequestOutcome("optimal" if proven else "feasible", placement, work, lower, info)


@register(
    "dp-grid",
    "the paper's DP: latency budgets on a grid (option grid_step, fraction of each limit)",
    options=(
        Option("grid_step", "number", 0.01, "grid step, a fraction of each latency limit", low=0, high=1, low_open=True),
        Option("bound", "boolean", True, "also run the rounded-down grid, a proven lower bound"),
    ),
)
def solve(instance: Instance, *, time_limit: float | None = None, grid_step: float = 0.01, bound: bool = True) -> SolveResult:
    if not 0 < grid_step <= 1:
        raise SplitLLMError(f"grid_step: must be in (0, 1] (a fraction of each limit), got {grid_step}")
    deadline = deadline_in(time_limit)
    try:
        result = solve_independently(instance, "dp-grid", lambda arrays, r: solve_request(arrays, r, grid_step, bound, deadline), time_limit)
    except TimeLimitReached as stop:
        return SolveResult("dp-grid", Status.NO_SOLUTION, message=str(stop))
    if bound and "request_status" in result.info:
        result.message = "; ".join(filter(None, [result.message, grid_report(result.info)]))
    return result


def grid_report(info: dict[str, list]) -> str:  # type: ignore[type-arg]
    """What the rounded-down pass says about the grid's answers, request by request.

    Examples
    --------
    >>> grid_report({"request_status": ["optimal", "feasible", "unsolved"],
    ...              "request_work": [1.0, 2.0, float("nan")], "request_bound": [1.0, 1.5, 0.7]})
    'grid: 1 of 3 requests proven optimal; 1 may have lost the optimum (by at most 25% of their work); 1 got no placement from the grid though the rounded-down grid has one (it may have wrongly found them infeasible)'
    """
    status, work, lower = info["request_status"], info["request_work"], info["request_bound"]
    lost = [(w - b) / w for s, w, b in zip(status, work, lower) if s == "feasible" and w > 0]
    parts = [f"grid: {status.count('optimal')} of {len(status)} requests proven optimal"]
    if lost:
        parts.append(f"{len(lost)} may have lost the optimum (by at most {100 * max(lost):.3g}% of their work)")
    if status.count("unsolved"):
        parts.append(
            f"{status.count('unsolved')} got no placement from the grid though the rounded-down grid has one "
            "(it may have wrongly found them infeasible)"
        )
    return "; ".join(parts)
