"""`splitllm check` re-evaluates any solution file and names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from splitllm.cli import main
from splitllm.instance import example_path

TINY = str(example_path("tiny"))


def solved(tmp_path: Path, solver: str = "dp") -> Path:
    out = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["solve", TINY, "--solver", solver, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def run_check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", TINY, str(path)])
    return result.exit_code, result.output


def test_valid_solution_passes(tmp_path: Path) -> None:
    assert run_check(solved(tmp_path))[0] == 0


def test_misstated_figure_is_named(tmp_path: Path) -> None:
    path = solved(tmp_path)
    data = json.loads(path.read_text())
    data["requests"][0]["ttft_s"] *= 0.9
    path.write_text(json.dumps(data))
    code, output = run_check(path)
    assert code == 1 and "requests[0].ttft_s: states" in output


def test_broken_slo_is_named(tmp_path: Path) -> None:
    path = solved(tmp_path)
    data = json.loads(path.read_text())
    data["requests"][1]["placement"] = "CSS"  # E2E 0.2405 > 0.23
    for key in ("ttft_s", "e2e_s", "server_work_s", "server_kv_bytes", "client_mem_bytes"):
        data["requests"][1].pop(key)
    data["totals"] = None
    data["objective"] = None
    path.write_text(json.dumps(data))
    code, output = run_check(path)
    assert code == 1 and "requests[1] (id 'classify'): e2e_s 0.2405 s > SLO 0.23 s" in output


def test_wrong_total_is_named(tmp_path: Path) -> None:
    path = solved(tmp_path)
    data = json.loads(path.read_text())
    data["totals"]["server_work_s"] = 0.1
    path.write_text(json.dumps(data))
    code, output = run_check(path)
    assert code == 1 and "totals.server_work_s" in output


def test_malformed_solution_is_bad_input(tmp_path: Path) -> None:
    path = solved(tmp_path)
    data = json.loads(path.read_text())
    data["requests"][0]["placement"] = "CX"
    path.write_text(json.dumps(data))
    assert run_check(path) == (2, "error: requests[0].placement: must be a string of 3 letters C/S\n")
