"""The benchmark runner under hostile conditions: changed limits, bad files, a shadowing
``splitllm/`` folder, SIGTERM, a corrupt ``results.csv``, two runs on one folder, no Dask."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from click.testing import CliRunner

from splitllm.bench import runner
from splitllm.bench.report import format_value, objective_panels, summary_markdown
from splitllm.bench.runner import LOCK_FILE, RESULTS_CSV, read_results, run_bench, write_results
from splitllm.cli import main
from splitllm.instance import example_path

PLUGIN = str(Path(__file__).with_name("bench_plugins.py"))
TINY = str(example_path("tiny"))


def _cli() -> CliRunner:
    """A runner that keeps stderr apart (click 8.1 needs asking; 8.2+ always does)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def _wait_for(condition: Callable[[], bool], seconds: float = 120.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (a deadline, not a timing check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_resume_reruns_cells_recorded_under_another_limit(tmp_path: Path) -> None:
    run_bench([TINY], ["dp", "dp-grid:grid_step=0.05"], tmp_path, time_limit=20, progress=False)
    rows = read_results(tmp_path / RESULTS_CSV)
    for row in rows:
        row["message"] = "recorded before"
    write_results(tmp_path / RESULTS_CSV, rows)
    # Same limit, same options written another way: nothing runs again.
    same = run_bench([TINY], ["dp", "dp-grid:grid_step=5e-2"], tmp_path, time_limit=20, progress=False)
    assert [r["message"] for r in same] == ["recorded before"] * 2
    # Another limit: both run again and replace their old records.
    again = run_bench([TINY], ["dp", "dp-grid:grid_step=0.05"], tmp_path, time_limit=30, progress=False)
    assert len(again) == 2 and len(read_results(tmp_path / RESULTS_CSV)) == 2
    assert all(r["message"] != "recorded before" and r["time_limit_s"] == 30 for r in again)
    assert "| dp | 1 | 30 |" in summary_markdown(again)


def test_malformed_instance_in_a_folder_is_skipped_with_a_warning(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(TINY, suite / "tiny.json")
    (suite / "broken.json").write_text('{"format": "splitllm/instance", ')
    result = _cli().invoke(main, ["bench", str(suite), "--solvers", "dp", "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "warning: skipping" in result.stderr and "broken.json" in result.stderr
    assert [Path(r["path"]).name for r in read_results(tmp_path / "out" / RESULTS_CSV)] == ["tiny.json"]


def _splitllm_script() -> str:
    script = Path(sys.executable).with_name("splitllm")
    if not script.exists():
        pytest.skip("the splitllm console script is not installed beside this Python")
    return str(script)


def test_a_splitllm_folder_in_the_working_directory_does_not_shadow_the_package(tmp_path: Path) -> None:
    shadow = tmp_path / "splitllm"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the shadowing folder was imported')\n")
    out = tmp_path / "out"
    run = subprocess.run([_splitllm_script(), "-q", "bench", TINY, "--solvers", "dp,greedy", "--out", "out"],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert {r["status"] for r in read_results(out / RESULTS_CSV)} <= {"optimal", "feasible"}


def test_a_run_where_every_cell_errors_exits_non_zero(tmp_path: Path) -> None:
    result = _cli().invoke(main, ["bench", TINY, "--solvers", "test-crash", "--plugin", PLUGIN, "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "every one of the 1 cells failed" in result.stderr


def _processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the cell processes through /proc")
def test_sigterm_kills_the_cells_and_removes_their_folders(tmp_path: Path) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    command = [_splitllm_script(), "-q", "bench", TINY, "--solvers", "test-hang", "--plugin", PLUGIN,
               "--time-limit", "300", "--out", str(tmp_path / "out")]
    bench = subprocess.Popen(command, env={**os.environ, "TMPDIR": str(private_tmp)}, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: bool(_processes_mentioning(str(private_tmp)))), "the cell never started"
        cells = _processes_mentioning(str(private_tmp))
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        bench.kill()
        bench.wait()
    assert _wait_for(lambda: not any(pid in _processes_mentioning(str(private_tmp)) for pid in cells), 30)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbled"])
def test_a_corrupt_results_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    run_bench([TINY], ["dp", "greedy"], tmp_path, time_limit=20, progress=False)
    path = tmp_path / RESULTS_CSV
    text = path.read_text()
    path.write_text({"truncated": text[: len(text) - 40], "empty": "", "garbled": text.replace("optimal", "opt\x00")}[damage])
    result = _cli().invoke(main, ["bench", TINY, "--solvers", "dp,greedy", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {path}: truncated or corrupt results file") and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_second_bench_on_the_same_folder_refuses(tmp_path: Path) -> None:
    with FileLock(tmp_path / LOCK_FILE):  # as a running bench holds it
        result = _cli().invoke(main, ["bench", TINY, "--solvers", "dp", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --out:") and "in use by another running bench" in result.stderr
    assert not (tmp_path / RESULTS_CSV).exists()


@pytest.mark.parametrize("command", [["bench", TINY, "--solvers", "dp"], ["bench-paper", "--quick"]])
def test_dask_scheduler_without_dask_names_the_extra_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.setattr(runner, "dask_installed", lambda: False)
    out = tmp_path / "out"
    result = _cli().invoke(main, [*command, "--out", str(out), "--dask-scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert result.stderr == 'error: --dask-scheduler needs dask[distributed]: pip install -e ".[bench]"\n'
    assert not out.exists()


def test_tables_show_no_inf_or_negative_zero() -> None:
    assert [format_value(x, ".1%") for x in (-0.0, -4e-7, math.inf, -math.inf, math.nan, -0.5)] == ["0.0%", "0.0%", "-", "-", "-", "-50.0%"]
    record = {"path": "a", "instance": "a", "solver": "dp", "status": "feasible", "objective": 0.0, "gap": math.inf,
              "time_s": 0.1, "time_limit_s": 5.0, "objective_type": "min_server_work", "verified": "yes",
              "server_work_s": 2.0, "all_server_work_s": 2.0 - 1e-12, "message": "", "peak_mem_mb": None}
    summary = summary_markdown([record])
    assert "inf%" not in summary and "| inf |" not in summary and "-0.0" not in summary


def _max_admitted(solver: str, path: str, weight: float | None) -> dict:
    return {"path": path, "solver": solver, "objective_type": "max_admitted", "objective": weight, "status": "feasible",
            "server_work_s": 1.0, "all_server_work_s": 2.0}


def test_max_admitted_plots_admitted_weight_and_no_empty_panels() -> None:
    records = [_max_admitted("dp", "a", 4.0), _max_admitted("greedy", "a", 3.0), _max_admitted("greedy", "b", None)]
    panels = objective_panels(records)
    assert [title for title, _ in panels] == ["Admitted weight, % of the most admitted"]
    assert panels[0][1] == {"dp": [100.0], "greedy": [75.0]}


def test_an_instance_changed_under_the_same_name_is_run_again(tmp_path: Path) -> None:
    """Resuming keys on the instance's contents too: a stale record is not reused."""
    import json

    from splitllm.bench.runner import read_results, run_bench
    from splitllm.instance import example_path

    inst = tmp_path / "inst.json"
    data = json.loads(example_path("tiny").read_text())
    inst.write_text(json.dumps(data))
    out = tmp_path / "out"
    first = run_bench([inst], ["dp"], out, 10.0, progress=False)
    data["requests"][0]["slo"] = {"ttft_s": 0.05}  # now infeasible
    inst.write_text(json.dumps(data))
    second = run_bench([inst], ["dp"], out, 10.0, progress=False)
    assert first[0]["status"] == "optimal" and second[0]["status"] == "infeasible"
    assert first[0]["instance_sha256"] != second[0]["instance_sha256"]
    assert len(read_results(out / "results.csv")) == 1
