"""``splitllm fidelity``: the batched model against LLM-Inference-Bench's measured serving,
and its prefill (TTFT) against splitwise-sim's measured prefill when that file is at hand."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from splitllm.cli.errors import EXIT_BAD_INPUT, input_errors_exit

BENCH_URL = "https://github.com/argonne-lcf/LLM-Inference-Bench (Plots/All_results.csv)"
VIDUR_URL = "https://github.com/microsoft/vidur (the data/ folder)"
SPLITWISE_URL = "https://github.com/Mutinifni/splitwise-sim (data/perf_model.csv)"


def _candidates(env_sub: str, *names: str) -> list[Path]:
    roots = [Path.cwd(), Path.cwd() / "data"]
    if os.environ.get("SPLITLLM_DATA"):
        roots.insert(0, Path(os.environ["SPLITLLM_DATA"]))
    return [root / sub / name for root in roots for sub in ("", env_sub) for name in names]


def _find(given: Path | None, candidates: list[Path], what: str, url: str, is_dir: bool) -> Path:
    found = _first(given, candidates, is_dir)
    if found is None:
        click.echo(f"error: {what} not found (looked in ., ./data and $SPLITLLM_DATA); get it from {url}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    return found


def _first(given: Path | None, candidates: list[Path], is_dir: bool) -> Path | None:
    if given is not None:
        return given
    return next((p for p in candidates if (p.is_dir() if is_dir else p.is_file())), None)


@click.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="folder for fidelity.csv, .md, .png and fit.json")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help="LLM-Inference-Bench's All_results.csv")
@click.option("--vidur", "vidur_root", type=click.Path(file_okay=False, path_type=Path), help="vidur's data folder (holds profiling/compute/...)")
@click.option("--splitwise", type=click.Path(dir_okay=False, path_type=Path),
              help="splitwise-sim's perf_model.csv: also compare prefill (ttft_s) and write ttft.csv and ttft.md (found in the data folders when not given; skipped when absent)")
@input_errors_exit
def fidelity(out: Path, data: Path | None, vidur_root: Path | None, splitwise: Path | None) -> None:
    """Predict LLM-Inference-Bench's Llama-2-7B rows (A100, H100; vLLM, TensorRT-LLM) with the batched model,
    and splitwise-sim's measured Llama-2-70B prefill (TTFT) where its file is at hand."""
    from splitllm.bench.fidelity import run_fidelity
    from splitllm.bench.ttft import compare_ttft, write_ttft

    data = _find(data, _candidates("llm-inference-bench", "All_results.csv"), "All_results.csv", BENCH_URL, False)
    root = _find(vidur_root, _candidates("", "vidur"), "vidur's data folder", VIDUR_URL, True)
    prefill = _first(splitwise, _candidates("splitwise-sim", "perf_model.csv"), False)
    ttft = compare_ttft(prefill, root) if prefill is not None else None  # read before anything is written
    command = f"splitllm fidelity --out {out} --data {data.name} --vidur {root.name}"
    fid = run_fidelity(data, root, out, command)
    held = [r for r in fid.records if r["held_out"]]
    worst = max((abs(float(r["ratio"]) - 1) for r in held), default=0.0)  # type: ignore[arg-type]
    click.echo(f"{len(fid.records)} figures compared, worst held-out error {worst:.1%}; wrote {out}/fidelity.{{csv,md,png}} and fit.json")
    if ttft is None:
        click.echo(f"prefill (ttft_s) not compared: perf_model.csv not found (--splitwise; {SPLITWISE_URL})")
        return
    write_ttft(out, ttft)
    held_ttft = [r for r in ttft.records if r["metric"] == "ttft_s" and r["held_out"]]
    within = sum(abs(float(r["ratio"]) - 1) <= 0.10 for r in held_ttft)  # type: ignore[arg-type]
    click.echo(f"prefill: {within} of {len(held_ttft)} held-out ttft_s within 10%, worst {ttft.worst_held_out():.1%}; wrote {out}/ttft.{{csv,md}}")


COMMANDS = [fidelity]
