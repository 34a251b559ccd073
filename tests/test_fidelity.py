"""``splitllm fidelity`` on a tiny bench CSV and a tiny vidur table written here."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.batched.engines import ENGINES
from splitllm.bench.fidelity import COLUMNS, bench_costs, engine_schedule, fit_engine
from tests.engine_reference import trt_schedule, vllm_schedule
from tests.test_batched import write_mlp_csv

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
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


def test_prefill_is_skipped_and_said_so_without_splitwise_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, vidur = make_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPLITLLM_DATA", raising=False)
    result = CliRunner().invoke(main, ["fidelity", "--out", str(tmp_path / "out"), "--data", str(data), "--vidur", str(vidur)])
    assert result.exit_code == 0, result.output
    assert "prefill (ttft_s) not compared" in result.output and not (tmp_path / "out" / "ttft.csv").exists()


@pytest.mark.skipif(not (DATA / "splitwise-sim" / "perf_model.csv").is_file() or not (DATA / "vidur").is_dir(),
                    reason="splitwise-sim's and vidur's public data not found beside the repository")
def test_fidelity_compares_measured_prefill_with_held_out_rows(tmp_path: Path) -> None:
    data, _ = make_data(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["fidelity", "--out", str(out), "--data", str(data), "--vidur", str(DATA / "vidur"),
                                       "--splitwise", str(DATA / "splitwise-sim" / "perf_model.csv")])
    assert result.exit_code == 0, result.output
    with (out / "ttft.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["metric"] == "ttft_s"]
    held = [r for r in rows if r["held_out"] == "True"]
    # 2 GPUs x 3 TP x (7 batch-1 prompts + 6 batches of 512-token prompts), less TP 2's two broken batch-64 rows;
    # the batch-1 rows of 128, 512, 2048 and 8192 tokens fitted
    assert len(rows) == 76 and len(held) == 52
    assert all(r["batch_size"] == "1" and r["prompt_tokens"] in ("128", "512", "2048", "8192") for r in rows if r["held_out"] == "False")
    within = sum(abs(float(r["ratio"]) - 1) <= 0.10 for r in held)
    assert f"prefill: {within} of 52 held-out ttft_s within 10%" in result.output
    assert all(abs(float(r["ratio"]) - 1) <= 0.10 for r in rows if r["held_out"] == "False")  # the fit holds its own rows


def test_missing_data_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPLITLLM_DATA", raising=False)
    result = CliRunner().invoke(main, ["fidelity", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "LLM-Inference-Bench" in result.output and len(result.output.strip().splitlines()) == 1


def test_fit_recovers_known_parameters() -> None:
    import numpy as np

    base = np.array([1.0, 2.0, 5.0, 3.0])
    n = np.array([100.0, 300.0, 50.0, 80.0])
    k = np.array([100.0, 9600.0, 50.0, 5000.0])
    got = fit_engine(0.85 * base + 0.003 * n + 2e-5 * k, base, n, k)
    assert got == pytest.approx((0.85, 0.003, 2e-5), rel=1e-6)


def test_fit_never_returns_a_negative_term() -> None:
    import numpy as np

    base = np.array([1.0, 2.0, 4.0])
    n = np.array([10.0, 10.0, 10.0])
    # measured below the model: unconstrained least squares would want a negative overhead
    got = fit_engine(base - 0.01 * n, base, n, n)
    assert min(got) >= 0.0


def tokens_processed(schedule: list[tuple[object, object]]) -> int:
    return int(sum(float(q.sum()) for q, _ in schedule))  # type: ignore[attr-defined]


# -- the engines' schedules: the simulator's, against the independent reference ------------
COSTS = bench_costs("a100", "vLLM")


def pairs(schedule: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[list[float], list[float]]]:
    return [(q.tolist(), c.tolist()) for q, c in schedule]


def test_trt_waves_cover_the_batch() -> None:
    its = engine_schedule(COSTS, "tensorrt-llm", 64, 8, 16 * 11 * COSTS.kv_bytes_per_token)  # 11 requests of 16 tokens fit
    widths = [len(q) for q, _ in its if q[0] > 1]  # prefill iterations open each wave
    assert widths == [11, 11, 11, 11, 11, 9]
    assert len(its) == 6 * 8  # each wave: 1 prefill + 7 decode iterations
    assert pairs(its) == pairs(trt_schedule(64, 8, 16 * 11))


@pytest.mark.parametrize("blocks", [1000, 40, 17, 9])
def test_vllm_every_request_generates_all_its_tokens(blocks: int) -> None:
    batch, length, block = 6, 12, 4
    rules = replace(ENGINES["vllm"], block=block, watermark=0.0)
    its = engine_schedule(COSTS, rules, batch, length, blocks * block * COSTS.kv_bytes_per_token)
    assert pairs(its) == pairs(vllm_schedule(batch, length, blocks, block=block, watermark=0.0))
    samples = sum(len(q) for q, _ in its)  # each scheduled item samples one token
    assert samples == batch * length
    for q, c in its:  # KV in use never exceeds the pool
        assert float(((q + c + block - 1) // block).sum()) <= blocks
    if blocks >= batch * -(-2 * length // block):  # everything fits: no recompute
        assert tokens_processed(its) == batch * (2 * length - 1)
    else:  # preemption recomputes: more tokens than without it
        assert tokens_processed(its) > batch * (2 * length - 1)


def test_vllm_prefill_respects_the_token_budget() -> None:
    rules = replace(ENGINES["vllm"], max_batched_tokens=250)
    its = engine_schedule(COSTS, rules, 10, 100, 10_000 * 16 * COSTS.kv_bytes_per_token)
    assert max(float(q.sum()) for q, _ in its if q[0] > 1) <= 250
    assert [len(q) for q, _ in its[:5]] == [2, 2, 2, 2, 2]
    assert pairs(its) == pairs(vllm_schedule(10, 100, blocks=10_000, max_tokens=250))
