"""Every kind of bad input through the CLI: exit code 2, the JSON path named, no traceback."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.instance import example_path

TINY = json.loads(example_path("tiny").read_text())


def profiled() -> dict[str, Any]:
    """The tiny instance with device profiles instead of explicit costs."""
    data = copy.deepcopy(TINY)
    def profile() -> dict[str, Any]:
        curve = {"prefill": [[1, 0.01], [100, 0.1]], "decode": [[1, 0.001], [100, 0.002]]}
        return {"source": "roofline", "kinds": {k: copy.deepcopy(curve) for k in ("embed", "layer", "head")}}

    data["devices"] = {"gpu": profile(), "cpu": profile()}
    data["server"] = {"device": "gpu"}
    data["clients"]["phone"]["device"] = "cpu"
    for r in data["requests"]:
        del r["costs"]
    return data


def edit(path: str, value: Any, base: dict[str, Any] | None = None) -> str:
    """JSON text of the tiny instance with the field at ``path`` (dots, [i]) set to ``value``."""
    data = copy.deepcopy(base or TINY)
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    target = data
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return json.dumps(data)


DELETE = object()

CASES = {
    "empty file": ("", "file is empty"),
    "invalid json": ("{\"format\": ", "invalid JSON at line 1"),
    "nan": (edit("requests[0].slo.ttft_s", 0.5).replace("0.5", "NaN", 1), "requests[0].slo.ttft_s: must be a finite number, got NaN"),
    "infinity": (edit("clients.phone.rtt_s", 0.02).replace('"rtt_s": 0.02', '"rtt_s": Infinity'), "clients.phone.rtt_s: must be a finite number, got Infinity"),
    "negative slo": (edit("requests[1].slo.e2e_s", -1), "requests[1].slo.e2e_s: must be >= 0, got -1"),
    "wrong type": (edit("requests[0].prompt_tokens", "ten"), "requests[0].prompt_tokens: must be integer"),
    "zero bandwidth": (edit("clients.phone.uplink_bytes_per_s", 0), "clients.phone.uplink_bytes_per_s: must be >= 1, got 0"),
    "zero tokens": (edit("requests[1].output_tokens", 0), "requests[1].output_tokens: must be >= 1, got 0"),
    "unknown client": (edit("requests[1].client", "watch"), "requests[1].client: unknown client 'watch'"),
    "unknown device": (edit("server.device", "tpu", profiled()), "server.device: unknown device 'tpu'"),
    "unknown client device": (edit("clients.phone.device", "npu", profiled()), "clients.phone.device: unknown device 'npu'"),
    "missing kind in profile": (
        edit("devices.gpu.kinds.head", DELETE, profiled()), "devices.gpu.kinds: has no costs for block kind 'head'"
    ),
    "cost array length": (
        edit("requests[0].costs.client_decode_s", [0.1, 0.2]), "requests[0].costs.client_decode_s: must have 3 entries"
    ),
    "empty block list": (edit("model.blocks", []), "model.blocks: must not be empty"),
    "unknown key": (edit("requests[0].priority", 3), "requests[0].priority: unknown key"),
    "missing field": (edit("requests[0].prompt_tokens", DELETE), "requests[0].prompt_tokens: required field is missing"),
    "duplicate id": (edit("requests[1].id", "chat"), "requests[1].id: duplicate id 'chat'"),
    "bad objective": (edit("objective", "fastest"), "objective: must be one of"),
    "unsorted curve": (
        edit("devices.gpu.kinds.layer.prefill", [[10, 0.1], [5, 0.2]], profiled()),
        "devices.gpu.kinds.layer.prefill[1][0]: x must increase strictly",
    ),
}


@pytest.mark.parametrize("command", ["validate", "solve"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_the_field_and_exits_2(tmp_path: Path, case: str, command: str) -> None:
    text, expected = CASES[case]
    path = tmp_path / "instance.json"
    path.write_text(text)
    result = CliRunner().invoke(main, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["solve", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_profiled_instance_is_valid_and_solves(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profiled()))
    result = CliRunner().invoke(main, ["solve", str(path), "--solver", "dp"])
    assert result.exit_code == 0, result.output


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(edit("requests[0].slo.ttft_s", -1))
    proc = subprocess.run([sys.executable, "-m", "splitllm.cli", "solve", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: requests[0].slo.ttft_s: must be >= 0, got -1"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_out_file_is_not_written_on_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(edit("requests[0].slo.ttft_s", -1))
    out = tmp_path / "solution.json"
    out.write_text("previous")
    result = CliRunner().invoke(main, ["solve", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and out.read_text() == "previous"


def test_unknown_solver_is_bad_input() -> None:
    result = CliRunner().invoke(main, ["solve", str(example_path("tiny")), "--solver", "magic"])
    assert result.exit_code == 2 and "unknown solver 'magic'" in result.output
