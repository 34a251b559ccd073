"""A picture of a placement: requests x blocks, client or server, and each request's SLO slack.

One row per request (block 0, the embedding, on the left), coloured by where each block
runs; rejected requests are a grey row marked "rejected". Beside each row, a bar of its
*slack*: the least relative slack ``(limit - value) / limit`` over the request's finite
limits (TTFT, TPOT, E2E, client memory), from the evaluator's metrics; 0 means a limit is
met exactly. Up to ``max_rows`` requests (default 200) are drawn; beyond that an evenly
spaced subsample is, and the title says so.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.registry import solve
>>> inst = load_instance(example_path("tiny"))
>>> result = solve(inst, "dp")
>>> least_slack(inst, result.evaluation).round(3).tolist()  # chat: TTFT 0.39 of 0.5; classify: E2E 0.22 of 0.23
[0.22, 0.043]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import SplitLLMError
from splitllm.evaluator import Evaluation, limit_pairs
from splitllm.instance import Instance
from splitllm.jsonio import atomic_path
from splitllm.result import SolveResult

CLIENT, SERVER, REJECTED = "#4c72b0", "#dd8452", "#d0d0d0"
#: Rows drawn at most; more requests are subsampled evenly.
MAX_ROWS = 200


def least_slack(instance: Instance, evaluation: Evaluation) -> NDArray[np.float64]:
    """Per request, the least ``(limit - value) / limit`` over its finite limits
    (``inf`` when it has none, NaN when rejected)."""
    rows = np.arange(instance.n_requests)
    slack = np.full(instance.n_requests, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for value, limit in limit_pairs(instance.arrays, rows, evaluation.metrics).values():
            relative = np.where(np.isfinite(limit), (limit - value) / np.where(limit > 0, limit, 1.0), np.inf)
            slack = np.fmin(slack, relative)
    return np.where(evaluation.admitted, slack, np.nan)


def shown_rows(n: int, max_rows: int = MAX_ROWS) -> NDArray[np.int64]:
    """Which requests are drawn: all, or ``max_rows`` evenly spaced ones.

    >>> shown_rows(5).tolist(), shown_rows(1000, 4).tolist()
    ([0, 1, 2, 3, 4], [0, 333, 666, 999])
    """
    return np.arange(n) if n <= max_rows else np.unique(np.linspace(0, n - 1, max_rows).astype(np.int64))


def plot_placement(instance: Instance, result: SolveResult, path: str | Path, max_rows: int = MAX_ROWS) -> Path:
    """Draw ``result`` (verified: it has an evaluation) to the PNG file ``path``, atomically."""
    if result.evaluation is None or result.placements is None:
        raise SplitLLMError(f"--plot: status {result.status.value} has no placement to draw")
    from matplotlib.figure import Figure  # on use: it costs every command's start
    rows = shown_rows(instance.n_requests, max_rows)
    few = len(rows) <= 60  # room for labels in every row
    figure = Figure(figsize=(10, 2.5 + (0.18 if few else 0.08) * len(rows)), layout="constrained")
    grid, bars = figure.subplots(1, 2, sharey=True, width_ratios=[4, 1])
    _draw_grid(grid, instance, result, rows)
    _draw_slack(bars, least_slack(instance, result.evaluation)[rows])
    figure.suptitle(_title(instance, result, rows))
    figure.legend(handles=_legend(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _draw_grid(ax: Any, instance: Instance, result: SolveResult, rows: NDArray[np.int64]) -> None:
    from matplotlib.colors import ListedColormap

    admitted = result.evaluation.admitted[rows]  # type: ignore[union-attr]
    codes = np.where(admitted[:, None], result.placements[rows].astype(int), 2)  # type: ignore[index]
    ax.imshow(codes, aspect="auto", interpolation="nearest", cmap=ListedColormap([CLIENT, SERVER, REJECTED]), vmin=0, vmax=2)
    for y in np.nonzero(~admitted)[0] if len(rows) <= 60 else []:
        ax.text((instance.n_blocks - 1) / 2, y, "rejected", ha="center", va="center", fontsize=7, color="black")
    blocks = instance.model.blocks
    step = max(1, len(blocks) // 20)
    ax.set_xticks(range(0, len(blocks), step), [f"{b}\n{blocks[b].kind}" for b in range(0, len(blocks), step)], fontsize=7)
    ystep = max(1, len(rows) // 40)
    ax.set_yticks(range(0, len(rows), ystep), [str(instance.requests[r].id) for r in rows[::ystep]], fontsize=7)
    ax.set_xlabel("block (embedding on the left, head on the right)")
    ax.set_ylabel("request")
    if len(rows) <= 60:  # thin lines between rows, so neighbours of one colour stay apart
        ax.hlines(np.arange(len(rows) - 1) + 0.5, -0.5, instance.n_blocks - 0.5, colors="white", linewidth=0.8)


def _legend() -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(color=CLIENT, label="block on the client"), Patch(color=SERVER, label="block on the server"), Patch(color=REJECTED, label="request rejected")]


def _draw_slack(ax: Any, slack: NDArray[np.float64]) -> None:
    shown = np.where(np.isfinite(slack), slack, 0.0)
    colours = np.where(slack < 0, "#c44e52", np.where(slack < 0.05, "#e1a03a", "#55a868"))
    ax.barh(np.arange(len(slack)), shown, color=colours, height=0.8)
    for y in np.nonzero(np.isnan(slack))[0] if len(slack) <= 60 else []:
        ax.text(0, y, "x", ha="left", va="center", fontsize=7)
    for y in np.nonzero(np.isposinf(slack))[0]:
        ax.text(0, y, "no limit", ha="left", va="center", fontsize=6)
    if len(slack) <= 40:
        for y, s in enumerate(slack):
            if np.isfinite(s):
                ax.text(s, y, f" {100 * s:.0f}%", va="center", fontsize=7)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(min(0.0, float(np.nanmin(shown, initial=0.0))) - 0.02, max(1.0, float(np.nanmax(shown, initial=0.0))) * 1.15)
    ax.set_xlabel("least SLO slack\n(limit - value) / limit")
    ax.tick_params(axis="y", left=False)


def _title(instance: Instance, result: SolveResult, rows: NDArray[np.int64]) -> str:
    e = result.evaluation
    assert e is not None
    head = (
        f"{instance.name or 'instance'}: {result.solver}, {result.status.value}; admitted {int(e.admitted.sum())}/{instance.n_requests}, "
        f"server work {e.server_work:.4g} s"
    )
    if len(rows) < instance.n_requests:
        head += f"\nshowing {len(rows)} of {instance.n_requests} requests, evenly spaced"
    return head
