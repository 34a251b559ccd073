"""Hostile input, generated: every case is refused with one line naming its path (exit 2),
or solved by every exact solver alike and confirmed by ``splitllm check`` -- never a
traceback, never a NaN in what is written.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hostile_cases import (
    NUMERIC_FIELDS,
    TINY,
    Case,
    instance_cases,
    max_admitted_claims,
    solution_cases,
)
from splitllm import jsonio
from splitllm.cli import main
from splitllm.instance import example_path, load_instance
from splitllm.registry import solve
from splitllm.solution import to_json
from splitllm.schema_check import instance_schema, solution_schema

EXACT = ("dp", "decomp", "milp", "brute")
INSTANCE_CASES = {case.name: case for case in instance_cases()}

#: Crashes inside the solvers, left for their owners: case name -> cause.


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output
    return result


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def assert_refused(result: Result, case: Case, one_line: bool = True) -> None:
    """Exit 2 with one ``error:`` line that names the damaged path (with ``one_line``
    false: several, when damage breaks several fields, the first naming the path)."""
    lines = result.output.splitlines()
    assert result.exit_code == 2 and lines and (len(lines) == 1 or not one_line), result.output
    assert all(line.startswith("error: ") and line.isprintable() for line in lines), result.output
    assert lines[0].startswith("error: ") and lines[0].isprintable(), lines[0]
    assert case.path in lines[0], f"{case.path!r} not named in {lines[0]!r}"


def strict_json(path: Path) -> Any:
    """A written file parsed with NaN and infinities refused."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path.name} holds {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def solve_and_check(tmp_path: Path, instance: Path, solver: str) -> dict[str, Any]:
    out = tmp_path / f"{solver}.json"
    result = invoke("solve", str(instance), "--solver", solver, "--out", str(out))
    assert result.exit_code in (0, 1), result.output
    assert "nan" not in result.output.lower().replace("infeasible", ""), result.output
    assert all(line.isprintable() for line in result.output.splitlines()), result.output
    solution = strict_json(out)
    check = invoke("check", str(instance), str(out))
    if solution["status"] in ("optimal", "feasible"):
        assert check.exit_code == 0, check.output
    else:
        assert solution["status"] == "infeasible" and check.exit_code == 1, (solution["status"], check.output)
    return solution


@pytest.mark.parametrize("name", list(INSTANCE_CASES))
def test_damaged_instance(tmp_path: Path, name: str) -> None:
    case = INSTANCE_CASES[name]
    instance = write(tmp_path, "instance.json", case.text)
    validated = invoke("validate", str(instance))
    if validated.exit_code != 0:
        assert_refused(validated, case)
        out = tmp_path / "never.json"
        assert_refused(invoke("solve", str(instance), "--out", str(out)), case)
        assert not out.exists()
        return
    assert validated.output.count("\n") == 1 and validated.output.rstrip("\n").isprintable(), validated.output
    server = json.loads(case.text)["server"]
    coupled = "work_capacity_s" in server or "kv_capacity_bytes" in server
    solvers = [s for s in EXACT if not (coupled and s == "dp")]  # dp places requests one by one
    solutions = {solver: solve_and_check(tmp_path, instance, solver) for solver in solvers}
    statuses = {solver: s["status"] for solver, s in solutions.items()}
    assert len(set(statuses.values())) == 1, statuses
    objectives = [s["objective"] for s in solutions.values() if s["objective"] is not None]
    assert all(math.isclose(v, objectives[0], rel_tol=1e-6, abs_tol=1e-9) for v in objectives), objectives


def _schema_numeric_keys(node: Any, key: str = "") -> set[str]:
    """Names of every numeric field the schema defines (``$defs`` names stand for themselves)."""
    found: set[str] = set()
    if isinstance(node, dict):
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "number" in types or "integer" in types or node.get("$ref", "").split("/")[-1] in ("seconds", "bytes", "bandwidth", "tokens", "weight"):
            found.add(key)
        for child_key, child in node.items():
            name = child_key if child_key not in ("properties", "items", "prefixItems", "additionalProperties", "$defs") else key
            found |= _schema_numeric_keys(child, name)
    elif isinstance(node, list):
        for child in node:
            found |= _schema_numeric_keys(child, key)
    return found


def test_generator_covers_every_numeric_field() -> None:
    """Every numeric field of the schema is damaged by the generator."""
    # a field under an object of free keys (e.g. overheads.vllm) is named by that object
    covered = {part.split("[")[0] for path in NUMERIC_FIELDS for part in path.split(".")[-2:]} | {"curve", "costArray"}
    not_numeric = {"seconds", "bytes", "bandwidth", "tokens", "weight", "version", "id"}  # $defs, a constant, a name
    missing = _schema_numeric_keys(instance_schema()) - covered - not_numeric
    assert not missing, f"no hostile cases for {sorted(missing)}"


def _tiny_solution() -> dict[str, Any]:
    """The dp solution of tiny, as ``splitllm solve --out`` writes it."""
    instance = load_instance(example_path("tiny"))
    return json.loads(json.dumps(to_json(instance, solve(instance, "dp"))))


SOLUTION_CASES = {case.name: case for case in solution_cases(_tiny_solution())}


@pytest.mark.parametrize("name", list(SOLUTION_CASES))
def test_damaged_solution(tmp_path: Path, name: str) -> None:
    """Every damaged solution file fails ``check``: exit 2 naming the path, or exit 1."""
    case = SOLUTION_CASES[name]
    instance = write(tmp_path, "tiny.json", json.dumps(TINY))
    result = invoke("check", str(instance), str(write(tmp_path, "solution.json", case.text)))
    lines = result.output.splitlines()
    assert result.exit_code in (1, 2) and lines, result.output
    if result.exit_code == 2:
        assert_refused(result, case, one_line=False)
    else:
        assert all(line.startswith("FAIL ") and line.isprintable() for line in lines), result.output


def test_bound_below_objective_under_max_admitted(tmp_path: Path) -> None:
    data = {**TINY, "objective": "max_admitted"}
    instance = write(tmp_path, "max.json", json.dumps(data))
    solution = solve_and_check(tmp_path, instance, "dp")
    for case in max_admitted_claims(solution):
        result = invoke("check", str(instance), str(write(tmp_path, "s.json", case.text)))
        assert result.exit_code == 1 and "bound:" in result.output, result.output


def test_solution_schema_describes_every_field() -> None:
    for schema in (instance_schema(), solution_schema()):
        assert "DESIGN" not in json.dumps(schema)
        assert not _undescribed(schema), _undescribed(schema)


def _undescribed(node: Any, path: str = "") -> list[str]:
    """Paths of schema properties without a description."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, child in node.get("properties", {}).items():
            if "description" not in child:
                found.append(f"{path}.{key}")
        for key, child in node.items():
            found += _undescribed(child, f"{path}.{key}" if key != "properties" else path)
    return found


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would block for ever
    for path in (fifo, Path("/dev/zero"), tmp_path):
        result = invoke("validate", str(path))
        assert result.exit_code == 2 and result.output.startswith(f"error: {path}: "), result.output


def test_file_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonio, "MAX_FILE_BYTES", 100)
    result = invoke("validate", str(write(tmp_path, "big.json", json.dumps(TINY))))
    assert result.exit_code == 2 and "byte limit" in result.output, result.output


@pytest.mark.parametrize("where", ["directory", "under_a_file", "proc", "device", "the_input"])
def test_out_problems_are_found_before_the_solve(tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = write(tmp_path, "tiny.json", json.dumps(TINY))
    out = {
        "directory": tmp_path,
        "under_a_file": instance / "s.json",
        "proc": Path("/proc/splitllm-solution.json"),
        "device": Path("/dev/null"),
        "the_input": tmp_path / "." / "tiny.json",
    }[where]

    def no_solve(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("solved before the output path was checked")

    monkeypatch.setattr("splitllm.registry.solve", no_solve)
    result = invoke("solve", str(instance), "--out", str(out))
    assert result.exit_code == 2 and result.output.startswith("error: --out: "), result.output
    assert len(result.output.splitlines()) == 1 and instance.read_text() == json.dumps(TINY)


def test_out_in_a_new_folder_is_written(tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "s.json"
    assert invoke("solve", str(example_path("tiny")), "--out", str(out)).exit_code == 0
    assert strict_json(out)["status"] == "optimal"


def test_ctrl_c_during_a_solve_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("splitllm.registry.solve", interrupted)
    result = invoke("solve", str(example_path("tiny")))
    assert (result.exit_code, result.output) == (130, "error: interrupted\n")


def test_unprintable_names_are_escaped(tmp_path: Path) -> None:
    case = INSTANCE_CASES["requests[0].id:lone_surrogate"]
    instance = write(tmp_path, "i.json", case.text)
    out = tmp_path / "s.json"
    result = invoke("solve", str(instance), "--out", str(out))
    assert result.exit_code == 0 and "\\ud800 \\x07" in result.output and "two\\nlines" in result.output
    assert all(line.isprintable() for line in result.output.splitlines())
    assert invoke("check", str(instance), str(out)).exit_code == 0
