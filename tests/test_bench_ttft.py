"""The prefill bench's pieces on small hand-made inputs (the bench itself reads public data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitllm.bench.ttft import FIT_PROMPTS, FloorFit, Parts, all_reduce_s, broken_rows, fit, fit_floor_model, fit_hardware, measured_prefill

#: A known floor model: kernel scale 1.2, reduce factor 2, 1 / bus bandwidth of 80 GB/s; floors by TP.
TRUE = FloorFit((1.2, 2.0, 1 / 80e9), {2: 0.045, 4: 0.050, 8: 0.060})


def _parts(tp: int, batch: int, n: int) -> Parts:
    """Made-up but shaped like the real parts: linear kernels, a table all-reduce, L2 at 2048 tokens."""
    tokens = batch * n
    message = tokens * 8192 * 2.0
    return Parts(0.12 * tokens / 1000 / tp + 0.004, 160 * (2e-5 + message / 150e9), tokens <= 2048, 160 * message * 2 * (tp - 1) / tp)


def _rows() -> dict[tuple[str, int, int, int], Parts]:
    keys = [("gpu", tp, 1, n) for tp in (2, 4, 8) for n in (128, 256, 512, 1024, 2048, 4096, 8192)]
    keys += [("gpu", tp, b, 512) for tp in (2, 4, 8) for b in (2, 4, 8, 16)]
    return {k: _parts(*k[1:]) for k in keys}


def test_fit_recovers_a_scale_and_overheads_by_tp() -> None:
    rows = [(tp, p, 1.3 * p + {2: 0.01, 8: 0.05}[tp]) for tp in (2, 8) for p in (0.1, 0.4, 0.9)]
    scale, overhead = fit(rows)
    assert scale == pytest.approx(1.3) and overhead[2] == pytest.approx(0.01) and overhead[8] == pytest.approx(0.05)


def test_floor_fit_recovers_known_parameters_from_rows_the_model_made() -> None:
    parts = {k: p for k, p in _rows().items() if k[2] == 1 and k[3] in FIT_PROMPTS}
    rows = [(k[1], p.features(), TRUE.predict(k[1], p.features())) for k, p in sorted(parts.items())]
    assert sum(TRUE.predict(k[1], p.features()) == TRUE.floor_s[k[1]] for k, p in parts.items()) >= 3  # the floors bind
    got = fit_floor_model(rows)
    assert got.coef == pytest.approx(TRUE.coef, rel=1e-6)
    assert got.floor_s == pytest.approx(TRUE.floor_s, rel=1e-6)


def test_floor_fit_gives_no_floor_where_none_binds() -> None:
    rows = [(2, (x, 0.0, 0.0), 1.5 * x) for x in (0.1, 0.2, 0.4)]
    got = fit_floor_model(rows)
    assert got.coef[0] == pytest.approx(1.5) and got.floor_s == {}


def test_held_out_rows_never_enter_the_fit() -> None:
    parts = _rows()
    seconds = {k: TRUE.predict(k[1], p.features()) for k, p in parts.items()}
    base = fit_hardware("gpu", parts, seconds)
    spoiled = {k: t * (1 if k[2] == 1 and k[3] in (512, 2048) + FIT_PROMPTS else 7.0) for k, t in seconds.items()}
    assert spoiled != seconds
    again = fit_hardware("gpu", parts, spoiled)
    assert again.model == base.model and again.additive == base.additive
    assert base.model.coef == pytest.approx(TRUE.coef, rel=1e-6)


def test_a_row_under_half_the_time_of_half_its_tokens_is_broken() -> None:
    seconds = {("a", 2, 1, 512): 0.2, ("a", 2, 2, 512): 0.41, ("a", 2, 32, 512): 6.6, ("a", 2, 64, 512): 0.8,
               ("a", 8, 1, 128): 0.058, ("a", 8, 1, 256): 0.052,  # a floor's noise, not broken
               ("a", 4, 64, 512): 0.8}  # no row of half its tokens at TP 4: kept
    assert broken_rows(seconds) == {("a", 2, 64, 512)}


def test_all_reduce_interpolates_then_keeps_the_largest_messages_bandwidth(tmp_path: Path) -> None:
    path = tmp_path / "all_reduce.csv"
    path.write_text(
        ",time_stats.all_reduce.median,num_workers,size,devices_per_node\n"
        "0,0.02,2,1000,2\n1,0.10,2,9000,2\n2,0.5,4,1000,4\n3,0.03,2,1000,1\n"
    )
    assert all_reduce_s(path, 2, 5000) == pytest.approx(0.06e-3)
    assert all_reduce_s(path, 2, 18000) == pytest.approx(0.20e-3)  # never below the table's last point


def test_measured_prefill_keeps_llama_rows_by_batch(tmp_path: Path) -> None:
    path = tmp_path / "perf_model.csv"
    head = "model,hardware,prompt_size,batch_size,token_size,peak_power,average_power,prompt_time,token_time,e2e_time,tensor_parallel\n"
    rows = ["llama2-70b,a100-80gb,512,1,128,1,1,100,1,1,2", "llama2-70b,a100-80gb,512,1,128,1,1,120,1,1,2",
            "llama2-70b,a100-80gb,512,4,128,1,1,400,1,1,2", "bloom-176b,a100-80gb,512,1,128,1,1,999,1,1,8",
            "llama2-70b,h100-80gb-pcap,512,1,128,1,1,999,1,1,2"]
    path.write_text(head + "\n".join(rows) + "\n")
    assert measured_prefill(path) == {("a100-80gb", 2, 1, 512): [0.1, 0.12], ("a100-80gb", 2, 4, 512): [0.4]}


def test_the_bench_refuses_a_missing_file_in_one_line(tmp_path, capsys) -> None:
    from splitllm.bench import ttft

    missing = tmp_path / "perf_model.csv"
    assert ttft.main(["--splitwise", str(missing), "--vidur", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]
    assert not (tmp_path / "out" / "ttft.csv").exists()
