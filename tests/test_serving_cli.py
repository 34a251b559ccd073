"""``splitllm simulate`` end to end: outputs, determinism, bad input, and fixed-batch fidelity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from splitllm import dask_client
from splitllm.batched.engines import by_label
from splitllm.bench.fidelity import bench_costs, schedule_timing, server_memory
from splitllm.bench.sim_fidelity import measured_rows, simulate_row
from splitllm.cli import main
from splitllm.instance import example_path
from tests.engine_reference import trt_schedule, vllm_schedule

EXAMPLE = str(example_path("llama2-7b"))


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-q", "simulate", *args])
    return result.exit_code, result.output


def test_trace_run_writes_every_output(tmp_path: Path) -> None:
    code, text = run(EXAMPLE, "--trace", "azure-conv", "--requests", "40", "--out", str(tmp_path))
    assert code == 0, text
    rows = list(csv.DictReader((tmp_path / "requests.csv").open()))
    assert len(rows) == 40 and list(rows[0]) == ["id", "client", "arrival_s", "placement", "ttft_s", "tpot_s", "e2e_s", "slo_met"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 <= summary["slo_attainment"] <= 1 and summary["iterations"] > 0
    assert summary["slo_attainment"] == pytest.approx(np.mean([int(r["slo_met"]) for r in rows]))
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0


def test_same_seed_same_results(tmp_path: Path) -> None:
    args = [EXAMPLE, "--trace", "mooncake", "--requests", "30", "--rate", "2", "--poisson", "--seed", "7", "--policy", "greedy"]
    assert run(*args, "--out", str(tmp_path / "a"))[0] == 0
    assert run(*args, "--out", str(tmp_path / "b"))[0] == 0
    assert (tmp_path / "a" / "requests.csv").read_text() == (tmp_path / "b" / "requests.csv").read_text()
    assert run(*args[:-3], "8", "--policy", "greedy", "--out", str(tmp_path / "c"))[0] == 0
    assert (tmp_path / "a" / "requests.csv").read_text() != (tmp_path / "c" / "requests.csv").read_text()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--trace", "azure-conv", "--rate", "0"], "--rate"),
        (["--trace", "azure-conv", "--rate", "nan"], "--rate"),
        (["--trace", "azure-conv", "--requests", "0"], "--requests"),
        (["--trace", "azure-conv", "--requests", "5", "--poisson"], "--poisson"),
        (["--policy", "no-such-solver"], "--policy"),
        (["--policy", "solution:/nonexistent.json"], "--policy"),
        (["--chunk", "0"], "--chunk"),
        (["--gpu-memory", "1e9"], "--gpu-memory"),
        (["-j", "0"], "--jobs"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, extra: list[str], field: str) -> None:
    code, text = run(EXAMPLE, *extra, "--out", str(tmp_path / "o"))
    assert code == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in text


def test_bad_arrival_in_the_instance_names_the_field(tmp_path: Path) -> None:
    data = json.loads(Path(EXAMPLE).read_text())
    data["requests"][0]["arrival_s"] = -3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, text = run(str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and "requests[0].arrival_s" in text and len(text.strip().splitlines()) == 1


def test_solution_replay_matches_the_solver(tmp_path: Path) -> None:
    sol = tmp_path / "sol.json"
    assert CliRunner().invoke(main, ["solve", EXAMPLE, "--solver", "dp", "--out", str(sol)]).exit_code == 0
    assert run(EXAMPLE, "--policy", f"solution:{sol}", "--out", str(tmp_path / "a"))[0] == 0
    assert run(EXAMPLE, "--policy", "dp", "--out", str(tmp_path / "b"))[0] == 0
    a = [r["placement"] for r in csv.DictReader((tmp_path / "a" / "requests.csv").open())]
    b = [r["placement"] for r in csv.DictReader((tmp_path / "b" / "requests.csv").open())]
    assert a == b


def test_capacity_finds_a_rate_per_policy(tmp_path: Path) -> None:
    code, text = run(EXAMPLE, "--trace", "azure-conv", "--requests", "60", "--slo", "ttft_s=0.5", "--capacity", "--policy", "all-server", "--out", str(tmp_path))
    assert code == 0, text
    data = json.loads((tmp_path / "capacity.json").read_text())
    row = data["policies"][0]
    assert row["capacity_rps"] > 0
    assert row["bounded"] and all(v >= 0.9 for r, v in row["tried"] if r == row["capacity_rps"])
    assert any(v < 0.9 for r, v in row["tried"] if r > row["capacity_rps"])



@pytest.mark.extras
def test_capacity_on_a_dask_cluster_matches_local(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason='needs dask[distributed]: pip install -e ".[bench]"')
    args = [EXAMPLE, "--trace", "azure-conv", "--requests", "40", "--slo", "ttft_s=0.5", "--capacity", "--policy", "all-server",
            "--policy", "batch-online"]
    code, text = run(*args, "-j", "2", "--out", str(tmp_path / "local"))
    assert code == 0, text
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code, text = run(*args, "--dask-scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask"))
    assert code == 0, text
    local, dask = ([p["capacity_rps"] for p in json.loads((tmp_path / d / "capacity.json").read_text())["policies"]]
                   for d in ("local", "dask"))
    assert local == dask  # two workers: the same two rates a round as -j 2, the same simulations


def test_dask_scheduler_without_dask_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_client, "dask_installed", lambda: False)
    code, text = run(EXAMPLE, "--capacity", "--dask-scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o"))
    assert code == 2 and "dask[distributed]" in text and not (tmp_path / "o").exists()


@pytest.mark.extras
def test_unreachable_dask_scheduler_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason='needs dask[distributed]: pip install -e ".[bench]"')
    code, text = run(EXAMPLE, "--capacity", "--dask-scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o"))
    assert code == 2 and "--dask-scheduler" in text and "Traceback" not in text and not (tmp_path / "o").exists()


# -- fixed-batch serving: B identical all-server requests at t=0 -------------------------
def fixed_batch(batch: int, length: int, framework: str = "vLLM") -> tuple[float, float]:
    """(simulated makespan, the independent reference schedule's timing) for ``batch`` requests of
    ``length`` in and out on the bench's A100 40 GB: vLLM's paged KV against the closed-form
    ``vllm_schedule``, TensorRT-LLM's reservation against ``trt_schedule``'s waves, each at the
    engine's KV capacity formula."""
    sim = simulate_row("a100", framework, batch, length)
    costs = bench_costs("a100", framework)
    engine = by_label(framework)
    tokens = engine.kv_tokens(server_memory(costs, "a100", batch, length))
    reference = vllm_schedule(batch, length, tokens // engine.block) if engine.paged else trt_schedule(batch, length, tokens)
    timing = schedule_timing(costs, reference)
    predicted = timing.base_s + costs.overhead_s * timing.iterations + costs.overhead_per_seq_s * timing.items
    return sim.makespan_s, predicted


@pytest.mark.parametrize("framework", ["vLLM", "TensorRT-LLM"])
@pytest.mark.parametrize(("batch", "length"), [(1, 128), (16, 256), (64, 128), (32, 2048)])
def test_fixed_batch_reproduces_the_fidelity_model(batch: int, length: int, framework: str) -> None:
    simulated, predicted = fixed_batch(batch, length, framework)
    assert simulated == pytest.approx(predicted, rel=1e-9)  # transfers at 1e15 B/s are the only difference


def test_fixed_batch_is_within_ten_percent_of_measured_vllm() -> None:
    rows = [r for r in measured_rows() if r["hardware"] == "Nvidia A100 GPU" and r["framework"] == "vLLM"
            and (r["batch"], r["length"]) in {(64, 128), (64, 256)}]  # fmt: skip
    assert len(rows) == 2
    for r in rows:
        simulated, _ = fixed_batch(int(r["batch"]), int(r["length"]))  # type: ignore[call-overload]
        assert abs(simulated / float(r["latency_s"]) - 1) <= 0.10  # type: ignore[arg-type]
