"""``splitllm export``: write F2 (compact) or F3 (column) as an MPS or LP file.

The file holds the model as built (docs/formulations.md), in the scaled units of
:mod:`splitllm.formulations.units`: rows divided by their limits and capacities, the
objective in work units (mean all-server work of one request) under ``min_server_work``
and admitted weight (phase 1 of the lexicographic pair) under ``max_admitted``. MPS files
carry an ``OBJSENSE`` section. Written atomically.
"""

from __future__ import annotations

from pathlib import Path

import click

from splitllm.cli_errors import input_errors_exit
from splitllm.jsonio import atomic_path


def export_model(instance_path: Path, formulation: str, fmt: str, out: Path) -> str:
    """Build ``formulation`` for the instance at ``instance_path`` and write it to ``out``."""
    from splitllm.formulations import column, compact
    from splitllm.instance import load_instance
    from splitllm.solvers.columns import dp_columns

    inst = load_instance(instance_path)
    if formulation == "compact":
        problem, _ = compact.build(inst)
    else:
        columns = dp_columns(inst)
        assert columns is not None  # no deadline
        problem, _ = column.build(inst, columns)
    with atomic_path(out, suffix=f".{fmt}") as tmp:
        if fmt == "mps":
            problem.writeMPS(str(tmp), with_objsense=True)
        else:
            problem.writeLP(str(tmp))
    return f"{out}: {formulation} model, {len(problem.variables())} variables, {len(problem.constraints)} rows"


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--formulation", type=click.Choice(["compact", "column"]), default="compact", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["mps", "lp"]), default="mps", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="file to write (atomically)")
@input_errors_exit
def export(instance: Path, formulation: str, fmt: str, out: Path) -> None:
    """Write the F2 (compact) or F3 (column) model of INSTANCE as an MPS or LP file."""
    click.echo(export_model(instance, formulation, fmt, out))


COMMANDS = [export]
