"""The attention-kernel bench: the comparison on hand-made rows, the CLI on the bundled sample."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from splitllm.batched.iteration import AttentionModel
from splitllm.bench import attention_kernels as ak

#: 1 TFLOP/s, 1 GB/s, a 1 us floor, hidden = kv_dim = 8, 2-byte values.
TOY = AttentionModel(1e12, 1e9, 1e-6, 8, 8, 2)


def _row(prefill: bool, batch: int, chunk: int, kv: int, ms: float) -> dict[str, str]:
    row = {"is_prefill": str(prefill), "batch_size": str(batch), "prefill_chunk_size": str(chunk),
           "kv_cache_size": str(kv), "time_stats.attn_decode.median": "" if prefill else str(ms),
           "time_stats.attn_prefill.median": str(ms) if prefill else ""}
    return {**row, **ak.SHAPE}


def _kernels(*rows: dict[str, str]) -> list[ak.Kernel]:
    return [ak._kernel(row, "test") for row in rows]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_compare_prices_floor_plus_each_item() -> None:
    # decode, 4 sequences over 100 cached tokens: bytes (32 + 100 * 16) * 2 = 3264 per item,
    # 3.264 us at 1 GB/s (FLOPs 4 * 8 * 101 = 3232: 3.2 ns); 1 us + 4 * 3.264 us = 14.056 us
    # prefill, one chunk of 10 over 0: bytes 10 * 32 * 2 = 640 -> 0.64 us; 1 us + 0.64 us
    rows = ak.compare(_kernels(_row(False, 4, 0, 100, 0.014056), _row(True, 1, 10, 0, 0.00328)), TOY)
    assert [r.kind for r in rows] == ["decode", "prefill"]
    assert rows[0].chunk == 1 and rows[0].model_ms == pytest.approx(0.014056)
    assert rows[1].model_ms == pytest.approx(0.00164)
    assert rows[0].ratio == pytest.approx(1.0) and rows[1].ratio == pytest.approx(2.0)


def test_stats_and_groups() -> None:
    rows = ak.compare(_kernels(_row(False, 1, 0, 100, 0.004264), _row(False, 64, 0, 3000, 1.0)), TOY)
    assert ak.group_of(rows[0]) == "batch 1, kv 0-512"
    assert ak.group_of(rows[1]) == "batch 33-128, kv 2049-4096"
    s = ak.stats(rows[:1])
    assert s["rows"] == 1 and s["within10"] == 1.0


def test_other_shapes_are_left_out(tmp_path: Path) -> None:
    rows = [_row(False, 1, 0, 32, 0.01), {**_row(False, 2, 0, 32, 0.01), "num_tensor_parallel_workers": "2"}]
    assert len(ak.read_sample(_write(tmp_path / "s.csv", rows))) == 1


def test_cli_on_the_bundled_sample(tmp_path: Path) -> None:
    assert ak.main(["--out", str(tmp_path)]) == 0
    with (tmp_path / "attention.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) > 500 and {r["kind"] for r in table} == {"decode", "prefill"}
    assert list(table[0]) == list(ak.COLUMNS)
    assert "| decode | all |" in (tmp_path / "attention.md").read_text()


def test_missing_sample_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.csv"
    assert ak.main(["--sample", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]
    assert not (tmp_path / "out").exists()


#: Classes of damage to one field of a good row: (column, value).
DAMAGE = [(column, value) for column in ("batch_size", "kv_cache_size", "time_stats.attn_decode.median")
          for value in ("", "nan", "inf", "-1", "1e400", "abc", "2.5")] + [("is_prefill", "True")]


@pytest.mark.parametrize(("column", "value"), DAMAGE)
def test_a_damaged_field_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, value: str) -> None:
    sample = _write(tmp_path / "s.csv", [_row(False, 1, 0, 32, 0.01), {**_row(False, 2, 0, 32, 0.01), column: value}])
    code = ak.main(["--sample", str(sample), "--out", str(tmp_path / "out")])
    if (column, value) == ("time_stats.attn_decode.median", "2.5"):  # a valid time
        assert code == 0
        return
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "line 3" in err[0], err
    assert not (tmp_path / "out" / "attention.csv").exists()


def test_a_truncated_row_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = _write(tmp_path / "s.csv", [_row(False, 1, 0, 32, 0.01)])
    sample.write_text(sample.read_text() + "False,3\n")
    assert ak.main(["--sample", str(sample), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer fields" in err[0]


def test_an_output_path_that_is_a_file_is_refused_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert ak.main(["--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and out.read_text() == "not a folder"
