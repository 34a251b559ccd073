"""The benchmark runner: instances x solvers, one process and one time limit a cell.

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
the cells already there with the same instance path and contents, solver, solver options
and time limit. A cell recorded under another time limit (or other options written differently,
see :func:`solver_identity`) is run again and its new record replaces the old one.

A run holds an exclusive lock on ``OUT/.splitllm-bench.lock`` (a second run on the same
folder stops with an error); on SIGTERM or Ctrl-C it kills its live cells, whose temporary
folders are then removed, and exits with what was recorded so far. Cells run in their own
temporary folder as working directory, so a ``splitllm/`` folder where the bench was
started cannot shadow the installed package.

The gap column is the gap to the *best known bound* of the instance, computed once all
cells are in: under ``min_server_work`` the largest lower bound any cell proved (a proven
optimum is its own bound), under ``max_admitted`` the smallest upper bound, and then
:func:`splitllm.result.gap` (the one definition) of each cell's objective against it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from splitllm.dask_client import DASK_MISSING, check_scheduler, dask_client, dask_installed
from splitllm.errors import InputError, SplitLLMError
from splitllm.jsonio import read_json, write_atomic
from splitllm.result import gap

#: Columns of ``results.csv``, in order.
COLUMNS = (
    "instance",
    "path",
    "instance_sha256",
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
#: Columns an older results file may lack (its cells are then run again).
OPTIONAL_COLUMNS = frozenset({"instance_sha256"})
RESULTS_CSV = "results.csv"
LOCK_FILE = ".splitllm-bench.lock"
INSTANCE_FORMAT = "splitllm/instance"
STATUSES = frozenset({"optimal", "feasible", "infeasible", "no_solution", "error", "unknown"})

log = logging.getLogger("splitllm.bench")

Record = dict[str, Any]


@dataclass(frozen=True)
class Cell:
    """One instance x solver pair to run, with what the records need to know of the instance."""

    path: str
    instance: str
    instance_sha256: str
    requests: int
    blocks: int
    objective_type: str
    solver: str
    time_limit_s: float

    @property
    def key(self) -> tuple[str, str, float, str]:
        """What makes a recorded cell this one: instance path, solver and options, limit, and
        the instance file's contents."""
        return record_key(asdict(self))


def solver_identity(spec: str) -> str:
    """The solver spec with its options in a canonical form, so that equal options match.

    Examples
    --------
    >>> solver_identity("dp-grid:grid_step=5e-2") == solver_identity("dp-grid:grid_step=0.05")
    True
    """
    from splitllm.bench.cell import parse_solver_spec

    try:
        name, options = parse_solver_spec(spec)
    except SplitLLMError:
        return spec
    return name + (json.dumps(options, sort_keys=True) if options else "")


def record_key(record: Record) -> tuple[str, str, float, str]:
    """The resume key of a record or cell: ``(path, solver identity, time limit, instance
    digest)``; a record without a digest (an older results file) matches no cell."""
    digest = str(record.get("instance_sha256") or "")
    return (str(record["path"]), solver_identity(str(record["solver"])), float(record["time_limit_s"]), digest)


def instance_digest(path: Path) -> str:
    """A short SHA-256 of an instance file's bytes: a file changed under the same name is
    not the instance a recorded cell solved."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


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
            found += [p for p in sorted(path.rglob("*.json")) if _readable_instance(p)]
        elif not _is_instance(read_json(path)):
            raise InputError(str(path), f"not an instance file (\"format\": \"{INSTANCE_FORMAT}\")")
        else:
            found.append(path)
    if not found:
        raise InputError(", ".join(map(str, paths)), "no instance files found")
    return list(dict.fromkeys(found))


def _readable_instance(path: Path) -> bool:
    """True for an instance file; a file in a folder that is not valid JSON is skipped, with a warning."""
    try:
        return _is_instance(read_json(path))
    except SplitLLMError as exc:
        log.warning("skipping %s", exc)
        return False


def make_cells(paths: list[Path], solvers: list[str], time_limit: float) -> list[Cell]:
    """Every instance x solver cell, instances in the order given."""
    cells = []
    for path in paths:
        data = read_json(path)
        digest = instance_digest(path)
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        for solver in solvers:
            cells.append(
                Cell(
                    path=str(path),
                    instance=str(data.get("name") or path.stem),
                    instance_sha256=digest,
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


class _LiveCells:
    """The cell processes running now, so that an interrupted run can kill every one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen[bytes]] = set()
        self.stopping = False

    def add(self, child: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.add(child)
            stopping = self.stopping
        if stopping:  # started while the run was being stopped
            _kill_group(child)

    def discard(self, child: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.discard(child)

    def kill_all(self) -> None:
        with self._lock:
            self.stopping = True
            children = list(self._children)
        for child in children:
            _kill_group(child)


_LIVE = _LiveCells()


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the cell's whole process group (its solver backends included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def cell_spec(cell: Cell, plugins: tuple[str, ...]) -> dict[str, Any]:
    """What the child needs, paths made absolute: it runs in its own temporary folder."""
    plugins_abs = [str(Path(p).resolve()) if p.endswith(".py") else p for p in plugins]
    return {"path": str(Path(cell.path).resolve()), "solver": cell.solver, "time_limit": cell.time_limit_s, "plugins": plugins_abs}


def run_cell(cell: Cell, grace: float = 10.0, plugins: tuple[str, ...] = ()) -> Record:
    """Run one cell in a child process and return its record (all columns but the gaps)."""
    record: Record = {**asdict(cell), "objective": None, "bound": None, "verified": "-", "message": ""}
    with tempfile.TemporaryDirectory(prefix="splitllm-cell-") as tmp:
        spec_path, record_path = Path(tmp, "spec.json"), Path(tmp, "record.json")
        spec_path.write_text(json.dumps(cell_spec(cell, plugins)), encoding="utf-8")
        command = [sys.executable, "-m", "splitllm.bench.cell", str(spec_path), str(record_path)]
        start = time.perf_counter()
        # cwd: ``-m`` puts the working directory first on sys.path; an empty one shadows nothing.
        child = subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        _LIVE.add(child)
        limit = kill_after(cell.time_limit_s, grace)
        try:
            _, stderr = child.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            child.communicate()
            record.update(status="no_solution", message=f"timeout: killed after {limit:.3g} s", time_s=cell.time_limit_s)
            record["wall_s"] = time.perf_counter() - start
            return record
        finally:
            _LIVE.discard(child)
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


def _corrupt(path: Path, what: str) -> InputError:
    return InputError(str(path), f"truncated or corrupt results file ({what}); repair it or move it away to start afresh")


def _parse_row(row: dict[str | None, Any]) -> Record:
    """One CSV row as a record; ``ValueError`` when a field is missing, extra or unreadable."""
    if None in row or None in row.values():
        raise ValueError("wrong number of fields")
    missing = [c for c in COLUMNS if c not in row and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"missing column {missing[0]!r}")
    record = {column: _parse_value(column, row.get(column) or "") for column in COLUMNS}
    if record["status"] not in STATUSES or not record["path"] or not record["solver"] or record["time_limit_s"] is None:
        raise ValueError(f"status {record['status']!r}, path, solver or time limit unreadable")
    return record


def read_results(path: Path) -> list[Record]:
    """Records of a ``results.csv`` (empty cells read as ``None``); no file, no records.

    A file that cannot be read back whole (cut short, hand-edited) raises
    :class:`InputError` naming the file and the line.
    """
    if not path.exists():
        return []
    records: list[Record] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                raise _corrupt(path, "empty")
            if set(COLUMNS) - set(reader.fieldnames):
                raise InputError(str(path), f"not a results file of this runner (missing {sorted(set(COLUMNS) - set(reader.fieldnames))})")
            for row in reader:
                try:
                    records.append(_parse_row(row))
                except ValueError as exc:
                    raise _corrupt(path, f"line {reader.line_num}: {exc}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _corrupt(path, str(exc)) from None
    return records


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
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(run, cell) for cell in cells]
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        _LIVE.kill_all()  # before the pool waits for its threads, each waiting on a cell
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_results(cells: list[Cell], grace: float, plugins: tuple[str, ...], address: str) -> Iterator[Record]:
    from distributed import as_completed as dask_completed

    with dask_client(address) as client:
        futures = client.map(run_cell, cells, grace=grace, plugins=plugins, pure=False)
        for future in dask_completed(futures):
            yield future.result()


# --- one run at a time, cleaned up however it ends ---------------------------------------

_HELD: set[Path] = set()


def _terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean-up, however many signals follow
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """An exclusive lock (``filelock``) on ``out/LOCK_FILE`` for the whole run, or :class:`InputError`."""
    out.mkdir(parents=True, exist_ok=True)
    lock_path = out / LOCK_FILE
    try:
        held = FileLock(lock_path, timeout=0).acquire()
    except Timeout:
        raise InputError("--out", f"{out} is in use by another running bench (lock {lock_path}); wait for it or choose another folder") from None
    with held:
        yield


@contextlib.contextmanager
def _stop_cleanly() -> Iterator[None]:
    """SIGTERM (in the main thread) ends the run like Ctrl-C: live cells killed, exit 143."""
    previous = signal.signal(signal.SIGTERM, _terminated) if threading.current_thread() is threading.main_thread() else None
    _LIVE.stopping = False
    try:
        yield
    except (SystemExit, KeyboardInterrupt):
        _LIVE.kill_all()
        log.warning("interrupted: running cells killed; the cells finished so far are recorded")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def bench_session(out: str | Path, dask_scheduler: str | None = None) -> Iterator[None]:
    """Checks before anything is written, then the lock on ``out`` and a clean stop.

    Re-entrant in one process (``run_paper`` holds it around ``run_bench``).
    """
    if dask_scheduler is not None and not dask_installed():
        raise SplitLLMError(DASK_MISSING)
    check_scheduler(dask_scheduler)
    out = Path(out)
    key = out.resolve()
    if key in _HELD:
        yield
        return
    with _lock(out), _stop_cleanly():
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)


def all_failed(records: list[Record]) -> bool:
    """True when there are records and every one is an ``error`` (nothing ran at all)."""
    return bool(records) and all(r["status"] == "error" for r in records)


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

    Solver specs and instances are checked before anything is written. A recorded cell
    with the same instance, solver, options and time limit is skipped; one recorded under
    another time limit is run again and its new record replaces the old one.
    """
    from splitllm.bench.cell import check_solver_specs

    check_solver_specs(solvers, list(plugins))
    planned = make_cells(find_instances(paths), solvers, time_limit)
    out = Path(out)
    with bench_session(out, dask_scheduler):
        recorded = {_identity(r): r for r in read_results(out / RESULTS_CSV)}
        cells = [c for c in planned if _identity(asdict(c)) not in recorded or record_key(recorded[_identity(asdict(c))]) != c.key]
        log.info("%d cells to run, %d recorded in %s", len(cells), len(recorded), out / RESULTS_CSV)
        _run_cells(cells, recorded, out / RESULTS_CSV, _stream(cells, grace, plugins, jobs, dask_scheduler), progress)
    records = sorted(recorded.values(), key=lambda r: (r["path"], r["solver"]))
    return records


def _identity(record: Record) -> tuple[str, str]:
    """A cell apart from its time limit: one record per instance and solver is kept."""
    return record_key(record)[:2]  # type: ignore[return-value]


def _stream(cells: list[Cell], grace: float, plugins: tuple[str, ...], jobs: int, dask_scheduler: str | None) -> Iterator[Record]:
    if dask_scheduler is not None:
        return _dask_results(cells, grace, plugins, dask_scheduler)
    return _local_results(cells, lambda cell: run_cell(cell, grace, plugins), jobs)


def _run_cells(cells: list[Cell], recorded: dict[tuple[str, str], Record], results_path: Path, stream: Iterator[Record], progress: bool) -> None:
    """Record each cell as it finishes (``results.csv`` rewritten every time), with a progress bar."""
    from tqdm import tqdm

    from splitllm.log import progress_enabled

    show = progress and progress_enabled() and bool(cells)
    with tqdm(total=len(cells), desc="bench", unit="cell", disable=not show, file=sys.stderr) as bar:
        for record in stream:
            recorded[_identity(record)] = normalise(record)
            write_results(results_path, add_gaps(list(recorded.values())))
            bar.set_postfix_str(f"{record['instance']} / {record['solver']}: {record['status']}", refresh=False)
            bar.update()
    write_results(results_path, add_gaps(sorted(recorded.values(), key=lambda r: (r["path"], r["solver"]))))
