"""`splitllm check` re-evaluates any solution file and names what is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def check_edited(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> tuple[int, str]:
    """``run_check`` on a fresh dp solution of tiny after ``edit`` changed its JSON."""
    path = solved(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return run_check(path)


def test_valid_solution_passes(tmp_path: Path) -> None:
    assert run_check(solved(tmp_path))[0] == 0


def test_misstated_figure_is_named(tmp_path: Path) -> None:
    def understate(data: dict[str, Any]) -> None:
        data["requests"][0]["ttft_s"] *= 0.9

    code, output = check_edited(tmp_path, understate)
    assert code == 1 and "requests[0].ttft_s: states" in output


def test_broken_slo_is_named(tmp_path: Path) -> None:
    def break_slo(data: dict[str, Any]) -> None:
        data["requests"][1]["placement"] = "CSS"  # E2E 0.2405 > 0.23
        for key in ("ttft_s", "e2e_s", "server_work_s", "server_kv_bytes", "client_mem_bytes"):
            data["requests"][1].pop(key)
        data["totals"] = None
        data["objective"] = None

    code, output = check_edited(tmp_path, break_slo)
    assert code == 1 and "requests[1] (id 'classify'): e2e_s 0.2405 s > SLO 0.23 s" in output


def test_wrong_total_is_named(tmp_path: Path) -> None:
    code, output = check_edited(tmp_path, lambda data: data["totals"].update(server_work_s=0.1))
    assert code == 1 and "totals.server_work_s" in output


def test_malformed_solution_is_bad_input(tmp_path: Path) -> None:
    outcome = check_edited(tmp_path, lambda data: data["requests"][0].update(placement="CX"))
    assert outcome == (2, 'error: requests[0].placement: must be a string of letters C/S (C = client, S = server), got "CX"\n')
