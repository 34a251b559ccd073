"""``splitllm fidelity``: the batched model against LLM-Inference-Bench's measured serving."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from splitllm.cli.errors import EXIT_BAD_INPUT, input_errors_exit

BENCH_URL = "https://github.com/argonne-lcf/LLM-Inference-Bench (Plots/All_results.csv)"
VIDUR_URL = "https://github.com/microsoft/vidur (the data/ folder)"


def _candidates(env_sub: str, *names: str) -> list[Path]:
    roots = [Path.cwd(), Path.cwd() / "data"]
    if os.environ.get("SPLITLLM_DATA"):
        roots.insert(0, Path(os.environ["SPLITLLM_DATA"]))
    return [root / sub / name for root in roots for sub in ("", env_sub) for name in names]


def _find(given: Path | None, candidates: list[Path], what: str, url: str, is_dir: bool) -> Path:
    if given is not None:
        return given
    for path in candidates:
        if (path.is_dir() if is_dir else path.is_file()):
            return path
    click.echo(f"error: {what} not found (looked in ., ./data and $SPLITLLM_DATA); get it from {url}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="folder for fidelity.csv, .md, .png and fit.json")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help="LLM-Inference-Bench's All_results.csv")
@click.option("--vidur", "vidur_root", type=click.Path(file_okay=False, path_type=Path), help="vidur's data folder (holds profiling/compute/...)")
@input_errors_exit
def fidelity(out: Path, data: Path | None, vidur_root: Path | None) -> None:
    """Predict LLM-Inference-Bench's Llama-2-7B rows (A100, H100; vLLM, TensorRT-LLM) with the batched model."""
    from splitllm.bench.fidelity import run_fidelity

    data = _find(data, _candidates("llm-inference-bench", "All_results.csv"), "All_results.csv", BENCH_URL, False)
    root = _find(vidur_root, _candidates("", "vidur"), "vidur's data folder", VIDUR_URL, True)
    command = f"splitllm fidelity --out {out} --data {data.name} --vidur {root.name}"
    fid = run_fidelity(data, root, out, command)
    held = [r for r in fid.records if r["held_out"]]
    worst = max((abs(float(r["ratio"]) - 1) for r in held), default=0.0)  # type: ignore[arg-type]
    click.echo(f"{len(fid.records)} figures compared, worst held-out error {worst:.1%}; wrote {out}/fidelity.{{csv,md,png}} and fit.json")


COMMANDS = [fidelity]
