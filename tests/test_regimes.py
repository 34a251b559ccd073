"""The regime map bench (``python -m splitllm.bench.regimes``) on one small regime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from splitllm.bench import regimes
from splitllm.instances.generate import generate_instance

SMALL = ["--requests", "40", "--regime", "4090-poor-link", "--policy", "plan"]


def _strict(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_one_regime_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert regimes.main(["--out", str(tmp_path), *SMALL]) == 0
    data = _strict(tmp_path / "regimes.json")
    (row,) = data["regimes"]
    capacity = row["capacity"]
    assert set(capacity) == {"all-server", "plan"} and capacity["all-server"] > 0
    # the frontier search starts from all-server and keeps only what beats it
    assert row["frontier"]["capacity_rps"] >= capacity["all-server"]
    assert capacity["plan"] >= capacity["all-server"]  # plan never loses to all-server
    assert 0 < row["server_time"]["kv_peak_share"] <= 1 and 0 <= row["server_time"]["prefill_share"] <= 1
    table = (tmp_path / "regimes.md").read_text()
    assert table.splitlines()[2].startswith("| 4090-poor-link | ") and table in capsys.readouterr().out
    assert (tmp_path / "regimes.png").stat().st_size > 0


@pytest.mark.parametrize("args", [["--regime", "nowhere"], ["--policy", "nope"], ["--requests", "0"], ["-j", "0"]])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        regimes.main(["--out", str(out), *args])
    assert stopped.value.code == 2 and not out.exists()


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    with pytest.raises(SystemExit) as stopped:
        regimes.main(["--out", str(taken), *SMALL])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("error: --out:") and len(err.splitlines()) == 1
    assert taken.read_text() == "mine"


def test_the_weak_server_is_the_a100_slowed_everywhere() -> None:
    a100 = generate_instance(requests=2, seed=0)["devices"]["a100-80gb"]
    weak = regimes.slowed(a100, 4.0)
    for kind, costs in a100["kinds"].items():
        for phase in ("prefill", "decode"):
            assert [y for _, y in weak["kinds"][kind][phase]] == pytest.approx([4 * y for _, y in costs[phase]])
    batched, slow = a100["batched"], weak["batched"]
    assert slow["attention"]["flops_per_s"] == pytest.approx(batched["attention"]["flops_per_s"] / 4)
    for engine, fit in batched["engines"].items():
        assert slow["engines"][engine]["overhead_s"] == pytest.approx(4 * fit["overhead_s"])
    assert slow["memory_bytes"] == regimes.WEAK_MEMORY and "Synthetic" in weak["provenance"]
    assert a100["batched"]["memory_bytes"] != regimes.WEAK_MEMORY  # the original is untouched


@pytest.mark.extras
def test_regimes_on_a_dask_cluster_match_the_local_run(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason='needs dask[distributed]: pip install -e ".[bench]"')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert regimes.main(["--out", str(tmp_path / "dask"), *SMALL, "--dask-scheduler", cluster.scheduler_address]) == 0
    assert regimes.main(["--out", str(tmp_path / "local"), *SMALL]) == 0
    on_dask, local = (_strict(tmp_path / d / "regimes.json")["regimes"][0] for d in ("dask", "local"))
    assert on_dask["capacity"] == local["capacity"] and on_dask["frontier"] == local["frontier"]
