"""``splitllm export``: write F2 (compact) or F3 (column) as an MPS or LP file.

The file holds the model as built (docs/formulations.md), in the scaled units of
:mod:`splitllm.formulations.units`: rows divided by their limits and capacities, the
objective in work units (mean all-server work of one request) under ``min_server_work``
and admitted weight (phase 1 of the lexicographic pair) under ``max_admitted``. MPS files
carry an ``OBJSENSE`` section. Beside ``FILE`` goes ``FILE.json`` (e.g. ``model.mps.json``),
the sidecar of :mod:`splitllm.formulations.sidecar`: units and row scales, what every
variable and row name means, request index -> id, and both phases of ``max_admitted``.
Both files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import click

from splitllm.batched.engines import DEFAULT_ENGINE, ENGINES
from splitllm.cli.errors import input_errors_exit
from splitllm.outputs import check_output_path
from splitllm.errors import InputError
from splitllm.jsonio import atomic_path, write_json


def sidecar_path(out: Path) -> Path:
    """Where the sidecar of model file ``out`` goes: ``out`` with ``.json`` appended.

    >>> sidecar_path(Path("model.mps"))
    PosixPath('model.mps.json')
    """
    return out.with_name(out.name + ".json")


def export_model(instance_path: Path, formulation: str, fmt: str, out: Path, engine: str = "vllm", ttft: bool = False) -> str:
    """Build ``formulation`` for the instance at ``instance_path`` and write it to ``out``."""
    from splitllm.batched import server_costs
    from splitllm.formulations import batch, column, compact
    from splitllm.formulations.batch_data import build_data
    from splitllm.formulations.sidecar import describe, describe_throughput
    from splitllm.instance import load_instance
    from splitllm.solvers.columns import dp_columns

    inst = load_instance(instance_path)
    if formulation == "throughput":
        problem, handles = batch.build(build_data(inst, server_costs(inst, engine), ttft=ttft))
    elif formulation == "compact":
        problem, handles = compact.build(inst)
    else:
        columns = dp_columns(inst)
        assert columns is not None  # no deadline
        problem, handles = column.build(inst, columns)
        handles["columns"] = columns  # lets the sidecar name each column's placement
    with atomic_path(out, suffix=f".{fmt}") as tmp:
        if fmt == "mps":
            problem.writeMPS(str(tmp), with_objsense=True)
        else:
            problem.writeLP(str(tmp))
    side = describe_throughput(inst, problem, handles, engine, ttft) if formulation == "throughput" else describe(inst, problem, handles, formulation)
    side["model_file"] = out.name
    write_json(sidecar_path(out), side)
    return f"{out}: {formulation} model, {len(problem.variables())} variables, {len(problem.constraints)} rows; {sidecar_path(out)}: what they mean"


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--formulation", type=click.Choice(["compact", "column", "throughput"]), default="compact", show_default=True,
              help="compact (F2), column (F3), or throughput (F5: a decode batch on a batching server)")
@click.option("--engine", type=click.Choice(list(ENGINES)), default=DEFAULT_ENGINE, show_default=True, help="for --formulation throughput")
@click.option("--ttft", is_flag=True, help="for --formulation throughput: each admitted request's batch-1 TTFT is a row too")
@click.option("--format", "fmt", type=click.Choice(["mps", "lp"]), default="mps", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="file to write (atomically)")
@input_errors_exit
def export(instance: Path, formulation: str, engine: str, ttft: bool, fmt: str, out: Path) -> None:
    """Write the F2 (compact), F3 (column) or F5 (throughput) model of INSTANCE as an MPS or
    LP file, and OUT.json beside it (units, row scales, variable names, request ids, phases)."""
    if ttft and formulation != "throughput":
        raise InputError("--ttft", "applies only with --formulation throughput")
    check_output_path(out, inputs=(instance,))
    check_output_path(sidecar_path(out), inputs=(instance,))
    click.echo(export_model(instance, formulation, fmt, out, engine, ttft))


COMMANDS = [export]
