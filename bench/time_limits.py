"""Are time limits held? Wall time of every solver, measured from outside, against its limit.

A benchmark, not a test: run it as ``python -m splitllm.bench.time_limits`` (it takes a
while; ``--sizes 200 --limits 2`` runs a small version). For each size it generates, with
``splitllm generate``, a ``max_admitted`` instance whose server work capacity binds
(``--work-capacity``, a share of the all-server work) and its uncoupled twin (the same
requests, no capacity) for the per-request solvers ``dp`` and ``dp-grid``, which take only
uncoupled instances. Each (solver, limit) cell is one process of the CLI,
``splitllm solve INSTANCE --solver S --time-limit L --json``, timed from outside (so
start-up, loading the instance and writing the answer are in the figure), with its peak
resident memory. ``load`` is the same process without the solve: starting the CLI's
Python and loading the instance, measured right before each cell (the machine may be
shared, so the two are measured under the same load). The target: ``wall - load <= 1.1 x limit``. Writes a
Markdown table to ``--out`` (default ``bench/results/time_limits.md``).

``--hog`` measures under a CPU hog: one busy-loop process per core runs for the whole
measurement (load times included), so every solver competes for the cores as on a busy
machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: (label, solver, options, instance kind) for every cell row.
SOLVERS: list[tuple[str, str, list[str], str]] = [
    ("dp", "dp", [], "uncoupled"),
    ("dp-grid", "dp-grid", [], "uncoupled"),
    ("decomp", "decomp", [], "coupled"),
    ("milp highs", "milp", ["-o", "backend=highs"], "coupled"),
    ("milp cbc", "milp", ["-o", "backend=cbc"], "coupled"),
    ("colmilp", "colmilp", [], "coupled"),
    ("cpsat", "cpsat", [], "coupled"),
    ("greedy", "greedy", [], "coupled"),
]
TARGET = 1.1
CLI = [sys.executable, "-m", "splitllm.cli"]
HOG = "while True: pass"
LOAD_ONLY = "import sys, splitllm.cli, splitllm.solvers; from splitllm.instance import load_instance; load_instance(sys.argv[1])"


@dataclass
class Cell:
    size: int
    label: str
    limit: float
    wall_s: float
    load_s: float
    peak_mb: float
    status: str
    solver_time_s: float | None
    message: str

    @property
    def over(self) -> float:
        """Wall time less load time, as a multiple of the limit."""
        return (self.wall_s - self.load_s) / self.limit


def _timed(args: list[str], timeout: float) -> tuple[float, float, subprocess.CompletedProcess[str] | None]:
    """Wall seconds, peak resident MB (the process, or the largest child it waited for) and
    its result (``None``: killed at ``timeout``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        while True:  # os.wait4, not Popen.wait: it gives this process's own resource use
            pid, code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                process.kill()
                os.wait4(process.pid, 0)
                return time.perf_counter() - start, float("nan"), None
            time.sleep(0.02)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(code)
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, subprocess.CompletedProcess(args, process.returncode, out.read(), err.read())


@contextlib.contextmanager
def cpu_hog(processes: int) -> Iterator[None]:
    """``processes`` busy-loop Python processes for the duration of the block (none for 0)."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(processes)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def generate(size: int, folder: Path, work_capacity: str, seed: int) -> dict[str, Path]:
    """The coupled instance of ``size`` requests and its uncoupled twin (made once, then reused)."""
    paths = {"coupled": folder / f"tl-{size}-coupled.json", "uncoupled": folder / f"tl-{size}-uncoupled.json"}
    base = CLI + ["generate", "--requests", str(size), "--objective", "max_admitted", "--seed", str(seed)]
    for kind, path in paths.items():
        if not path.exists():
            extra = ["--work-capacity", work_capacity] if kind == "coupled" else []
            subprocess.run(base + extra + ["--out", str(path)], check=True, capture_output=True)
    return paths


def load_time(path: Path) -> float:
    """Wall time of a process that starts like the CLI and loads ``path``."""
    return _timed([sys.executable, "-c", LOAD_ONLY, str(path)], 600)[0]


def run_cell(size: int, label: str, solver: str, options: list[str], path: Path, limit: float) -> Cell:
    load_s = load_time(path)
    args = CLI + ["solve", str(path), "--solver", solver, "--time-limit", str(limit), "--json"] + options
    wall, peak, done = _timed(args, timeout=10 * limit + 300)
    if done is None:
        return Cell(size, label, limit, wall, load_s, peak, "killed by the bench", None, f"still running after {wall:.0f} s")
    try:
        solution = json.loads(done.stdout)
        status, solver_time, message = solution["status"], solution.get("time_s"), solution.get("message", "")
    except (json.JSONDecodeError, KeyError):
        status, solver_time, message = f"exit {done.returncode}", None, (done.stderr.strip().splitlines() or [""])[-1]
    return Cell(size, label, limit, wall, load_s, peak, status, solver_time, message or "")


def table(cells: list[Cell]) -> str:
    lines = [
        "| requests | solver | limit s | wall s | load s | wall - load s | (wall - load) / limit | held | status | solver's time_s | peak MB |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for c in cells:
        held = "yes" if c.over <= TARGET else "**no**"
        solver_time = "" if c.solver_time_s is None else f"{c.solver_time_s:.2f}"
        lines.append(
            f"| {c.size:,} | {c.label} | {c.limit:g} | {c.wall_s:.2f} | {c.load_s:.2f} | {c.wall_s - c.load_s:.2f} | "
            f"{c.over:.3f} | {held} | {c.status} | {solver_time} | {c.peak_mb:.0f} |"
        )
    return "\n".join(lines)


def report(cells: list[Cell], args: argparse.Namespace) -> str:
    held = sum(c.over <= TARGET for c in cells)
    hog = " --hog" if args.hog else ""
    under = (f" Under a CPU hog: {os.cpu_count()} busy-loop processes (one per core) ran for the whole measurement."
             if args.hog else "")
    return (
        "# Time limits held, measured from outside\n\n"
        f"`python -m splitllm.bench.time_limits --sizes {args.sizes} --limits {args.limits} --work-capacity {args.work_capacity}"
        f" --solvers {args.solvers}{hog}`"
        f" on {os.cpu_count()} CPUs. Each cell is one `splitllm solve --json` process timed from outside; `load` is a"
        " process that only starts and loads the instance. Coupled instances: `max_admitted`, server work capacity"
        f" {args.work_capacity} of the all-server work; `dp` and `dp-grid` run on the uncoupled twin (they take no"
        f" capacities). Target: wall - load <= {TARGET:g} x limit.{under} {held} of {len(cells)} cells held.\n\n"
        + table(cells)
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="request counts, comma-separated")
    parser.add_argument("--limits", default="5,20", help="time limits in seconds, comma-separated")
    parser.add_argument("--solvers", default=",".join(label for label, *_ in SOLVERS), help="labels of SOLVERS, comma-separated")
    parser.add_argument("--work-capacity", default="30%", help="server work capacity of the coupled instances")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instances", type=Path, default=Path("bench/results/instances"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/time_limits.md"))
    parser.add_argument("--hog", action="store_true", help="measure under a CPU hog: one busy-loop process per core")
    args = parser.parse_args(argv)
    wanted = args.solvers.split(",")
    args.instances.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    for size in (int(s) for s in args.sizes.split(",")):
        paths = generate(size, args.instances, args.work_capacity, args.seed)
        with cpu_hog((os.cpu_count() or 1) if args.hog else 0):
            for limit in (float(x) for x in args.limits.split(",")):
                for label, solver, options, kind in SOLVERS:
                    if label in wanted:
                        cells.append(run_cell(size, label, solver, options, paths[kind], limit))
                        print(table(cells[-1:]).splitlines()[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(cells, args), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
