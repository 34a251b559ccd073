"""The prefill bench's pieces on small hand-made inputs (the bench itself reads public data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitllm.bench.ttft import all_reduce_s, fit, measured_prefill


def test_fit_recovers_a_scale_and_overheads_by_tp() -> None:
    rows = [(tp, p, 1.3 * p + {2: 0.01, 8: 0.05}[tp]) for tp in (2, 8) for p in (0.1, 0.4, 0.9)]
    scale, overhead = fit(rows)
    assert scale == pytest.approx(1.3) and overhead[2] == pytest.approx(0.01) and overhead[8] == pytest.approx(0.05)


def test_all_reduce_interpolates_then_keeps_the_largest_messages_bandwidth(tmp_path: Path) -> None:
    path = tmp_path / "all_reduce.csv"
    path.write_text(
        ",time_stats.all_reduce.median,num_workers,size,devices_per_node\n"
        "0,0.02,2,1000,2\n1,0.10,2,9000,2\n2,0.5,4,1000,4\n3,0.03,2,1000,1\n"
    )
    assert all_reduce_s(path, 2, 5000) == pytest.approx(0.06e-3)
    assert all_reduce_s(path, 2, 18000) == pytest.approx(0.20e-3)  # never below the table's last point


def test_measured_prefill_keeps_batch_1_llama_rows(tmp_path: Path) -> None:
    path = tmp_path / "perf_model.csv"
    head = "model,hardware,prompt_size,batch_size,token_size,peak_power,average_power,prompt_time,token_time,e2e_time,tensor_parallel\n"
    rows = ["llama2-70b,a100-80gb,512,1,128,1,1,100,1,1,2", "llama2-70b,a100-80gb,512,1,128,1,1,120,1,1,2",
            "llama2-70b,a100-80gb,512,4,128,1,1,999,1,1,2", "bloom-176b,a100-80gb,512,1,128,1,1,999,1,1,8",
            "llama2-70b,h100-80gb-pcap,512,1,128,1,1,999,1,1,2"]
    path.write_text(head + "\n".join(rows) + "\n")
    assert measured_prefill(path) == {("a100-80gb", 2, 512): [0.1, 0.12]}
