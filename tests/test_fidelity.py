"""``splitllm fidelity`` on a tiny bench CSV and a tiny vidur table written here."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.fidelity import COLUMNS, fit_overhead, waves
from tests.test_batched import write_mlp_csv

HEADER = "Hardware,Num of Hardware,Framework,Model,Input Output Length,Batch Size,Latency,Throughput\n"
ROWS = [
    "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,128,1,1.65,154.8\n",
    "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,128,16,2.01,2035.2\n",
    "Nvidia A100 GPU,2,vLLM,meta-llama/Llama-2-7b-hf,128,1,1.0,1.0\n",  # two GPUs: not compared
    "Nvidia H100 GPU,1,TensorRT-LLM,meta-llama/Llama-2-7b-hf,128,64,1.37,11941.7\n",
    "Nvidia H100 GPU,1,TensorRT-LLM,meta-llama/Llama-2-7b-hf,128,32,1.09,7539.7\n",
]


def make_data(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "All_results.csv"
    data.write_text(HEADER + "".join(ROWS))
    vidur = tmp_path / "vidur"
    for gpu in ("a100", "h100"):
        write_mlp_csv(vidur / "profiling" / "compute" / gpu / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv")
    return data, vidur


def test_fidelity_writes_three_files(tmp_path: Path) -> None:
    data, vidur = make_data(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["fidelity", "--out", str(out), "--data", str(data), "--vidur", str(vidur)])
    assert result.exit_code == 0, result.output
    with (out / "fidelity.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 8  # 4 single-GPU rows x (latency, throughput)
    assert {r["source_line"] for r in rows} == {"2", "3", "5", "6"}
    assert {r["held_out"] for r in rows if r["batch_size"] in ("16", "32")} == {"True"}
    for r in rows:
        assert float(r["ratio"]) == pytest.approx(float(r["predicted"]) / float(r["measured"]), rel=1e-4)
    assert "overhead" in (out / "fidelity.md").read_text()
    assert (out / "fidelity.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_data_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPLITLLM_DATA", raising=False)
    result = CliRunner().invoke(main, ["fidelity", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "LLM-Inference-Bench" in result.output and len(result.output.strip().splitlines()) == 1


def test_overhead_fit_recovers_a_known_overhead() -> None:
    import numpy as np

    base = np.array([1.0, 2.0, 5.0])
    n = np.array([100.0, 300.0, 50.0])
    assert fit_overhead(base + 0.003 * n, base, n) == pytest.approx(0.003)


def test_waves_cover_the_batch() -> None:
    assert sum(waves(64, 4096, 47_000)) == 64
    assert waves(1, 4096, 10) == [1]
