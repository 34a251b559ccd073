"""The ``splitllm`` root command and the solve commands (validate, solvers, solve, check).

Bad input prints ``error: <json path>: <message>`` on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from splitllm.batched.engines import DEFAULT_ENGINE, ENGINES
from splitllm.cli.errors import EXIT_BAD_INPUT, EXIT_NEGATIVE, InterruptibleGroup, input_errors_exit
from splitllm.errors import printable
from splitllm.evaluator import Evaluation
from splitllm.instance import Arrays, Instance, load_instance
from splitllm.outputs import check_output_path
from splitllm.resources import REQUEST_LIMITS
from splitllm.result import SolveResult, Status, gap as gap_of


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="splitllm")
@click.option("--verbose", "-v", is_flag=True, help="debug messages, and the solver backends' own logs")
@click.option("--quiet", "-q", is_flag=True, help="errors only: no warnings, no progress bars")
def main(verbose: bool, quiet: bool) -> None:
    """Place LLM blocks on client or server so every request meets its SLO with least server work."""
    from splitllm.log import configure

    if verbose and quiet:
        click.echo("error: --verbose and --quiet exclude each other", err=True)
        sys.exit(EXIT_BAD_INPUT)
    configure(verbose=verbose, quiet=quiet)


@main.command()
@click.argument("instance", type=click.Path(path_type=Path))
@input_errors_exit
def validate(instance: Path) -> None:
    """Validate INSTANCE against the JSON Schema and the cross-reference rules."""
    inst = load_instance(instance)
    click.echo(f"{printable(str(instance))}: valid ({inst.n_requests} requests, {inst.n_blocks} blocks, objective {inst.objective})")


@main.command(name="solvers")
def list_solvers() -> None:
    """List the registered solvers, whether each is installed, and the options (-o) each takes."""
    from splitllm.registry import solvers

    for name, spec in sorted(solvers().items()):
        mark = "installed" if spec.installed else f"missing {', '.join(spec.requires)}"
        kind = "exact" if spec.exact else "heuristic"
        click.echo(f"{name:<11} {kind:<9} {mark:<10} {spec.description}")
        if spec.default_time_limit is not None:
            click.echo(f"{'':<11} default time limit {spec.default_time_limit:g} s (--time-limit to change)")
        for option in spec.options:
            click.echo(f"{'':<11} -o {option.describe()}")


def shows_solve_progress(command: Any) -> Any:
    """Show the time spent solving on stderr while a long solve runs (hidden by ``-q``).

    The command's stdout is held back until the bar is gone, so the two never share a line.
    """
    import contextlib
    import functools
    import io

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from splitllm.log import elapsed_bar

        held = io.StringIO()
        try:
            with elapsed_bar(f"solving with {kwargs.get('solver_name')}", kwargs.get("time_limit")), contextlib.redirect_stdout(held):
                return command(*args, **kwargs)
        finally:
            sys.stdout.write(held.getvalue())

    return wrapper


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("grid_step=0.01", "backend=highs")`` -> ``{"grid_step": "0.01", "backend": "highs"}``.

    Values stay strings: the solver's declared options type them
    (:meth:`splitllm.registry.SolverSpec.coerce_options`).
    """
    options: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        key, raw = pair.split("=", 1)
        options[key.strip().replace("-", "_")] = raw
    return options


@main.command(name="solve")
@shows_solve_progress
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--solver", "solver_name", default="dp", show_default=True, help="see `splitllm solvers`")
@click.option("--time-limit", type=click.FloatRange(min=0), default=None, help="seconds")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write the solution file here (atomically)")
@click.option("--json", "as_json", is_flag=True, help="print the solution file instead of a table")
@click.option("--option", "-o", "options", multiple=True, help="solver option KEY=VALUE, e.g. -o grid_step=0.01 (see `splitllm solvers`)")
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="draw the placement to this PNG file")
@click.option("--report", type=click.Choice(["batch-1", "batched"]), default="batch-1", show_default=True,
              help="batched: also what the placements cost a batching server (needs a server profile with batched tables)")
@click.option("--engine", type=click.Choice(list(ENGINES)), default=DEFAULT_ENGINE, show_default=True, help="serving engine for --report batched")
@click.option("--batch", type=click.IntRange(min=1, max=4096), default=16, show_default=True, help="copies of each request decoding together, for --report batched")
@input_errors_exit
def solve_command(
    instance: Path, solver_name: str, time_limit: float | None, out: Path | None, as_json: bool, options: tuple[str, ...], plot: Path | None,
    report: str, engine: str, batch: int,
) -> None:
    """Solve INSTANCE and print the placement of every request."""
    from splitllm.registry import get, solve
    from splitllm.solution import to_json, write_solution

    typed = get(solver_name).coerce_options(_parse_options(options), prefix="-o ")
    inst = load_instance(instance)
    if report == "batched":  # refused before the solve when the server has no batched tables
        from splitllm.batched import server_costs

        server_costs(inst, engine)
    for path, option in ((out, "--out"), (plot, "--plot")):  # before the solve, so no work is lost to a bad path
        if path is not None:
            check_output_path(path, option, inputs=(instance,))
    result = solve(inst, solver_name, time_limit=time_limit, **typed)
    failed = result.status == Status.ERROR  # a wrong answer is never written to a file
    if out is not None and not failed:
        write_solution(out, inst, result)
    if plot is not None and not failed and result.evaluation is not None:
        from splitllm.plot import plot_placement

        plot_placement(inst, result, plot)
    elif plot is not None:
        click.echo(printable(f"{plot}: not written, status {result.status.value} has no placement to draw"), err=True)
    if failed and out is not None:
        click.echo(printable(f"error: {out}: not written, solver {solver_name} failed verification: {result.message}"), err=True)
    if as_json:
        click.echo(json.dumps(to_json(inst, result), indent=2))
    else:
        click.echo(format_result(inst, result))
        if report == "batched" and result.evaluation is not None and result.placements is not None:
            from splitllm.batched.report import batched_lines

            click.echo("\n".join(batched_lines(inst, result.placements, result.evaluation.admitted, engine, batch)))
    if not result.status.has_solution:
        sys.exit(EXIT_NEGATIVE)


def _fmt(value: float, limit: float) -> str:
    if np.isnan(value):
        return "-"
    return f"{value:.4g}" + (f"/{limit:.4g}" if np.isfinite(limit) else "")


def run_lengths(placement: np.ndarray) -> str:
    """A placement as runs, client first: ``[0, 0, 1, 1, 1, 0]`` -> ``'2C 3S 1C'``.

    Examples
    --------
    >>> run_lengths(np.array([False, False, True, True, True, False]))
    '2C 3S 1C'
    """
    text = "".join("S" if side else "C" for side in placement)
    return " ".join(f"{len(m.group())}{m.group()[0]}" for m in re.finditer(r"C+|S+", text))


def _totals(a: Arrays, evaluation: Evaluation) -> list[str]:
    """The totals lines: server work and its saving, or a throughput placement's ``T``."""
    t = getattr(evaluation, "iteration_time", math.nan)
    if math.isfinite(t):  # a throughput placement prices T, not server work
        return [f"total: admitted weight {evaluation.admitted_weight:g}, decode iteration time T {t:.6g} s, "
                f"server KV {evaluation.server_kv:.6g} B"]
    all_server = float(a.work[evaluation.admitted].sum())
    saved = all_server - evaluation.server_work
    pct = f" ({100 * saved / all_server:.1f}%)" if all_server > 0 else ""
    return [f"total: admitted weight {evaluation.admitted_weight:g}, server work {evaluation.server_work:.6g} s, "
            f"server KV {evaluation.server_kv:.6g} B",
            f"all-server work for the same requests {all_server:.6g} s; saved {saved:.6g} s{pct}"]


def format_result(inst: Instance, result: SolveResult, max_rows: int = 40) -> str:
    """The readable table of ``splitllm solve``: per request, totals, saving vs all-server."""
    lines = [f"{printable(inst.name or 'instance')}: solver {result.solver}, status {result.status.value}, {result.time_s:.3f} s"]
    if result.message:
        lines.append(f"  {printable(result.message)}")
    evaluation = result.evaluation
    if evaluation is None or result.placements is None:
        return "\n".join(lines)
    a, m = inst.arrays, evaluation.metrics
    lines.append("placement: runs of blocks from the embedding to the head, C = client, S = server")
    header = {res: f"{res.figure}/{res.limit_word}" for res in REQUEST_LIMITS}  # one column per per-request limit
    width = {res: max(16, len(h)) for res, h in header.items()}
    lines.append(f"{'request':<14} {'placement':<12} " + " ".join(f"{h:>{width[res]}}" for res, h in header.items()) + f" {'server work s':>14}")
    for i, request in enumerate(inst.requests[:max_rows]):
        if not evaluation.admitted[i]:
            lines.append(f"{printable(str(request.id)):<14} {'rejected':<12}")
            continue
        work = f"{m.work[i]:.6g}" if math.isfinite(m.work[i]) else "-"  # a throughput placement prices no work
        figures = " ".join(f"{_fmt(m.of(res)[i], a.limit(res)[i]):>{width[res]}}" for res in REQUEST_LIMITS)  # type: ignore[index]
        lines.append(f"{printable(str(request.id)):<14} {run_lengths(result.placements[i]):<12} {figures} {work:>14}")
    if inst.n_requests > max_rows:
        lines.append(f"... {inst.n_requests - max_rows} more requests (use --out or --json for all)")
    lines += _totals(a, evaluation)
    if result.bound is not None:
        lines.append(bound_line(inst, result))
    return "\n".join(lines)


def bound_line(inst: Instance, result: SolveResult) -> str:
    """The bound and the gap, saying what they cover: the objective (server work, or the
    admitted weight, whose server work is minimised second and not covered), or, for a
    throughput placement, the admitted weight, with the iteration time ``T`` and its own
    lower bound beside it."""
    gap = result.gap
    t = getattr(result.evaluation, "iteration_time", math.nan)
    throughput = math.isfinite(t)
    what = "admitted weight" if throughput or inst.objective.maximize else "server work (s)"
    line = f"bound {result.bound:.9g} on the {what}" + (f", gap {gap:.3g}" if gap is not None else "")
    if throughput:
        t_bound = result.info.get("iteration_time_bound_s")
        proven = f"lower bound {t_bound:.6g} s, gap {gap_of(t, t_bound):.3g}" if t_bound is not None else "no proven lower bound"
        return f"{line} (the weight only); decode iteration time T {t:.6g} s: {proven}"
    if inst.objective.maximize:
        return f"{line} (the weight only; the server work of the admitted, minimised second, is not covered)"
    return line


@main.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.argument("solution", type=click.Path(path_type=Path))
@input_errors_exit
def check(instance: Path, solution: Path) -> None:
    """Re-evaluate SOLUTION against INSTANCE; exit 1 naming each broken limit or wrong figure."""
    from splitllm.solution import check_solution, load_solution

    from splitllm.solvers.batch_certify import file_claims

    inst = load_instance(instance)
    data = load_solution(solution)
    problems = check_solution(inst, data)
    if not problems:  # figures confirmed: a throughput placement's optimality, where enumeration is cheap
        problems = file_claims(inst, data)
    if problems:
        for line in problems:
            click.echo(f"FAIL {printable(line)}", err=True)
        sys.exit(EXIT_NEGATIVE)
    click.echo(f"{printable(str(solution))}: ok (every limit met, every stated figure matches the evaluator)")


def _register_extensions() -> None:
    """Commands that live in their own modules (data, bench, export)."""
    import importlib

    for module in ("splitllm.cli.data", "splitllm.cli.bench", "splitllm.cli.export", "splitllm.cli.fidelity", "splitllm.cli.simulate"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        for command in getattr(mod, "COMMANDS", []):
            main.add_command(command)


_register_extensions()

if __name__ == "__main__":
    main()
