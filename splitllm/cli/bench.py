"""``splitllm bench`` and ``splitllm bench-paper``: thin click commands over :mod:`splitllm.bench`.

Registered by :func:`splitllm.cli.app._register_extensions` through :data:`COMMANDS`. Bad input
(:class:`splitllm.errors.SplitLLMError`) prints ``error: ...`` on stderr and exits 2.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click


from splitllm.cli.errors import EXIT_NEGATIVE, input_errors_exit



def _command_line() -> str:
    return "splitllm " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


def _solver_list(value: str) -> list[str]:
    solvers = [s.strip() for s in value.split(",") if s.strip()]
    if not solvers:
        raise click.BadParameter("name at least one solver", param_hint="--solvers")
    return solvers


def _exit_if_all_failed(records: list[dict[str, object]], out: Path) -> None:
    """Exit 1 when every cell is an error: a run that measured nothing must not look fine."""
    from splitllm.bench.runner import all_failed

    if all_failed(records):
        first = next((r["message"] for r in records if r.get("message")), "")
        click.echo(f"error: every one of the {len(records)} cells failed (see {out / 'summary.md'}); first: {first}", err=True)
        sys.exit(EXIT_NEGATIVE)


@click.command(name="bench")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--solvers", "solver_specs", required=True, help="comma-separated; options as NAME:KEY=VALUE, e.g. dp-grid:grid_step=0.001")
@click.option("--time-limit", type=click.FloatRange(min=0), default=60.0, show_default=True, help="seconds per cell")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="output folder; an existing one is resumed")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="cells run at once")
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="seconds past 1.1 x the time limit before a cell is killed")
@click.option("--dask-scheduler", default=None, help="address of an existing Dask scheduler to run the cells on")
@click.option("--plugin", "plugins", multiple=True,
              help="module or .py file imported in every cell before solving (may register solvers); repeatable")
@click.option("--shift", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="shift (s) of the shifted geometric mean of times")
@click.option("--quiet", is_flag=True, help="no progress bar (as splitllm -q)")
@input_errors_exit
def bench(
    paths: tuple[Path, ...],
    solver_specs: str,
    time_limit: float,
    out: Path,
    jobs: int,
    grace: float,
    dask_scheduler: str | None,
    plugins: tuple[str, ...],
    shift: float,
    quiet: bool,
) -> None:
    """Run every solver on every instance in PATHS (files or folders, e.g. a generated suite).

    Each cell runs in its own process with its time limit; writes OUT/results.csv,
    OUT/summary.md and PNG plots. Cells already in OUT/results.csv are skipped.
    """
    from splitllm.bench.report import write_report
    from splitllm.bench.runner import run_bench

    records = run_bench(
        paths, _solver_list(solver_specs), out, time_limit,
        jobs=jobs, grace=grace, plugins=plugins, dask_scheduler=dask_scheduler, progress=not quiet,
    )
    written = write_report(out, records, shift, _command_line())
    click.echo(f"{len(records)} cells in {out / 'results.csv'}; " + ", ".join(p.name for p in written))
    _exit_if_all_failed(records, out)


@click.command(name="bench-paper")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="output folder; an existing one is resumed")
@click.option("--time-limit", type=click.FloatRange(min=0), default=60.0, show_default=True, help="seconds per cell")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=2, show_default=True, help="cells run at once")
@click.option("--dask-scheduler", default=None, help="address of an existing Dask scheduler to run the cells on")
@click.option("--quick", is_flag=True, help="a smaller sweep (for a smoke test)")
@click.option("--quiet", is_flag=True, help="no progress bar (as splitllm -q)")
@input_errors_exit
def bench_paper(out: Path, time_limit: float, jobs: int, dask_scheduler: str | None, quick: bool, quiet: bool) -> None:
    """The SplitLLM paper's experiment: BERT and GPT-2 (o = 1) and Llama-2-7B, over SLO and bandwidth.

    Writes the instances, results.csv, summary.md, the benchmark plots and paper.md with
    the paper-style figures into OUT.
    """
    from splitllm.bench.paper import run_paper

    written = run_paper(
        out, time_limit=time_limit, jobs=jobs, dask_scheduler=dask_scheduler, quick=quick,
        progress=not quiet, command=_command_line(),
    )
    click.echo(", ".join(str(p) for p in written))
    from splitllm.bench.runner import RESULTS_CSV, read_results

    _exit_if_all_failed(read_results(out / RESULTS_CSV), out)


COMMANDS = [bench, bench_paper]
