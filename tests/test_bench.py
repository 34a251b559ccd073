"""The benchmark runner: files written, crashes and hangs isolated, resume, Dask, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import random_instance_data

from splitllm.bench.report import PLOTS, shifted_geometric_mean, write_report
from splitllm.bench.runner import RESULTS_CSV, add_gaps, read_results, run_bench, write_results
from splitllm.cli import main
from splitllm.instance import example_path

PLUGIN = str(Path(__file__).with_name("bench_plugins.py"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two small random instances, and a stray non-instance JSON file."""
    folder = tmp_path_factory.mktemp("suite")
    for seed in (1, 4):
        (folder / f"random-{seed}.json").write_text(json.dumps(random_instance_data(seed, n_requests=4, n_blocks=6)))
    (folder / "manifest.json").write_text(json.dumps({"what": "not an instance"}))
    return folder


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / RESULTS_CSV).open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_cli_bench_end_to_end(suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["bench", str(example_path("tiny")), str(suite), "--solvers", "dp,greedy", "--time-limit", "20", "--out", str(out), "-j", "2", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for name in (RESULTS_CSV, "summary.md", *PLOTS):
        assert (out / name).stat().st_size > 0
    rows = _rows(out)
    assert len(rows) == 3 * 2
    assert {(Path(r["path"]).stem, r["solver"]) for r in rows} == {(s, v) for s in ("tiny", "random-1", "random-4") for v in ("dp", "greedy")}
    for row in rows:
        assert row["status"] in ("optimal", "feasible", "infeasible")
        if row["solver"] == "dp" and row["status"] == "optimal":
            assert row["verified"] == "yes" and float(row["gap"]) <= 1e-9
        if row["objective"]:
            assert float(row["gap"]) >= 0 and float(row["peak_mem_mb"]) > 0
    tiny_dp = next(r for r in rows if r["instance"] == "tiny" and r["solver"] == "dp")
    assert (tiny_dp["requests"], tiny_dp["blocks"], float(tiny_dp["objective"])) == ("2", "3", pytest.approx(0.4))
    summary = (out / "summary.md").read_text()
    assert "shift **0.01 s**" in summary and "| dp |" in summary


@pytest.mark.slow
def test_crashing_and_hanging_solvers_lose_only_their_cells(tmp_path: Path) -> None:
    records = run_bench(
        [example_path("tiny")], ["dp", "test-crash", "test-hang"], tmp_path, time_limit=0.5,
        jobs=3, grace=8.0, plugins=(PLUGIN,), progress=False,  # grace: child start-up under load
    )
    by_solver = {r["solver"]: r for r in records}
    assert by_solver["dp"]["status"] == "optimal" and by_solver["dp"]["verified"] == "yes"
    assert by_solver["test-crash"]["status"] == "error"
    assert "crashed" in by_solver["test-crash"]["message"]
    assert by_solver["test-hang"]["status"] == "no_solution"
    assert by_solver["test-hang"]["message"].startswith("timeout")
    assert len(read_results(tmp_path / RESULTS_CSV)) == 3
    write_report(tmp_path, records)
    assert "test-hang" in (tmp_path / "summary.md").read_text()


def test_plugins_do_not_register_in_the_calling_process(tmp_path: Path) -> None:
    from splitllm.registry import solvers

    run_bench([example_path("tiny")], ["dp"], tmp_path, time_limit=5, plugins=(PLUGIN,), progress=False)
    assert "test-crash" not in solvers()


def test_resume_skips_recorded_cells(suite: Path, tmp_path: Path) -> None:
    run_bench([suite], ["dp"], tmp_path, time_limit=20, progress=False)
    rows = read_results(tmp_path / RESULTS_CSV)
    for row in rows:
        row["message"] = "recorded before"
    write_results(tmp_path / RESULTS_CSV, rows)
    records = run_bench([suite], ["dp", "greedy"], tmp_path, time_limit=20, progress=False)
    assert len(records) == 4
    assert all((r["message"] == "recorded before") == (r["solver"] == "dp") for r in records)
    again = run_bench([suite], ["dp", "greedy"], tmp_path, time_limit=20, progress=False)
    assert [r["message"] for r in again] == [r["message"] for r in records]


@pytest.mark.extras
def test_dask_local_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason='needs dask[distributed]: pip install -e ".[bench]"')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        records = run_bench(
            [example_path("tiny")], ["dp", "greedy"], tmp_path, time_limit=20,
            dask_scheduler=cluster.scheduler_address, progress=False,
        )
    assert sorted(r["solver"] for r in records) == ["dp", "greedy"]
    assert all(r["status"] in ("optimal", "feasible") and r["verified"] == "yes" for r in records)


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["bench", str(example_path("tiny")), "--solvers", "nope", "--out", str(tmp_path)])
    assert unknown.exit_code == 2 and "error: unknown solver 'nope'" in unknown.output
    empty = runner.invoke(main, ["bench", str(tmp_path), "--solvers", "dp", "--out", str(tmp_path / "o")])
    assert empty.exit_code == 2 and "no instance files found" in empty.output
    bad_option = runner.invoke(main, ["bench", str(example_path("tiny")), "--solvers", "dp:grid", "--out", str(tmp_path)])
    assert bad_option.exit_code == 2 and "not KEY=VALUE" in bad_option.output


def _record(path: str, solver: str, status: str, objective: float | None, bound: float | None, kind: str = "min_server_work") -> dict:
    return {"path": path, "solver": solver, "status": status, "objective": objective, "bound": bound, "objective_type": kind}


def test_gap_is_to_the_best_bound_of_all_cells() -> None:
    records = add_gaps(
        [
            _record("a", "heur", "feasible", 10.0, None),
            _record("a", "exact", "feasible", 9.0, 8.0),
            _record("a", "other", "feasible", 9.5, 8.5),
            _record("a", "broken", "error", None, 9.9),
            _record("b", "exact", "optimal", 4.0, 4.0),
            _record("b", "heur", "feasible", 5.0, None),
            _record("c", "max", "feasible", 3.0, 5.0, "max_admitted"),
            _record("c", "max2", "feasible", 4.0, 4.5, "max_admitted"),
        ]
    )
    gaps = {(r["path"], r["solver"]): r["gap"] for r in records}
    assert records[0]["best_bound"] == 8.5
    assert gaps[("a", "heur")] == pytest.approx(0.15)
    assert gaps[("a", "exact")] == pytest.approx(0.5 / 9)
    assert gaps[("a", "broken")] is None
    assert gaps[("b", "heur")] == pytest.approx(0.2)
    assert gaps[("c", "max")] == pytest.approx(0.5)  # best upper bound 4.5


def test_shifted_geometric_mean() -> None:
    assert shifted_geometric_mean([1.0, 1.0], shift=10.0) == pytest.approx(1.0)
    assert shifted_geometric_mean([0.0, 99.0], shift=1.0) == pytest.approx(9.0)


def test_paper_instances_are_valid_and_all_server_meets_every_slo(tmp_path: Path) -> None:
    from splitllm.bench.paper import write_instances
    from splitllm.instance import load_instance
    from splitllm.registry import solve

    manifest = write_instances(tmp_path, quick=True)
    assert {m["model"] for m in manifest.values()} == {"bert-base", "gpt2", "bert-base@m1-max", "gpt2@m1-max", "llama-2-7b"}
    assert {m["server_source"] for m in manifest.values() if m["model"] != "llama-2-7b"} == {"derived"}
    assert {m["client_source"] for m in manifest.values() if m["model"] in ("gpt2", "bert-base")} == {"measured"}
    for path in manifest:
        inst = load_instance(path)
        works = [solve(inst, name).objective for name in ("dp", "greedy", "all-server")]
        assert works[0] <= works[1] * (1 + 1e-9) and works[1] <= works[2] * (1 + 1e-9)
