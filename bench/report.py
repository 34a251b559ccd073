"""Reports of a benchmark run: ``summary.md`` and the plots, from the records of ``results.csv``.

Definitions used throughout (and written into every summary):

* a cell is **solved** when it proved its answer: status ``optimal`` or ``infeasible``, or
  a verified solution whose gap to the instance's best known bound is at most
  :data:`SOLVED_GAP` (so a heuristic counts as solved only where it found the optimum);
* **time** is the solver's wall time; a cell with no answer (``no_solution``, ``error``)
  is charged its time limit; the **shifted geometric mean** of times ``t_i`` with shift
  ``s`` is ``exp(mean(log(t_i + s))) - s``;
* **server-work reduction** of a cell is ``1 - W / W_all_server`` and its **gain over
  greedy** ``1 - W / W_greedy``, for ``min_server_work`` instances, where ``W`` is the
  evaluator's total server work and ``W_all_server`` that of every block on the server.

Examples
--------
>>> round(shifted_geometric_mean([1.0, 100.0], shift=0.0), 6)
10.0
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.jsonio import atomic_path, write_atomic

Record = dict[str, Any]

#: Gap to the best known bound under which a verified solution counts as solved.
SOLVED_GAP = 1e-6
#: Default shift (seconds) of the shifted geometric mean of solve times.
DEFAULT_SHIFT_S = 0.01
ANSWERED = ("optimal", "feasible", "infeasible")
STATUSES = ("optimal", "feasible", "infeasible", "no_solution", "error", "unknown")
PLOTS = ("performance_profile.png", "time_vs_requests.png", "server_work.png")


def shifted_geometric_mean(values: Iterable[float], shift: float = DEFAULT_SHIFT_S) -> float:
    """``exp(mean(log(v + shift))) - shift``; NaN for no values."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return math.nan
    return float(np.exp(np.mean(np.log(array + shift))) - shift)


def is_solved(record: Record) -> bool:
    """True when the cell proved its answer (see the module docstring)."""
    if record["status"] in ("optimal", "infeasible"):
        return True
    return record["status"] == "feasible" and record.get("gap") is not None and record["gap"] <= SOLVED_GAP


def charged_time(record: Record) -> float:
    """The cell's time, or its time limit when it gave no answer."""
    if record["status"] in ANSWERED and record.get("time_s") is not None:
        return float(record["time_s"])
    return float(record["time_limit_s"])


def solver_order(records: Sequence[Record]) -> list[str]:
    """Solver specs in the order they first appear."""
    return list(dict.fromkeys(r["solver"] for r in records))


def by_solver(records: Sequence[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[record["solver"]].append(record)
    return {solver: groups[solver] for solver in solver_order(records)}


# --- server work compared with all-server and greedy -------------------------------------


def work_reduction(record: Record) -> float | None:
    """``1 - W / W_all_server`` of a solved ``min_server_work`` cell, else ``None``."""
    work, reference = record.get("server_work_s"), record.get("all_server_work_s")
    if record["objective_type"] != "min_server_work" or work is None or not reference:
        return None
    return 1.0 - work / reference


def greedy_gains(records: Sequence[Record], greedy: str = "greedy") -> dict[int, float]:
    """``1 - W / W_greedy`` by ``id(record)``, where greedy solved the same instance."""
    greedy_work = {
        r["path"]: r["server_work_s"] for r in records if r["solver"] == greedy and r.get("server_work_s") is not None
    }
    gains = {}
    for record in records:
        reference = greedy_work.get(record["path"])
        if work_reduction(record) is not None and reference:
            gains[id(record)] = 1.0 - record["server_work_s"] / reference
    return gains


# --- summary.md --------------------------------------------------------------------------


def format_value(value: float | None, spec: str = ".3g") -> str:
    """``format(value, spec)`` for a table: ``-`` for none or non-finite, never ``-0``.

    Examples
    --------
    >>> [format_value(x, ".1%") for x in (0.25, -1e-9, math.inf, None)]
    ['25.0%', '0.0%', '-', '-']
    """
    if value is None or not math.isfinite(value):
        return "-"
    text = format(value, spec)
    # A tiny negative value rounds to "-0.0%": the sign says nothing there.
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text.split("e")[0]) else text


_fmt = format_value


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def solver_rows(records: Sequence[Record], shift: float) -> list[list[str]]:
    """One summary row per solver."""
    gains = greedy_gains(records)
    rows = []
    for solver, cells in by_solver(records).items():
        counts = {status: sum(r["status"] == status for r in cells) for status in STATUSES}
        timeouts = sum(r["message"] is not None and str(r["message"]).startswith("timeout") for r in cells)
        gaps = [r["gap"] for r in cells if r.get("gap") is not None and math.isfinite(r["gap"])]
        reductions = [x for x in map(work_reduction, cells) if x is not None]
        vs_greedy = [gains[id(r)] for r in cells if id(r) in gains]
        rows.append(
            [
                solver,
                str(len(cells)),
                ", ".join(f"{x:g}" for x in sorted({r["time_limit_s"] for r in cells})),
                str(sum(map(is_solved, cells))),
                str(counts["optimal"]),
                str(counts["feasible"]),
                str(counts["infeasible"]),
                f"{counts['no_solution']} ({timeouts})",
                str(counts["error"] + counts["unknown"]),
                str(sum(r["verified"] == "yes" for r in cells)),
                _fmt(shifted_geometric_mean(map(charged_time, cells), shift), ".4g"),
                _fmt(_mean(gaps), ".2%"),
                _fmt(max(gaps) if gaps else None, ".2%"),
                _fmt(_mean(reductions), ".1%"),
                _fmt(_mean(vs_greedy), ".1%"),
                _fmt(max((r["peak_mem_mb"] for r in cells if r.get("peak_mem_mb") is not None), default=None), ".0f"),
            ]
        )
    return rows


SUMMARY_HEADER = (
    "solver",
    "cells",
    "time limit (s)",
    "solved",
    "optimal",
    "feasible",
    "infeasible",
    "no solution (timeouts)",
    "error",
    "verified",
    "time SGM (s)",
    "mean gap",
    "max gap",
    "server work vs all-server",
    "vs greedy",
    "peak MiB",
)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(records: Sequence[Record], shift: float = DEFAULT_SHIFT_S, command: str | None = None) -> str:
    """The text of ``summary.md``."""
    instances = {r["path"] for r in records}
    limits = sorted({r["time_limit_s"] for r in records})
    failures = [r for r in records if r["status"] in ("error", "unknown") or str(r.get("message") or "").startswith("timeout")]
    parts = [
        "# Benchmark summary",
        "",
        f"{len(instances)} instances x {len(solver_order(records))} solvers = {len(records)} cells; "
        f"time limit {', '.join(f'{x:g}' for x in limits)} s per cell (each cell's own: see the table), "
        "each cell in its own process.",
    ]
    if command:
        parts += ["", f"Command: `{command}`"]
    parts += [
        "",
        markdown_table(SUMMARY_HEADER, solver_rows(records, shift)),
        "",
        f"* **solved**: status optimal or infeasible, or a verified solution within {SOLVED_GAP:g} (relative) "
        "of the instance's best known bound.",
        f"* **time SGM**: shifted geometric mean of solve time, shift **{shift:g} s**; cells without an answer "
        "(no solution, error, timeout) are charged their own time limit.",
        "* **gap**: `|objective - best bound| / |objective|` (splitllm.result.gap), against the best bound any cell "
        "proved for that instance (a proven optimum included); mean and max over cells that have both.",
        "* **server work vs all-server**: mean of `1 - W / W_all_server`; **vs greedy**: mean of `1 - W / W_greedy` "
        "where greedy solved the same instance (min_server_work instances only).",
        "* **verified**: solutions the independent evaluator re-checked and accepted.",
    ]
    if failures:
        parts += ["", "## Cells that failed or timed out", ""]
        parts += [f"* `{r['instance']}` / `{r['solver']}` (limit {r['time_limit_s']:g} s): {r['status']}: {r['message']}" for r in failures[:50]]
    return "\n".join(parts) + "\n"


# --- plots -------------------------------------------------------------------------------


#: Line styles and markers cycled per solver, so that curves lying on each other stay visible.
STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _profile_ratios(records: Sequence[Record], value: Callable[[Record], float]) -> dict[str, list[float]]:
    """Per solver, for every instance, its value over the best value (``inf`` = unsolved)."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for record in records:
        table[record["path"]][record["solver"]] = value(record)
    ratios: dict[str, list[float]] = {solver: [] for solver in solver_order(records)}
    for per_solver in table.values():
        best = min(per_solver.values())
        for solver in ratios:
            v = per_solver.get(solver, math.inf)
            ratios[solver].append(1.0 if v == best and math.isfinite(v) else (v / best if best > 0 else math.inf))
    return ratios


def _time_value(record: Record) -> float:
    return max(float(record["time_s"]), 1e-6) if is_solved(record) else math.inf


def _work_value(record: Record) -> float:
    if record["objective_type"] != "min_server_work" or record.get("server_work_s") is None:
        return math.inf
    return float(record["server_work_s"])


def _inverse_admitted_value(record: Record) -> float:
    """``1 / admitted weight`` (smaller is better, as the profile wants); ``inf`` for none."""
    weight = record.get("objective")
    if record["objective_type"] != "max_admitted" or weight is None or weight <= 0:
        return math.inf
    return 1.0 / float(weight)


def objectives(records: Sequence[Record]) -> list[str]:
    """The objective types of the records, in a fixed order."""
    present = {r["objective_type"] for r in records}
    return [kind for kind in ("min_server_work", "max_admitted") if kind in present]


def _plot_profile(ax: Any, ratios: dict[str, list[float]], xlabel: str) -> None:
    finite = [x for values in ratios.values() for x in values if math.isfinite(x)]
    top = max(max(finite, default=1.0) * 1.5, 2.0)
    n = len(ratios)
    for k, (solver, values) in enumerate(ratios.items()):
        xs = np.asarray(values)
        taus = np.concatenate([[1.0], np.sort(xs[np.isfinite(xs)]), [top]])
        # Thicker lines first and distinct styles: a solver whose curve equals another's shows.
        ax.step(taus, [np.mean(xs <= tau) if xs.size else 0.0 for tau in taus], where="post", label=solver,
                ls=STYLES[k % len(STYLES)], lw=1.2 + 2.0 * (n - 1 - k) / max(n - 1, 1), alpha=0.85,
                marker=MARKERS[k % len(MARKERS)], ms=4, markevery=max(1, len(taus) // 8))
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, top)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of instances")
    ax.grid(True, alpha=0.3)


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically (readers see the old file or the new one)."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def plot_performance_profile(records: Sequence[Record], path: Path) -> None:
    """Dolan–Moré profiles: solve time (solved cells) and the objective of each type present."""
    from matplotlib.figure import Figure

    panels = [(_time_value, "time / best time (solved cells)", "Performance profile: solve time")]
    if "min_server_work" in objectives(records):
        panels.append((_work_value, "server work / least server work found", "Performance profile: server work"))
    if "max_admitted" in objectives(records):
        panels.append((_inverse_admitted_value, "most admitted weight found / admitted weight", "Performance profile: admitted weight"))
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (value, xlabel, title) in zip(axes[0], panels):
        _plot_profile(ax, _profile_ratios(records, value), xlabel)
        ax.set_title(title)
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def is_timeout(record: Record) -> bool:
    """True for a cell the runner killed at its time limit."""
    return str(record.get("message") or "").startswith("timeout")


def plot_time_vs_requests(records: Sequence[Record], path: Path) -> None:
    """Solve time against the number of requests, one series per solver.

    Filled: answered; hollow: no answer; a cross at the cell's own time limit: timed out.
    """
    from matplotlib.figure import Figure
    import matplotlib.ticker

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for k, (solver, cells) in enumerate(by_solver(records).items()):
        color, marker = f"C{k % 10}", MARKERS[k % len(MARKERS)]
        jitter = 1 + 0.04 * (k - len(solver_order(records)) / 2)
        groups = (
            ([r for r in cells if r["status"] in ANSWERED], dict(marker=marker, facecolors=color, edgecolors=color), solver),
            ([r for r in cells if r["status"] not in ANSWERED and not is_timeout(r)],
             dict(marker=marker, facecolors="none", edgecolors=color), f"{solver} (no answer)"),
            ([r for r in cells if is_timeout(r)], dict(marker="x", c=color), f"{solver} (timeout)"),
        )
        for chosen, style, label in groups:
            if chosen:
                ax.scatter([r["requests"] * jitter for r in chosen], [max(charged_time(r), 1e-5) for r in chosen],
                           label=label, s=26, alpha=0.8, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("requests in the instance")
    ax.set_ylabel("solve time (s; timeouts at their limit)")
    ax.set_title("Solve time vs instance size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def admitted_shares(records: Sequence[Record]) -> dict[int, float]:
    """Admitted weight over the most any cell admitted on the instance, by ``id(record)``."""
    kept = [r for r in records if r["objective_type"] == "max_admitted" and r.get("objective") is not None]
    best: dict[str, float] = {}
    for record in kept:
        best[record["path"]] = max(best.get(record["path"], 0.0), float(record["objective"]))
    return {id(r): float(r["objective"]) / best[r["path"]] for r in kept if best[r["path"]] > 0}


def objective_panels(records: Sequence[Record]) -> list[tuple[str, dict[str, list[float]]]]:
    """The panels of ``server_work.png`` that have data: (title, values in % per solver)."""
    gains, shares = greedy_gains(records), admitted_shares(records)
    groups = by_solver(records)
    candidates = (
        ("Server work saved vs all-server (%)", {s: [100 * x for x in map(work_reduction, cells) if x is not None] for s, cells in groups.items()}),
        ("Server work saved vs greedy (%)", {s: [100 * gains[id(r)] for r in cells if id(r) in gains] for s, cells in groups.items()}),
        ("Admitted weight, % of the most admitted", {s: [100 * shares[id(r)] for r in cells if id(r) in shares] for s, cells in groups.items()}),
    )
    return [(title, {s: v for s, v in data.items() if v}) for title, data in candidates if any(data.values())]


def plot_server_work(records: Sequence[Record], path: Path) -> bool:
    """Box plots per solver of the objective: server work saved (vs all-server, vs greedy)
    for ``min_server_work``, admitted weight for ``max_admitted``.

    Only panels with data are drawn; with none, no file (a stale one is removed) and False.
    """
    from matplotlib.figure import Figure

    panels = objective_panels(records)
    if not panels:
        path.unlink(missing_ok=True)
        return False
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (title, data) in zip(axes[0], panels):
        ax.boxplot(list(data.values()), showmeans=True)
        ax.set_xticks(range(1, len(data) + 1), list(data), rotation=20, fontsize=8)
        ax.set_title(title)
        ax.axhline(100 if title.startswith("Admitted") else 0, color="grey", lw=0.8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def write_report(out: str | Path, records: Sequence[Record], shift: float = DEFAULT_SHIFT_S, command: str | None = None) -> list[Path]:
    """Write ``summary.md`` and the PNG plots into ``out``; return the paths written."""
    out = Path(out)
    write_atomic(out / "summary.md", summary_markdown(records, shift, command))
    plotters = (plot_performance_profile, plot_time_vs_requests, plot_server_work)
    written = [out / "summary.md"]
    for name, plot in zip(PLOTS, plotters):
        if plot(records, out / name) is not False:
            written.append(out / name)
    return written
