"""The benchmark runner (DESIGN §6): instances x solvers, one process and one time limit a cell.

Every cell runs ``python -m splitllm.bench.cell`` in a process of its own (see
:mod:`splitllm.bench.cell`), in a new session so that the whole process group can be
killed: a cell that overruns its time limit by more than the grace is killed and recorded
as ``no_solution`` with a ``timeout`` message; a child that dies is recorded as ``error``
with its exit code and last line of stderr. Either way only that cell is lost.

Cells run on ``jobs`` local threads (each waiting on its own child process) or, given a
scheduler address, as tasks on an existing Dask distributed cluster (each task still
starts its own child process; the instance paths must be readable by the workers).

``results.csv`` in the output folder is rewritten atomically after every cell, so an
interrupted run loses nothing recorded; running again with the same output folder skips
the cells (instance path, solver spec) already there.

The gap column is the gap to the *best known bound* of the instance, computed once all
cells are in: under ``min_server_work`` the largest lower bound any cell proved (a proven
optimum is its own bound), under ``max_admitted`` the smallest upper bound, and then
:func:`splitllm.result.gap` (the one definition) of each cell's objective against it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from splitllm.errors import InputError
from splitllm.jsonio import read_json, write_atomic
from splitllm.result import gap

#: Columns of ``results.csv``, in order.
COLUMNS = (
    "instance",
    "path",
    "requests",
    "blocks",
    "objective_type",
    "solver",
    "time_limit_s",
    "status",
    "objective",
    "bound",
    "best_bound",
    "gap",
    "time_s",
    "wall_s",
    "peak_mem_mb",
    "verified",
    "server_work_s",
    "all_server_work_s",
    "message",
)
FLOAT_COLUMNS = frozenset(
    {"time_limit_s", "objective", "bound", "best_bound", "gap", "time_s", "wall_s", "peak_mem_mb", "server_work_s", "all_server_work_s"}
)
INT_COLUMNS = frozenset({"requests", "blocks"})
RESULTS_CSV = "results.csv"
INSTANCE_FORMAT = "splitllm/instance"

Record = dict[str, Any]


@dataclass(frozen=True)
class Cell:
    """One instance x solver pair to run, with what the records need to know of the instance."""

    path: str
    instance: str
    requests: int
    blocks: int
    objective_type: str
    solver: str
    time_limit_s: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.solver)


# --- finding instances -------------------------------------------------------------------


def _is_instance(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == INSTANCE_FORMAT


def find_instances(paths: Iterable[str | Path]) -> list[Path]:
    """Instance files named directly, or found (recursively, sorted) in the folders given.

    Files in a folder that are not instance files (a suite's manifest, say) are skipped;
    a file named directly must be one.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*.json")) if _is_instance(read_json(p))]
        elif not _is_instance(read_json(path)):
            raise InputError(str(path), f"not an instance file (\"format\": \"{INSTANCE_FORMAT}\")")
        else:
            found.append(path)
    if not found:
        raise InputError(", ".join(map(str, paths)), "no instance files found")
    return list(dict.fromkeys(found))


def make_cells(paths: list[Path], solvers: list[str], time_limit: float) -> list[Cell]:
    """Every instance x solver cell, instances in the order given."""
    cells = []
    for path in paths:
        data = read_json(path)
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        for solver in solvers:
            cells.append(
                Cell(
                    path=str(path),
                    instance=str(data.get("name") or path.stem),
                    requests=len(data.get("requests") or []),
                    blocks=len(model.get("blocks") or []),
                    objective_type=str(data.get("objective", "")),
                    solver=solver,
                    time_limit_s=float(time_limit),
                )
            )
    return cells


# --- one cell ----------------------------------------------------------------------------


def kill_after(time_limit: float, grace: float) -> float:
    """Seconds a cell may run before it is killed: the limit, 10% of it, and the grace."""
    return 1.1 * time_limit + grace


def _stderr_tail(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def _crash_message(returncode: int, stderr: bytes) -> str:
    how = f"killed by signal {signal.Signals(-returncode).name}" if returncode < 0 else f"exit code {returncode}"
    tail = _stderr_tail(stderr)
    return f"crashed ({how})" + (f": {tail}" if tail else "")


def run_cell(cell: Cell, grace: float = 10.0, plugins: tuple[str, ...] = ()) -> Record:
    """Run one cell in a child process and return its record (all columns but the gaps)."""
    record: Record = {**asdict(cell), "objective": None, "bound": None, "verified": "-", "message": ""}
    spec = {"path": cell.path, "solver": cell.solver, "time_limit": cell.time_limit_s, "plugins": list(plugins)}
    with tempfile.TemporaryDirectory(prefix="splitllm-cell-") as tmp:
        spec_path, record_path = Path(tmp, "spec.json"), Path(tmp, "record.json")
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        command = [sys.executable, "-m", "splitllm.bench.cell", str(spec_path), str(record_path)]
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        limit = kill_after(cell.time_limit_s, grace)
        try:
            _, stderr = child.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            record.update(status="no_solution", message=f"timeout: killed after {limit:.3g} s", time_s=cell.time_limit_s)
            record["wall_s"] = time.perf_counter() - start
            return record
        record["wall_s"] = time.perf_counter() - start
        if child.returncode != 0 or not record_path.exists():
            record.update(status="error", message=_crash_message(child.returncode, stderr), time_s=record["wall_s"])
            return record
        record.update(json.loads(record_path.read_text(encoding="utf-8")))
    record.setdefault("time_s", record["wall_s"])
    return record


# --- results.csv -------------------------------------------------------------------------


def _cell_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_results(path: Path, records: list[Record]) -> None:
    """Write the records as CSV (columns :data:`COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in records:
        writer.writerow([_cell_value(record.get(column)) for column in COLUMNS])
    write_atomic(path, buffer.getvalue())


def _parse_value(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in FLOAT_COLUMNS:
        return float(text)
    if column in INT_COLUMNS:
        return int(text)
    return text


def read_results(path: Path) -> list[Record]:
    """Records of a ``results.csv`` (empty cells read as ``None``); no file, no records."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and set(COLUMNS) - set(rows[0]):
        raise InputError(str(path), f"not a results file of this runner (missing {sorted(set(COLUMNS) - set(rows[0]))})")
    return [{column: _parse_value(column, row.get(column, "")) for column in COLUMNS} for row in rows]


def normalise(record: Record) -> Record:
    """The record as :func:`read_results` would read it back (same columns, same types)."""
    return {column: _parse_value(column, _cell_value(record.get(column))) for column in COLUMNS}


# --- gaps to the best known bound --------------------------------------------------------


def _cell_bounds(record: Record) -> list[float]:
    """Bounds a record proves: its own bound, and its objective when proven optimal."""
    if record["status"] == "error":
        return []
    bounds = [record["bound"]] if record.get("bound") is not None else []
    if record["status"] == "optimal" and record.get("objective") is not None:
        bounds.append(record["objective"])
    return bounds


def best_bounds(records: list[Record]) -> dict[str, float]:
    """Best known bound of each instance (by path) over all its cells."""
    pick = {"max_admitted": min}
    best: dict[str, float] = {}
    for record in records:
        for bound in _cell_bounds(record):
            path = record["path"]
            choose = pick.get(record["objective_type"], max)
            best[path] = choose(best[path], bound) if path in best else bound
    return best


def add_gaps(records: list[Record]) -> list[Record]:
    """Fill ``best_bound`` and ``gap`` of every record (in place) and return the records."""
    best = best_bounds(records)
    for record in records:
        record["best_bound"] = best.get(record["path"])
        record["gap"] = gap(record.get("objective"), record["best_bound"])
    return records


# --- running many cells ------------------------------------------------------------------


def _local_results(cells: list[Cell], run: Callable[[Cell], Record], jobs: int) -> Iterator[Record]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, cell) for cell in cells]
        for future in as_completed(futures):
            yield future.result()


def _dask_results(cells: list[Cell], grace: float, plugins: tuple[str, ...], address: str) -> Iterator[Record]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(address) as client:
        futures = client.map(run_cell, cells, grace=grace, plugins=plugins, pure=False)
        for future in dask_completed(futures):
            yield future.result()


def run_bench(
    paths: Iterable[str | Path],
    solvers: list[str],
    out: str | Path,
    time_limit: float = 60.0,
    *,
    jobs: int = 1,
    grace: float = 10.0,
    plugins: tuple[str, ...] = (),
    dask_scheduler: str | None = None,
    progress: bool = True,
) -> list[Record]:
    """Run every cell not yet in ``out/results.csv``; return all records, gaps filled in.

    Solver specs are checked (known and installed) before anything runs.
    """
    from splitllm.bench.cell import check_solver_specs

    check_solver_specs(solvers, list(plugins))
    out = Path(out)
    results_path = out / RESULTS_CSV
    records = read_results(results_path)
    done = {(r["path"], r["solver"]) for r in records}
    cells = [c for c in make_cells(find_instances(paths), solvers, time_limit) if c.key not in done]
    if dask_scheduler is not None:
        stream = _dask_results(cells, grace, plugins, dask_scheduler)
    else:
        stream = _local_results(cells, lambda cell: run_cell(cell, grace, plugins), jobs)
    from tqdm import tqdm

    with tqdm(total=len(cells), desc="bench", unit="cell", disable=not progress or not cells) as bar:
        for record in stream:
            records.append(normalise(record))
            write_results(results_path, add_gaps(records))
            bar.set_postfix_str(f"{record['instance']} / {record['solver']}: {record['status']}", refresh=False)
            bar.update()
    records.sort(key=lambda r: (r["path"], r["solver"]))
    write_results(results_path, add_gaps(records))
    return records
